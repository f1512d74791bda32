//! Pieces the console's pages are written with: tables, filters, and forms that call an API
//! operation (sent by `act.js` with the session's CSRF token).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::escape;

/// A table with `headers`, its body `rows` (already HTML) under the id `id`.
pub(super) fn table(id: &str, headers: &[&str], rows: &str) -> String {
    let heads: String = headers.iter().map(|h| format!("<th>{h}</th>")).collect();
    format!(
        "<div class=\"table\"><table><thead><tr>{heads}</tr></thead>\
         <tbody id=\"{id}\">{rows}</tbody></table></div>"
    )
}

/// A row of cells, each escaped.
pub(super) fn row(cells: &[&str]) -> String {
    let cells: String = cells
        .iter()
        .map(|c| format!("<td>{}</td>", escape(c)))
        .collect();
    format!("<tr>{cells}</tr>")
}

/// A `<select>` named `name` with `choices` (value, label), `current` selected.
pub(super) fn select(name: &str, label: &str, current: &str, choices: &[(&str, &str)]) -> String {
    let options: String = choices
        .iter()
        .map(|(value, text)| {
            let selected = if *value == current { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{text}</option>")
        })
        .collect();
    format!("<label>{label} <select name=\"{name}\">{options}</select></label>")
}

/// A text field of a filter form.
pub(super) fn input(name: &str, label: &str, value: &str) -> String {
    format!(
        "<label>{label} <input name=\"{name}\" value=\"{}\" maxlength=\"254\"></label>",
        escape(value)
    )
}

/// A form calling `method api` with `fields` (HTML), confirmed first with `confirm` if given;
/// the page reloads after it worked when `reload`.
pub(super) fn action(
    (method, api): (&str, &str),
    fields: &str,
    button: &str,
    confirm: Option<&str>,
    reload: bool,
) -> String {
    let confirm = confirm
        .map(|q| format!(" data-confirm=\"{}\"", escape(q)))
        .unwrap_or_default();
    let reload = if reload { " data-reload" } else { "" };
    format!(
        "<form class=\"act filters\" data-api=\"{}\" data-method=\"{method}\"{confirm}{reload}>\
         {fields}<button type=\"submit\">{button}</button>\
         <span data-result role=\"status\"></span></form>",
        escape(api)
    )
}

/// A `datetime-local` value (`2026-12-05T17:20`), taken as UTC.
pub(super) fn moment(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// A filter's text: trimmed, `None` when empty or longer than 254 characters.
pub(super) fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty() && value.chars().count() <= 254).then(|| value.to_owned())
}

/// A time as the console writes it.
pub(super) fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}
