//! Amounts in request bodies: read as they were written (a JSON string, or whatever else came),
//! then checked against the one grammar of [`crate::money`] with the field's name, so every wrong
//! amount is a 422 `invalid_amount` that says which field and why.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::SchemaType};

use super::error::{ApiError, FieldError};
use crate::money::{AMOUNT_PATTERN, Currency};

/// An amount as the client wrote it; [`Amount::minor`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(Written);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    Text(String),
    Not(&'static str),
}

impl Amount {
    /// Minor units, by the grammar and the currency's bounds; `min` is the least allowed (0 or 1).
    pub fn minor(&self, currency: &Currency, field: &str, min: i64) -> Result<i64, FieldError> {
        let error = |message: String| FieldError {
            field: field.to_owned(),
            message,
        };
        let minor = match &self.0 {
            Written::Text(text) => currency.parse_outside(text),
            Written::Not(kind) => Err(crate::money::AmountError::NotAString(kind)),
        }
        .map_err(|e| error(e.to_string()))?;
        if minor < min {
            return Err(error("must be more than zero".to_owned()));
        }
        Ok(minor)
    }

    /// [`Amount::minor`] as the API's error.
    pub fn checked(&self, currency: &Currency, field: &str, min: i64) -> Result<i64, ApiError> {
        self.minor(currency, field, min)
            .map_err(|e| ApiError::InvalidAmount(vec![e]))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Written::Text(text) => f.write_str(text),
            Written::Not(kind) => write!(f, "(a JSON {kind})"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount as a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Ok(Amount(Written::Text(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Amount, E> {
                Ok(Amount(Written::Text(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Amount, E> {
                Ok(Amount(Written::Not("number")))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Amount, E> {
                Ok(Amount(Written::Not("number")))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Amount, E> {
                Ok(Amount(Written::Not("number")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Amount, E> {
                Ok(Amount(Written::Not("null")))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Amount, E> {
                Ok(Amount(Written::Not("boolean")))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Amount, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Amount(Written::Not("array")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Amount, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Amount(Written::Not("object")))
            }
        }
        de.deserialize_any(Any)
    }
}

/// The `Amount` schema: a string with the grammar's pattern. [`super::app`] replaces the pattern
/// with the configured currency's.
impl utoipa::PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        schema(AMOUNT_PATTERN).into()
    }
}

impl utoipa::ToSchema for Amount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Amount")
    }
}

/// The schema of an amount with `pattern`.
pub fn schema(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
        .description(Some(
            "An amount as a decimal string: ASCII digits, no sign, exponent or separators, no \
             leading zeros (but 0.xx), at most the currency's decimals; at most \
             LOCKER_MAX_AMOUNT. Anything else is a 422 `invalid_amount` naming the field.",
        ))
        .examples([serde_json::json!("20.00")])
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Amount {
        serde_json::from_str(json).expect("any JSON value reads")
    }

    #[test]
    fn loose_amounts_are_refused_naming_the_field() {
        let eur = Currency::default();
        for bad in [
            r#""1e2""#,
            r#""1_000""#,
            r#""+5""#,
            r#""-5""#,
            r#"".5""#,
            r#""5.""#,
            r#""0001.00""#,
            r#""1.000""#,
            r#""1,00""#,
            r#"" 1""#,
            r#""""#,
            r#""١٢""#,
            r#""NaN""#,
            "100",
            "1.5",
            "true",
            "[]",
            "{}",
            r#""92233720368547758.07""#,
        ] {
            let e = read(bad).minor(&eur, "amount", 0).expect_err(bad);
            assert_eq!(e.field, "amount", "{bad}");
        }
        for (good, minor) in [
            (r#""0""#, 0),
            (r#""0.5""#, 50),
            (r#""0.05""#, 5),
            (r#""20""#, 2000),
            (r#""20.5""#, 2050),
            (r#""10000.00""#, 1_000_000),
        ] {
            assert_eq!(read(good).minor(&eur, "amount", 0), Ok(minor), "{good}");
        }
        assert!(read(r#""10000.01""#).minor(&eur, "amount", 0).is_err());
        assert!(read(r#""0""#).minor(&eur, "amount", 1).is_err());
    }

    #[test]
    fn the_pattern_agrees_with_the_parser() {
        // The documented pattern, checked by hand for a few strings both ways.
        let eur = Currency::default();
        assert_eq!(eur.pattern(), AMOUNT_PATTERN);
        let yen = Currency::new("JPY", 0);
        assert_eq!(yen.pattern(), r"^(0|[1-9][0-9]{0,11})$");
        assert!(yen.parse_outside("5.0").is_err());
        assert_eq!(yen.parse_outside("5"), Ok(5));
    }

    proptest::proptest! {
        #[test]
        fn no_text_panics_the_parser(text in ".{0,30}") {
            let _ = Currency::default().parse_outside(&text);
        }

        #[test]
        fn written_minor_units_read_back(minor in 0i64..=1_000_000) {
            let eur = Currency::default();
            let text = eur.from_minor(minor).to_string();
            proptest::prop_assert_eq!(eur.parse_outside(&text), Ok(minor));
        }
    }
}
