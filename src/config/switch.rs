//! Settings a file may switch off: the value, or the word `"off"`.
//!
//! The builders never take zero as "off" (see the crate docs' "One shape for every
//! layer": a zero count, window or rate is rejected naming its field; a rule is
//! switched off with its `no_*` method). A file follows the same rule: a trip or
//! ejection rule is switched off by writing `"off"`, and a zero is handed to the
//! builder, which rejects it.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A rule's setting in a file: its value, or `"off"`.
///
/// ```
/// # #[cfg(feature = "circuit-breaker")] {
/// use tower_fortify::config::{BreakerConfig, OrOff};
///
/// let c: BreakerConfig = toml::from_str("consecutive_failures = \"off\"\ncount_window = 50").unwrap();
/// assert_eq!(c.consecutive_failures, Some(OrOff::Off));
/// assert_eq!(c.count_window, Some(OrOff::Value(50)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrOff<T> {
    /// Written `"off"`: the rule is switched off.
    Off,
    /// The rule's value.
    Value(T),
}

impl<T> OrOff<T> {
    /// The value, or `None` when off.
    pub fn value(self) -> Option<T> {
        match self {
            OrOff::Off => None,
            OrOff::Value(v) => Some(v),
        }
    }
}

macro_rules! number_or_off {
    ($($t:ty),*) => {$(
        impl Serialize for OrOff<$t> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    OrOff::Off => s.serialize_str("off"),
                    OrOff::Value(v) => v.serialize(s),
                }
            }
        }

        impl<'de> Deserialize<'de> for OrOff<$t> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(NumberOrOff(PhantomData))
            }
        }
    )*};
}

number_or_off!(u32, f64);

/// A number a file gives for a rule.
pub(crate) trait Number: Sized {
    const EXPECTING: &'static str;
    fn from_u64(v: u64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
}

impl Number for u32 {
    const EXPECTING: &'static str = "a whole number or \"off\"";
    fn from_u64(v: u64) -> Option<Self> {
        u32::try_from(v).ok()
    }
    fn from_i64(v: i64) -> Option<Self> {
        u32::try_from(v).ok()
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
}

impl Number for f64 {
    const EXPECTING: &'static str = "a number or \"off\"";
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

struct NumberOrOff<T>(PhantomData<T>);

impl<T: Number> Visitor<'_> for NumberOrOff<T> {
    type Value = OrOff<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v == "off" {
            Ok(OrOff::Off)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_u64(v)
            .map(OrOff::Value)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i64(v)
            .map(OrOff::Value)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v)
            .map(OrOff::Value)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }
}

/// A duration as text (`"10s"`) or `"off"`.
impl Serialize for OrOff<Duration> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OrOff::Off => s.serialize_str("off"),
            OrOff::Value(d) => s.serialize_str(&super::format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for OrOff<Duration> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "off" {
            return Ok(OrOff::Off);
        }
        super::parse_duration(&text)
            .map(OrOff::Value)
            .map_err(de::Error::custom)
    }
}
