//! `POST /v1/devices/import`: lockers provisioned from a CSV upload (`text/csv`), all or none.
//! Every row is checked first and each bad one named with its line; the credentials of the new
//! lockers are in the answer, once (the console offers them as a file to download).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use firmware_protocol::DeviceId;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Manager;
use super::error::{ApiError, FieldError, Problem};
use super::json::Json;
use crate::device::NewDevice;

/// Rows one upload may hold.
const MAX_ROWS: usize = 10_000;

/// The lockers an import made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// How many.
    pub count: usize,
    /// Each one's credentials (`device_id`, `mqtt_username`, `mqtt_password`, `secret`,
    /// `tag_key`), in the file's order: shown once, never again.
    #[schema(value_type = Vec<Object>)]
    pub credentials: Vec<serde_json::Value>,
}

fn size_class_ok(size: &str) -> bool {
    (1..=16).contains(&size.len())
        && size
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The rows of `text`: each a new locker and its doors' size classes, or the errors, each named
/// `line N: column`.
fn read(text: &str) -> Result<Vec<(NewDevice, Vec<String>)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let wrong = |line: u64, column: &str, message: &str| FieldError {
        field: format!("line {line}: {column}"),
        message: message.to_owned(),
    };
    match reader.headers() {
        Ok(h)
            if h.iter()
                .take(4)
                .eq(["id", "doors", "model", "size_classes"])
                || h.iter().take(3).eq(["id", "doors", "model"]) => {}
        _ => {
            return Err(vec![wrong(
                1,
                "header",
                "expected id,doors,model[,size_classes]",
            )]);
        }
    }
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(wrong(line, "row", "not a CSV row"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() + errors.len() >= MAX_ROWS {
            errors.push(wrong(line, "row", "at most 10000 rows in one upload"));
            break;
        }
        let id = DeviceId::new(record.get(0).unwrap_or_default());
        if id.is_none() {
            errors.push(wrong(line, "id", "1 to 32 of A-Z a-z 0-9 _ -"));
        }
        if let Some(id) = id
            && !seen.insert(id)
        {
            errors.push(wrong(line, "id", "twice in the file"));
        }
        let doors = record
            .get(1)
            .unwrap_or_default()
            .parse::<u16>()
            .ok()
            .filter(|d| (1..=512).contains(d));
        if doors.is_none() {
            errors.push(wrong(line, "doors", "a whole number from 1 to 512"));
        }
        let model = record.get(2).unwrap_or_default();
        let model = if model.is_empty() { "generic" } else { model };
        if model.chars().count() > 64 {
            errors.push(wrong(line, "model", "at most 64 characters"));
        }
        let sizes: Vec<String> = record
            .get(3)
            .unwrap_or_default()
            .split([' ', ';'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let fits = sizes.len() <= 1 || doors.is_some_and(|d| usize::from(d) == sizes.len());
        if !fits || !sizes.iter().all(|s| size_class_ok(s)) {
            errors.push(wrong(
                line,
                "size_classes",
                "one class for every door, or one per door (a-z 0-9 - _)",
            ));
        }
        if let (Some(id), Some(door_count)) = (id, doors) {
            rows.push((
                NewDevice {
                    id,
                    model: model.to_owned(),
                    door_count,
                },
                sizes,
            ));
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(wrong(2, "row", "no lockers in the file"));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Provisions lockers from a CSV file: a header `id,doors,model,size_classes`, then one locker a
/// row (`size_classes`: one class for every door, or one per door, separated by spaces or `;`).
/// All or none: a bad row is named with its line and nothing is provisioned.
#[utoipa::path(post, path = "/v1/devices/import", tag = "devices", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv",
        description = "id,doors,model,size_classes\ncab-001,12,lx-12,s s m m m m l l l l xl xl"),
    responses(
        (status = 201, description = "Provisioned; their credentials, once", body = Imported),
        (status = 409, description = "`device_exists`: a locker of the file exists already; nothing provisioned", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: each bad row named `line N: column`; nothing provisioned", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn import(
    State(state): State<ApiState>,
    Manager(operator): Manager,
    headers: HeaderMap,
    body: String,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let result = async {
        if !csv {
            return Err(ApiError::UnsupportedMediaType);
        }
        let rows = read(&body).map_err(ApiError::Validation)?;
        let made = state.registry.provision_sized(rows).await?;
        Ok((
            StatusCode::CREATED,
            Json(Imported {
                count: made.len(),
                credentials: made.iter().map(|p| p.to_json()).collect(),
            }),
        ))
    }
    .await;
    let detail = serde_json::json!({ "rows": body.lines().count().saturating_sub(1) });
    super::audit::audited(&state, &operator, ("device.import", "csv"), detail, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_row_is_named_with_its_line() {
        let text = "id,doors,model,size_classes\nok-1,4,m,s\nbad id,4,m,\nok-2,0,m,\nok-1,2,m,\nok-3,3,m,s m\n\"unclosed,1\n";
        let errors = read(text).expect_err("bad rows");
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "line 3: id",
                "line 4: doors",
                "line 5: id",
                "line 6: size_classes",
                "line 7: id",
                "line 7: doors"
            ],
            "{errors:?}"
        );
        let rows = read("id,doors,model,size_classes\na,2,m,s l\nb,3,,m\n").expect("good");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1, ["s", "l"]);
        assert_eq!(rows[1].0.model, "generic");
        assert!(read("name,doors\n").is_err());
        assert!(read("id,doors,model\n").is_err(), "no lockers");
    }
}
