//! Money: `rust_decimal::Decimal` in Rust and in the API (as decimal strings, never floats), whole
//! minor units (`BIGINT`, e.g. cents) in SQL. The one rule at the storage boundary:
//!
//! **An amount is converted to minor units by rounding to the currency's exponent, half away
//! from zero** (0.005 EUR → 1 cent, −0.005 → −1 cent). Amounts that come from outside (the API,
//! a payment provider) are refused if they have more decimals than the currency has, so that
//! rounding only ever applies to amounts the gateway computes itself (fees).
//!
//! **One grammar for every amount from outside** ([`Currency::parse_outside`]): a JSON string of ASCII
//! digits, no sign, no exponent, no separators, no leading zeros (but `0.xx`), a point followed
//! by one to the currency's exponent of digits: [`AMOUNT_PATTERN`]. And every amount, and every
//! balance, has an upper bound ([`Currency::max_amount`], [`Currency::max_balance`]), so that
//! sums of them stay far from what 64-bit minor units hold.

use rust_decimal::{Decimal, RoundingStrategy};

/// The currency the gateway works in (configuration: `LOCKER_CURRENCY`,
/// `LOCKER_CURRENCY_EXPONENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    /// ISO 4217 code, three capital letters.
    pub code: String,
    /// Digits after the decimal point in its minor unit (EUR 2, JPY 0, KWD 3).
    pub exponent: u32,
    /// The largest amount accepted from outside in one piece (a top-up, a price, a refund), minor
    /// units (`LOCKER_MAX_AMOUNT`, default 10000.00 in a two-decimal currency).
    pub max_amount: i64,
    /// The largest balance a wallet may reach, minor units (`LOCKER_MAX_BALANCE`, default
    /// 1000000.00 in a two-decimal currency): a top-up that would pass it is refused.
    pub max_balance: i64,
}

/// `LOCKER_MAX_AMOUNT`'s default, in major units.
pub const DEFAULT_MAX_AMOUNT: i64 = 10_000;
/// `LOCKER_MAX_BALANCE`'s default, in major units.
pub const DEFAULT_MAX_BALANCE: i64 = 1_000_000;
/// The most digits before the point an amount may have (far below what `i64` minor units hold in
/// any exponent up to 4).
const MAX_INTEGER_DIGITS: usize = 12;

impl Default for Currency {
    fn default() -> Self {
        Self::new("EUR", 2)
    }
}

/// The grammar of an amount from outside, as a regular expression for a currency of two decimals
/// (the OpenAPI document states the configured currency's: [`Currency::pattern`]).
pub const AMOUNT_PATTERN: &str = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$";

/// Why an amount cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Outside what 64-bit minor units hold.
    #[error("{0} is out of range")]
    OutOfRange(Decimal),
}

/// Why an amount from outside is refused; the text says what the grammar is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a JSON string (a number went through a binary float somewhere).
    #[error("an amount is a decimal string such as \"20.50\", not a JSON {0}")]
    NotAString(&'static str),
    /// Not digits, an optional point and decimals.
    #[error(
        "{0:?} is not an amount: ASCII digits, no sign, exponent, separators or leading zeros, a point and at most {1} decimals (\"20.50\")"
    )]
    Malformed(String, u32),
    /// More decimals than the currency has.
    #[error("{0:?} has more than {1} decimals")]
    TooPrecise(String, u32),
    /// Above the configured bound.
    #[error("{0:?} is more than the largest amount accepted, {1}")]
    TooLarge(String, Decimal),
}

impl Currency {
    /// `code` with `exponent` decimals and the default bounds.
    pub fn new(code: &str, exponent: u32) -> Self {
        let unit = 10_i64.pow(exponent.min(4));
        Self {
            code: code.to_owned(),
            exponent,
            max_amount: DEFAULT_MAX_AMOUNT * unit,
            max_balance: DEFAULT_MAX_BALANCE * unit,
        }
    }

    /// [`AMOUNT_PATTERN`] for this currency's exponent.
    pub fn pattern(&self) -> String {
        match self.exponent {
            0 => format!(r"^(0|[1-9][0-9]{{0,{}}})$", MAX_INTEGER_DIGITS - 1),
            e => format!(
                r"^(0|[1-9][0-9]{{0,{}}})(\.[0-9]{{1,{e}}})?$",
                MAX_INTEGER_DIGITS - 1
            ),
        }
    }

    /// Minor units for an amount from outside, by the one grammar, at most
    /// [`Currency::max_amount`]. Never panics, whatever the text.
    pub fn parse_outside(&self, text: &str) -> Result<i64, AmountError> {
        let malformed = || AmountError::Malformed(shown(text), self.exponent);
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || whole.len() > MAX_INTEGER_DIGITS {
            return Err(malformed());
        }
        if whole.len() > 1 && whole.starts_with('0') {
            return Err(malformed());
        }
        let fraction = fraction.unwrap_or("");
        if text.contains('.') && !digits(fraction) {
            return Err(malformed());
        }
        if fraction.len() > self.exponent as usize {
            return Err(AmountError::TooPrecise(shown(text), self.exponent));
        }
        // At most 12 + 4 digits: no overflow in i64.
        let unit = 10_i64.pow(self.exponent);
        let mut minor: i64 = 0;
        for b in whole.bytes() {
            minor = minor * 10 + i64::from(b - b'0');
        }
        minor *= unit;
        let mut scale = unit;
        for b in fraction.bytes() {
            scale /= 10;
            minor += i64::from(b - b'0') * scale;
        }
        if minor > self.max_amount {
            return Err(AmountError::TooLarge(
                shown(text),
                self.from_minor(self.max_amount),
            ));
        }
        Ok(minor)
    }

    /// Minor units for `amount`, by the rounding rule above.
    pub fn to_minor(&self, amount: Decimal) -> Result<i64, MoneyError> {
        let rounded =
            amount.round_dp_with_strategy(self.exponent, RoundingStrategy::MidpointAwayFromZero);
        let scaled = rounded
            .checked_mul(Decimal::from(10_i64.pow(self.exponent)))
            .ok_or(MoneyError::OutOfRange(amount))?;
        i64::try_from(scaled.trunc()).map_err(|_| MoneyError::OutOfRange(amount))
    }

    /// The amount for `minor` units, with exactly the currency's decimals.
    pub fn from_minor(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent)
    }
}

/// At most 40 characters of a text shown back in an error.
fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn the_rounding_rule_is_half_away_from_zero() {
        let eur = Currency::default();
        for (amount, minor) in [
            ("0", 0),
            ("1", 100),
            ("1.5", 150),
            ("0.004", 0),
            ("0.005", 1),
            ("0.015", 2),
            ("-0.005", -1),
            ("12.345", 1235),
        ] {
            assert_eq!(eur.to_minor(d(amount)), Ok(minor), "{amount}");
        }
        let yen = Currency::new("JPY", 0);
        assert_eq!(yen.to_minor(d("2.5")), Ok(3));
        assert_eq!(yen.from_minor(300), d("300"));
    }

    #[test]
    fn amounts_beyond_minor_units_are_out_of_range() {
        assert!(matches!(
            Currency::default().to_minor(d("79228162514264337593543950335")),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn minor_units_come_back_with_the_currencys_decimals() {
        let eur = Currency::default();
        assert_eq!(eur.from_minor(1025).to_string(), "10.25");
        assert_eq!(eur.from_minor(0).to_string(), "0.00");
        assert_eq!(eur.from_minor(-5).to_string(), "-0.05");
    }

    proptest::proptest! {
        #[test]
        fn minor_units_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000) {
            let eur = Currency::default();
            proptest::prop_assert_eq!(eur.to_minor(eur.from_minor(minor)), Ok(minor));
        }
    }
}
