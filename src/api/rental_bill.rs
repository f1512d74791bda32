//! A rental's money, plainly: after its end, the fee and how it was made (free minutes, units
//! charged, the daily cap, overdue units), and where the deposit went (captured for the fee,
//! released back to the wallet) and what was paid beyond it.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::money::Currency;
use crate::rental::Rental;

/// How an ended rental's fee was made and paid.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillView {
    /// Minutes billed (from the door opening at the start to the one at pickup, less any wait
    /// for a pickup that did not open), rounded up.
    pub billed_minutes: u64,
    /// Of them, free at the start.
    pub free_minutes: u64,
    /// Units of time charged at the regular price.
    pub units: u64,
    /// The regular price of a unit.
    #[schema(value_type = String)]
    pub price_per_unit: Decimal,
    /// Whether the most charged per 24 hours lowered the fee.
    pub cap_applied: bool,
    /// The most charged per 24 hours.
    #[schema(value_type = String)]
    pub cap_per_24h: Decimal,
    /// Units of time charged at the overdue price (past the plan's longest rental).
    pub overdue_units: u64,
    /// The overdue price of a unit.
    #[schema(value_type = String)]
    pub overdue_price_per_unit: Decimal,
    /// The fee.
    #[schema(value_type = String)]
    pub fee: Decimal,
    /// Of the deposit held, taken for the fee.
    #[schema(value_type = String)]
    pub captured_from_deposit: Decimal,
    /// Of the deposit held, given back to the wallet.
    #[schema(value_type = String)]
    pub released_to_wallet: Decimal,
    /// The fee beyond the deposit, taken from the balance (or owed as a debt if it was short).
    #[schema(value_type = String)]
    pub beyond_deposit: Decimal,
    /// Of the fee, refunded later by an operator.
    #[schema(value_type = String)]
    pub refunded: Decimal,
}

/// The bill of an ended rental; `None` for one that did not end (or whose terms are unreadable).
pub fn bill(currency: &Currency, rental: &Rental) -> Option<BillView> {
    if rental.state != crate::rental::RentalState::Ended {
        return None;
    }
    let made = rental.bill()?;
    let terms = rental.terms?;
    let fee = rental.fee.unwrap_or(made.total);
    let captured = fee.min(rental.deposit_held);
    let money = |minor| currency.from_minor(minor);
    Some(BillView {
        billed_minutes: made.billed_minutes,
        free_minutes: made.free_minutes,
        units: made.units,
        price_per_unit: money(terms.price_per_unit),
        cap_applied: made.capped,
        cap_per_24h: money(terms.cap_per_24h),
        overdue_units: made.overdue_units,
        overdue_price_per_unit: money(terms.overdue_price_per_unit),
        fee: money(fee),
        captured_from_deposit: money(captured),
        released_to_wallet: money(rental.deposit_held - captured),
        beyond_deposit: money(fee - captured),
        refunded: money(rental.refunded),
    })
}
