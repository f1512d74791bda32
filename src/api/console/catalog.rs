//! The console's catalog: products (a new one; a price change; withdrawn and back), the stock of
//! a locker's doors, and the rental price plans (a new version of a size's plan). Every change is
//! the API's own operation (support and admins, audited).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{action, input, table, text};
use super::{bar, escape, page, signed_in};
use crate::api::ApiState;

/// Which locker's stock to show.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CatalogQuery {
    locker: String,
}

/// The fields of a new plan (amounts as text in the currency's units).
const PLAN_FIELDS: &str = "<label>Name <input name=\"name\" maxlength=\"64\" required></label>\
    <label>Size <input name=\"size_class\" maxlength=\"16\" size=\"4\" required></label>\
    <label>Deposit <input name=\"deposit\" size=\"7\" required></label>\
    <label>Free min <input name=\"free_minutes\" type=\"number\" min=\"0\" value=\"0\"></label>\
    <label>Unit min <input name=\"unit_minutes\" type=\"number\" min=\"1\" value=\"60\"></label>\
    <label>Per unit <input name=\"price_per_unit\" size=\"7\" required></label>\
    <label>Cap per 24 h <input name=\"cap_per_24h\" size=\"7\" required></label>\
    <label>Max min <input name=\"max_minutes\" type=\"number\" min=\"1\" value=\"4320\"></label>\
    <label>Overdue per unit <input name=\"overdue_price_per_unit\" size=\"7\" required></label>";

pub(super) async fn page_of(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/console/login").into_response();
    };
    let money = |minor: i64| state.wallets.currency().from_minor(minor).to_string();
    let (products, plans) = match (
        state.catalog.list(true).await,
        crate::rental::plan::active(&state.storage).await,
    ) {
        (Ok(products), Ok(plans)) => (products, plans),
        (Err(e), _) => return crate::api::ApiError::from(e).into_response(),
        (_, Err(e)) => return crate::api::ApiError::from(e).into_response(),
    };
    let product_rows: String = products
        .iter()
        .map(|p| {
            let api = format!("/v1/products/{}", p.id);
            let price = action(
                ("PATCH", &api),
                "<input name=\"price\" size=\"7\" aria-label=\"New price\" required>",
                "Set price",
                None,
                true,
            );
            let flip = action(
                ("PATCH", &api),
                &format!(
                    "<input type=\"hidden\" name=\"active\" value=\"{}\" data-bool>",
                    !p.active
                ),
                if p.active { "Withdraw" } else { "Sell again" },
                None,
                true,
            );
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>\
                 <td>{price}{flip}</td></tr>",
                escape(&p.sku),
                escape(&p.name),
                money(p.price),
                if p.active { "sold" } else { "withdrawn" },
                p.id,
            )
        })
        .collect();
    let plan_rows: String = plans
        .iter()
        .map(|p| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} min free, {} per {} min, at most {} \
                 per 24 h; overdue after {} min: {} per unit</td></tr>",
                escape(&p.name),
                escape(&p.size_class),
                money(p.terms.deposit),
                p.terms.free_minutes,
                money(p.terms.price_per_unit),
                p.terms.unit_minutes,
                money(p.terms.cap_per_24h),
                p.terms.max_minutes,
                money(p.terms.overdue_price_per_unit),
            )
        })
        .collect();
    let stock = match text(&query.locker) {
        None => String::new(),
        Some(locker) => stock_of(&state, &locker).await,
    };
    let body = format!(
        "{}<main data-csrf=\"{}\"><h1>Products, stock and plans</h1>\
         <h2>Products</h2>{}<h3>A new product</h3>{}\
         <h2>Stock of a locker</h2><form class=\"filters\" method=\"get\" action=\"/console/catalog\">\
         {}<button type=\"submit\">Show</button></form>{stock}\
         <h2>Rental price plans</h2><p>A new plan for a size replaces the current one for new \
         rentals; running rentals keep their terms.</p>{}<h3>A new plan</h3>{}</main>\
         <script src=\"/console/assets/act.js\"></script>",
        bar(&user, &token),
        super::session::csrf_of(&token),
        table(
            "products",
            &["SKU", "Name", "Price", "Sold", "Id", ""],
            &product_rows
        ),
        action(
            ("POST", "/v1/products"),
            "<label>SKU <input name=\"sku\" maxlength=\"64\" size=\"8\" required></label>\
             <label>Name <input name=\"name\" maxlength=\"100\" required></label>\
             <label>Price <input name=\"price\" size=\"7\" required></label>",
            "Add",
            None,
            true,
        ),
        input("locker", "Locker", &query.locker),
        table("plans", &["Name", "Size", "Deposit", "Terms"], &plan_rows),
        action(("POST", "/v1/plans"), PLAN_FIELDS, "Publish", None, true),
    );
    page(StatusCode::OK, "Catalog", &body, &[])
}

/// A locker's stock by door, with a form per door that replaces what it holds.
async fn stock_of(state: &ApiState, locker: &str) -> String {
    let lines = match state.catalog.stock(locker, None).await {
        Ok(lines) => lines,
        Err(e) => return format!("<p class=\"error\">{}</p>", escape(&e.to_string())),
    };
    let rows: String = lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                l.door, l.product_id, l.qty
            )
        })
        .collect();
    let set = action(
        ("PUT", &format!("/v1/devices/{locker}/doors/{{door}}/stock")),
        "<label>Door <input name=\"door\" type=\"number\" min=\"1\" max=\"512\" required></label>\
         <label>Product id <input name=\"product_id\" size=\"20\" required></label>\
         <label>Quantity <input name=\"qty\" type=\"number\" min=\"0\" value=\"1\"></label>",
        "Set the door's stock",
        None,
        true,
    );
    format!(
        "{}<p>Replaces what one door holds with one product (quantity 0 empties it).</p>{}",
        table("stock", &["Door", "Product", "Quantity"], &rows),
        set.replace("class=\"act filters\"", "class=\"act filters\" data-stock")
    )
}
