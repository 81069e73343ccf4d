//! UTC timestamps with microsecond resolution. The core never reads the clock: every time is
//! handed in by the caller (for AMI, the event's `Timestamp` header).

use std::fmt;

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses Asterisk's `<epoch>.<usec>` (`1795334968.271370`); fewer fraction digits are
    /// accepted (`.27` is 270 ms). Returns `None` for anything else, never panics.
    pub fn parse_epoch(text: &str) -> Option<Self> {
        let (secs, frac) = match text.split_once('.') {
            Some((s, f)) => (s, f),
            None => (text, ""),
        };
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
            return None;
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: i64 = secs.parse().ok()?;
        let mut micros: i64 = 0;
        for (i, b) in frac.bytes().take(6).enumerate() {
            micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
        }
        Some(Self(secs * 1_000_000 + micros))
    }

    /// `self - earlier` in microseconds (negative when `earlier` is later).
    pub const fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This time plus `micros`.
    pub const fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// RFC 3339 in UTC with microseconds: `2026-11-22T10:09:28.271370Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_asterisk_timestamps() {
        let t = Timestamp::parse_epoch("1795334968.271370").unwrap();
        assert_eq!(t.as_micros(), 1_795_334_968_271_370);
        assert_eq!(t.to_string(), "2026-11-22T08:09:28.271370Z");
        assert_eq!(
            Timestamp::parse_epoch("0").unwrap().to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::parse_epoch("1.5").unwrap().as_micros(),
            1_500_000
        );
        assert_eq!(
            Timestamp::parse_epoch("951782400").unwrap().to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
        for bad in ["", ".", "x", "1.x", "-1", "1.2.3", "99999999999999"] {
            assert_eq!(Timestamp::parse_epoch(bad), None, "{bad}");
        }
    }
}
