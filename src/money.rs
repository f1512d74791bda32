//! Money: `rust_decimal::Decimal` in Rust and in the API (as decimal strings, never floats), whole
//! minor units (`BIGINT`, e.g. cents) in SQL. The one rule at the storage boundary:
//!
//! **An amount is converted to minor units by rounding to the currency's exponent, half away
//! from zero** (0.005 EUR → 1 cent, −0.005 → −1 cent). Amounts that come from outside (the API,
//! a payment provider) are refused if they have more decimals than the currency has, so that
//! rounding only ever applies to amounts the gateway computes itself (fees).

use rust_decimal::{Decimal, RoundingStrategy};

/// The currency the gateway works in (configuration: `LOCKER_CURRENCY`,
/// `LOCKER_CURRENCY_EXPONENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    /// ISO 4217 code, three capital letters.
    pub code: String,
    /// Digits after the decimal point in its minor unit (EUR 2, JPY 0, KWD 3).
    pub exponent: u32,
}

impl Default for Currency {
    fn default() -> Self {
        Self {
            code: "EUR".into(),
            exponent: 2,
        }
    }
}

/// Why an amount cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// More decimals than the currency has.
    #[error("{amount} has more than {exponent} decimals")]
    TooPrecise {
        /// The amount.
        amount: Decimal,
        /// The currency's exponent.
        exponent: u32,
    },
    /// Outside what 64-bit minor units hold.
    #[error("{0} is out of range")]
    OutOfRange(Decimal),
}

impl Currency {
    /// Minor units for `amount`, by the rounding rule above.
    pub fn to_minor(&self, amount: Decimal) -> Result<i64, MoneyError> {
        let rounded =
            amount.round_dp_with_strategy(self.exponent, RoundingStrategy::MidpointAwayFromZero);
        let scaled = rounded
            .checked_mul(Decimal::from(10_i64.pow(self.exponent)))
            .ok_or(MoneyError::OutOfRange(amount))?;
        i64::try_from(scaled.trunc()).map_err(|_| MoneyError::OutOfRange(amount))
    }

    /// Minor units for an amount from outside, which must not need rounding.
    pub fn exact_minor(&self, amount: Decimal) -> Result<i64, MoneyError> {
        if amount.normalize().scale() > self.exponent {
            return Err(MoneyError::TooPrecise {
                amount,
                exponent: self.exponent,
            });
        }
        self.to_minor(amount)
    }

    /// The amount for `minor` units, with exactly the currency's decimals.
    pub fn from_minor(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent)
    }
}

/// Deserializes an amount from a JSON string only (`"20.50"`): a JSON number would pass through a
/// binary float somewhere on the client's side, so it is refused.
pub fn from_str_only<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(de)
        .map_err(|_| D::Error::custom("an amount is a decimal string such as \"20.50\""))?;
    text.parse::<Decimal>()
        .map_err(|_| D::Error::custom(format!("{text:?} is not a decimal amount")))
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
        let yen = Currency {
            code: "JPY".into(),
            exponent: 0,
        };
        assert_eq!(yen.to_minor(d("2.5")), Ok(3));
        assert_eq!(yen.from_minor(300), d("300"));
    }

    #[test]
    fn outside_amounts_are_never_rounded_silently() {
        let eur = Currency::default();
        assert_eq!(eur.exact_minor(d("10.25")), Ok(1025));
        assert_eq!(eur.exact_minor(d("10.250000")), Ok(1025));
        assert!(matches!(
            eur.exact_minor(d("10.255")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            eur.exact_minor(d("79228162514264337593543950335")),
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
            proptest::prop_assert_eq!(eur.exact_minor(eur.from_minor(minor)), Ok(minor));
        }
    }
}
