//! The console's rentals and orders: found by user (email), locker, state and time; a running
//! rental ended or cancelled, an ended one or a completed order refunded, each with a reason (the
//! API's `/v1/admin/rentals/{id}/…` and `/v1/admin/orders/{id}/refund`, audited).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::html::{action, input, moment, select, table, text, when};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;
use crate::rental::{Rental, RentalState};
use crate::unlock::SaleFilter;

/// The filters of both lists.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SalesQuery {
    user: String,
    locker: String,
    state: String,
    from: String,
    to: String,
}

impl SalesQuery {
    /// The state filter's choices (any, then `names`), and the state asked for if it is one.
    fn states<'a>(&'a self, names: &[&'static str]) -> (Vec<(&'a str, &'a str)>, Option<&'a str>) {
        let mut choices = vec![("", "any")];
        choices.extend(names.iter().map(|n| (*n, *n)));
        let wanted = names
            .contains(&self.state.as_str())
            .then_some(self.state.as_str());
        (choices, wanted)
    }

    /// The sales this query names: `user`'s (looked up by email), at `locker`, in `state`.
    fn filter<'a>(
        &self,
        user: Option<Uuid>,
        locker: &'a Option<String>,
        state: Option<&'a str>,
    ) -> SaleFilter<'a> {
        SaleFilter {
            user,
            device: locker.as_deref(),
            state,
            since: moment(&self.from),
            until: moment(&self.to),
            before: None,
        }
    }
}

/// Whom `email` names: `Ok(None)` for no filter, `Err` with what to tell the operator.
async fn user_of(state: &ApiState, email: &str) -> Result<Option<Uuid>, String> {
    let Some(email) = text(email) else {
        return Ok(None);
    };
    let found = state
        .accounts
        .search(&email, None, 20)
        .await
        .map_err(|e| e.to_string())?;
    match found.iter().find(|u| u.email.eq_ignore_ascii_case(&email)) {
        Some(user) => Ok(Some(user.id)),
        None if found.len() == 1 => Ok(Some(found[0].id)),
        None if found.is_empty() => Err(format!("No account's email contains {email}.")),
        None => Err(format!(
            "{} accounts match {email}; give the whole address.",
            found.len()
        )),
    }
}

fn filters(path: &str, query: &SalesQuery, states: &[(&str, &str)]) -> String {
    format!(
        "<form class=\"filters\" method=\"get\" action=\"{path}\">{}{}{}\
         <label>From (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>",
        input("user", "User (email)", &query.user),
        input("locker", "Locker", &query.locker),
        select("state", "State", &query.state, states),
        escape(&query.from),
        escape(&query.to),
    )
}

/// A refund of part (an amount) or all (none) of what was paid, with a reason.
fn refund_form(api: &str) -> String {
    action(
        ("POST", api),
        "<input name=\"amount\" size=\"7\" placeholder=\"all\" aria-label=\"Amount\">\
         <input name=\"reason\" maxlength=\"200\" placeholder=\"reason\" required>",
        "Refund",
        Some("Give this money back to the customer's wallet?"),
        true,
    )
}

fn rental_row(state: &ApiState, r: &Rental) -> String {
    let money = |minor: i64| state.wallets.currency().from_minor(minor).to_string();
    let id = r.id.to_string();
    let reason = "<input name=\"reason\" maxlength=\"200\" placeholder=\"reason\" required>";
    let actions = match r.state {
        RentalState::Active | RentalState::Pending | RentalState::Ending => [
            action(
                ("POST", &format!("/v1/admin/rentals/{id}/end")),
                reason,
                "End",
                Some("End this rental now? It is charged as if picked up now."),
                true,
            ),
            action(
                ("POST", &format!("/v1/admin/rentals/{id}/cancel")),
                reason,
                "Cancel",
                Some("Cancel this rental? No fee; the hold is released."),
                true,
            ),
        ]
        .concat(),
        RentalState::Ended if r.fee.unwrap_or(0) > r.refunded => {
            refund_form(&format!("/v1/admin/rentals/{id}/refund"))
        }
        _ => String::new(),
    };
    format!(
        "<tr data-rental=\"{id}\"><td><code>{short}</code></td><td>{at}</td>\
         <td><a href=\"/console/users/{user}\">{user_short}</a></td>\
         <td><a href=\"/console/lockers/{locker}\">{locker}</a> · {door}</td>\
         <td class=\"state\">{st}</td><td>{deposit}</td><td>{fee}</td><td>{refunded}</td>\
         <td>{actions}</td></tr>",
        short = &id[..8],
        at = when(&r.created_at),
        user = r.user_id,
        user_short = &r.user_id.to_string()[..8],
        locker = escape(&r.device_id),
        door = r.door,
        st = r.state.as_str(),
        deposit = money(r.deposit_held),
        fee = r.fee.map(money).unwrap_or_default(),
        refunded = money(r.refunded),
    )
}

pub(super) async fn rentals(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<SalesQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let (states, wanted) = query.states(&RentalState::ALL.map(RentalState::as_str));
    let (rows, note) = match user_of(&state, &query.user).await {
        Err(note) => (String::new(), note),
        Ok(renter) => {
            let locker = text(&query.locker);
            match state
                .rentals
                .find(&query.filter(renter, &locker, wanted), 100)
                .await
            {
                Ok(found) => (
                    found.iter().map(|r| rental_row(&state, r)).collect(),
                    format!("{} rentals (at most 100, newest first).", found.len()),
                ),
                Err(e) => return crate::api::ApiError::from(e).into_response(),
            }
        }
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Rentals</h1>{}<p role=\"status\">{}</p>{}</main>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        filters("/console/rentals", &query, &states),
        escape(&note),
        table(
            "rentals",
            &[
                "Id",
                "Asked (UTC)",
                "User",
                "Locker · door",
                "State",
                "Deposit",
                "Fee",
                "Refunded",
                ""
            ],
            &rows
        ),
    );
    page(StatusCode::OK, "Rentals", &body, &[])
}

pub(super) async fn orders(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<SalesQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let (states, wanted) =
        query.states(&crate::order::OrderState::ALL.map(crate::order::OrderState::as_str));
    let money = |minor: i64| state.wallets.currency().from_minor(minor).to_string();
    let (rows, note) = match user_of(&state, &query.user).await {
        Err(note) => (String::new(), note),
        Ok(buyer) => {
            let locker = text(&query.locker);
            match state
                .orders
                .find(&query.filter(buyer, &locker, wanted), 100)
                .await
            {
                Ok(found) => (
                    found
                        .iter()
                        .map(|o| {
                            let refund = if o.state == crate::order::OrderState::Completed
                                && o.refunded < o.total
                            {
                                refund_form(&format!("/v1/admin/orders/{}/refund", o.id))
                            } else {
                                String::new()
                            };
                            format!(
                                "<tr data-order=\"{}\"><td><code>{}</code></td><td>{}</td>\
                                 <td><a href=\"/console/users/{}\">{}</a></td>\
                                 <td><a href=\"/console/lockers/{locker}\">{locker}</a> · {}</td>\
                                 <td class=\"state\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                                 <td>{refund}</td></tr>",
                                o.id,
                                &o.id.to_string()[..8],
                                when(&o.created_at),
                                o.user_id,
                                &o.user_id.to_string()[..8],
                                o.door,
                                o.state.as_str(),
                                money(o.total),
                                money(o.refunded),
                                escape(o.cancel_reason.as_deref().unwrap_or("")),
                                locker = escape(&o.device_id),
                            )
                        })
                        .collect(),
                    format!("{} orders (at most 100, newest first).", found.len()),
                ),
                Err(e) => return crate::api::ApiError::from(e).into_response(),
            }
        }
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Orders</h1>{}<p role=\"status\">{}</p>{}</main>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        filters("/console/orders", &query, &states),
        escape(&note),
        table(
            "orders",
            &[
                "Id",
                "Placed (UTC)",
                "User",
                "Locker · door",
                "State",
                "Total",
                "Why cancelled"
            ],
            &rows
        ),
    );
    page(StatusCode::OK, "Orders", &body, &[])
}
