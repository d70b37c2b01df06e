//! Durations written as text: `"250ms"`, `"2s"`, `"1m"`, `"1m30s"`.
//!
//! A number followed by a unit, `ns`, `us` (or `µs`), `ms`, `s`, `m` or `h`; several
//! such terms add up (`"1m30s"`). No spaces, no fractions (`"1.5s"` is `"1500ms"`),
//! no sign. Written back in the largest unit that divides the duration exactly, so a
//! value read and printed again reads the same.

use std::fmt;
use std::time::Duration;

/// Reads a duration such as `"250ms"` or `"1m30s"`: a whole number followed by a
/// unit, `ns`, `us` (or `µs`), `ms`, `s`, `m` or `h`; several such terms add up. No
/// spaces, no fractions (`"1.5s"` is `"1500ms"`), no sign.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::config::parse_duration;
///
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("250").is_err()); // no unit
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why: &'static str| DurationError {
        text: text.to_string(),
        why,
    };
    if text.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err(
                "expected a whole number followed by a unit (ns, us, ms, s, m, h)",
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, tail) = rest.split_at(unit_len);
        let nanos_per: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit (ns, us, ms, s, m, h)")),
            _ => return Err(err("unknown unit (expected ns, us, ms, s, m, h)")),
        };
        let nanos = u128::from(number) * u128::from(nanos_per);
        let term = Duration::new(
            u64::try_from(nanos / 1_000_000_000).map_err(|_| err("too large"))?,
            (nanos % 1_000_000_000) as u32,
        );
        total = total.checked_add(term).ok_or_else(|| err("too large"))?;
        rest = tail;
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest unit that
/// divides it exactly (`"1500ms"`, `"2s"`, `"1m"`); zero is `"0s"`.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::config::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(format_duration(Duration::from_secs(120)), "2m");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns.is_multiple_of(per) {
            return format!("{}{unit}", ns / per);
        }
    }
    format!("{ns}ns")
}

/// A duration that could not be read; says what was read and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} (write it as \"250ms\", \"2s\", \"1m\")",
            self.text, self.why
        )
    }
}

impl std::error::Error for DurationError {}

/// Serde support for `Option<Duration>` fields written as text.
pub(crate) mod opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_are_read() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_duration("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1s500ms"), Ok(ms(1500)));
    }

    #[test]
    fn malformed_durations_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty"),
            ("250", "missing unit"),
            ("ms", "expected a whole number"),
            ("1.5s", "unknown unit"),
            ("2 s", "unknown unit"),
            ("-1s", "expected a whole number"),
            ("3days", "unknown unit"),
            ("99999999999999999999s", "too large"),
        ] {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn formatting_reads_back_the_same() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(15),
            Duration::from_millis(250),
            Duration::from_millis(1500),
            Duration::from_secs(2),
            Duration::from_secs(90),
            Duration::from_secs(3600),
            Duration::new(1, 1),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
    }
}
