//! Time arithmetic for rendering: the simulated clock and the `YYYY-MM-DD HH:MM:SS` strings
//! Asterisk writes in `Cdr` and `CEL` events.
//!
//! The recording Asterisk ran in UTC, so its date strings are UTC and so are ours.
//! This module does no time-zone handling beyond that.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock that runs `factor` times faster than the wall clock, starting at a given epoch.
///
/// With factor 1 it is the wall clock; with factor 10 a 6-second call plays in 0.6 s while its
/// Timestamps still say 6 s, so a client measures the same durations.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin: Instant,
    origin_epoch_us: i64,
    factor: f64,
}

impl SimClock {
    /// A clock starting now at the current wall-clock time.
    pub fn starting_now(factor: f64) -> SimClock {
        let epoch_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        SimClock::new(Instant::now(), epoch_us, factor)
    }

    /// A clock that reads `origin_epoch_us` at `origin`. A factor that is not a positive finite
    /// number is taken as 1.
    pub fn new(origin: Instant, origin_epoch_us: i64, factor: f64) -> SimClock {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        SimClock {
            origin,
            origin_epoch_us,
            factor,
        }
    }

    /// Simulated epoch microseconds now.
    pub fn now_us(&self) -> i64 {
        self.at(Instant::now())
    }

    /// Simulated epoch microseconds at a wall-clock instant.
    pub fn at(&self, instant: Instant) -> i64 {
        let elapsed = instant.saturating_duration_since(self.origin).as_secs_f64();
        self.origin_epoch_us + (elapsed * self.factor * 1e6) as i64
    }

    /// The wall-clock instant at which the simulated clock reads `epoch_us`.
    pub fn instant_of(&self, epoch_us: i64) -> Instant {
        let sim_elapsed_us = (epoch_us - self.origin_epoch_us).max(0) as f64;
        self.origin + Duration::from_secs_f64(sim_elapsed_us / 1e6 / self.factor)
    }

    /// How much wall-clock time a simulated span takes.
    pub fn wall_duration(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64(sim.as_secs_f64() / self.factor)
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }
}

/// `2026-11-22 08:09:28` → epoch seconds (UTC).
pub(crate) fn parse_datetime(v: &[u8]) -> Option<i64> {
    if v.len() != 19 || v[4] != b'-' || v[7] != b'-' || v[10] != b' ' || v[13] != b':' {
        return None;
    }
    if v[16] != b':' {
        return None;
    }
    let num = |a: usize, b: usize| -> Option<i64> {
        let s = std::str::from_utf8(&v[a..b]).ok()?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Epoch seconds → `2026-11-22 08:09:28` (UTC), appended to `out`.
pub(crate) fn write_datetime(epoch_secs: i64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
}

/// `HH:MM:SS` of a duration in seconds, as in `CoreShowChannel` `Duration`.
pub(crate) fn hms(secs: i64) -> String {
    let secs = secs.max(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trips_through_epoch() {
        // The first call of the recording: Timestamp 1795334968 is 2026-11-22 08:09:28 UTC.
        assert_eq!(parse_datetime(b"2026-11-22 08:09:28"), Some(1_795_334_968));
        for secs in [0, 951_782_400, 1_795_334_968, 4_102_444_799] {
            let mut out = Vec::new();
            write_datetime(secs, &mut out);
            assert_eq!(parse_datetime(&out), Some(secs), "{secs}");
        }
        assert_eq!(parse_datetime(b"2026-13-22 08:09:28"), None);
        assert_eq!(parse_datetime(b""), None);
    }

    #[test]
    fn sim_clock_runs_faster_by_its_factor() {
        let origin = Instant::now();
        let clock = SimClock::new(origin, 1_000_000, 10.0);
        assert_eq!(clock.at(origin + Duration::from_millis(100)), 2_000_000);
        let due = clock.instant_of(3_000_000);
        assert_eq!(due.duration_since(origin), Duration::from_millis(200));
        assert_eq!(SimClock::new(origin, 0, f64::NAN).factor(), 1.0);
    }

    #[test]
    fn durations_render_as_hours_minutes_seconds() {
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(3_725), "01:02:05");
    }
}
