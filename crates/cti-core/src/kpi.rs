//! Contact-center KPI arithmetic: the one definition of every number a supervisor sees, used
//! by the live dashboard, the historical reports and the exports alike (`docs/metrics.md`
//! states the same formulas in words).
//!
//! What it is: plain sums ([`KpiSums`], [`ActivitySums`], [`CallbackSums`]) that can be added
//! call by call ([`KpiSums::add`]) or produced by a database `GROUP BY` with the same rules,
//! merged ([`KpiSums::merge`]) across groups, and turned into ratios and averages once
//! ([`kpis`]). Because every derived number comes from additive sums, a report grouped by hour
//! and then summed equals the report of the whole day, and the dashboard's window equals the
//! report of the same period.
//!
//! What it is not: it reads no clock and no database. Which period a call belongs to is the
//! caller's business (the rule, by start time, is in `docs/metrics.md`); local-time bucketing
//! helpers ([`local_hour`], [`local_weekday`], [`local_day`]) take the UTC offset as a
//! parameter.

use crate::record::{CallRecord, Direction, Outcome};

/// Microseconds in a millisecond: durations are counted in whole milliseconds, truncated,
/// exactly as storage keeps them, so live and stored numbers agree to the millisecond.
const US_PER_MS: i64 = 1_000;

/// How a finished customer call counts, after the partition of `docs/metrics.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    /// Inbound, someone talked with the customer.
    Answered,
    /// Inbound, unanswered, and it waited less than the short-abandon threshold: noise (a
    /// misdial, a hang-up in the greeting), kept out of rates.
    ShortAbandoned,
    /// Inbound, the caller hung up while waiting, before any agent was offered the call.
    Abandoned,
    /// Inbound, offered but nobody answered (missed, busy, failed, voicemail).
    Missed,
    /// Outbound (an agent called out).
    Outbound,
    /// Agent to agent: not a customer call, counted nowhere.
    Internal,
}

/// The facts about one finished call that KPIs read: what storage keeps in its `calls` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    /// Which way the call went.
    pub direction: Direction,
    /// How it ended.
    pub outcome: Outcome,
    /// The short-abandon flag of the record.
    pub short_abandon: bool,
    /// Time from start to answer (or to the end when unanswered), milliseconds.
    pub wait_ms: i64,
    /// Time with agents, hold included, milliseconds.
    pub talk_ms: i64,
    /// Time on hold, milliseconds.
    pub hold_ms: i64,
    /// Number of transfers of the customer.
    pub transfers: i64,
}

impl CallFacts {
    /// The facts of a finished record; `None` while the call lasts (no outcome yet).
    /// Durations are truncated to milliseconds, as storage does.
    pub fn from_record(record: &CallRecord) -> Option<CallFacts> {
        Some(CallFacts {
            direction: record.direction,
            outcome: record.outcome?,
            short_abandon: record.short_abandon,
            wait_ms: record.wait_us / US_PER_MS,
            talk_ms: record.talk_us / US_PER_MS,
            hold_ms: record.hold_us / US_PER_MS,
            transfers: record.transfers.len() as i64,
        })
    }

    /// Where this call falls in the partition.
    pub fn class(&self) -> CallClass {
        match (self.direction, self.outcome) {
            (Direction::Internal, _) => CallClass::Internal,
            (Direction::Outbound, _) => CallClass::Outbound,
            (Direction::Inbound, Outcome::Answered) => CallClass::Answered,
            (Direction::Inbound, _) if self.short_abandon => CallClass::ShortAbandoned,
            (Direction::Inbound, Outcome::Abandoned) => CallClass::Abandoned,
            (Direction::Inbound, _) => CallClass::Missed,
        }
    }
}

/// Additive sums over finished calls. Every field is a count or a sum (or a maximum), so two
/// [`KpiSums`] of disjoint call sets merge into the sums of their union.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KpiSums {
    /// Inbound calls (every class but outbound and internal).
    pub offered: i64,
    /// Inbound calls answered.
    pub answered: i64,
    /// Inbound calls answered with `wait_ms <= service level threshold`.
    pub answered_in_sl: i64,
    /// Inbound unanswered calls that were not short abandons and were not abandoned.
    pub missed: i64,
    /// Inbound calls abandoned (not short).
    pub abandoned: i64,
    /// Inbound unanswered calls under the short-abandon threshold.
    pub short_abandoned: i64,
    /// Σ wait of counted inbound calls (offered minus short abandons), ms.
    pub wait_sum_ms: i64,
    /// Max wait of counted inbound calls, ms.
    pub wait_max_ms: i64,
    /// Σ wait of answered inbound calls, ms.
    pub answered_wait_sum_ms: i64,
    /// Σ talk (hold included) of answered inbound calls, ms.
    pub talk_sum_ms: i64,
    /// Σ hold of answered inbound calls, ms.
    pub hold_sum_ms: i64,
    /// Σ transfers of customer calls (inbound and outbound).
    pub transfers: i64,
    /// Outbound calls.
    pub outbound: i64,
    /// Outbound calls answered by the callee.
    pub outbound_answered: i64,
    /// Σ talk of outbound calls, ms.
    pub outbound_talk_sum_ms: i64,
}

impl KpiSums {
    /// Adds one finished call; `sl_threshold_ms` is the service-level threshold of its queue.
    pub fn add(&mut self, call: &CallFacts, sl_threshold_ms: i64) {
        let class = call.class();
        if matches!(class, CallClass::Internal) {
            return;
        }
        self.transfers += call.transfers;
        if matches!(class, CallClass::Outbound) {
            self.outbound += 1;
            if call.outcome == Outcome::Answered {
                self.outbound_answered += 1;
            }
            self.outbound_talk_sum_ms += call.talk_ms;
            return;
        }
        self.offered += 1;
        if matches!(class, CallClass::ShortAbandoned) {
            self.short_abandoned += 1;
            return;
        }
        self.wait_sum_ms += call.wait_ms;
        self.wait_max_ms = self.wait_max_ms.max(call.wait_ms);
        match class {
            CallClass::Answered => {
                self.answered += 1;
                if call.wait_ms <= sl_threshold_ms {
                    self.answered_in_sl += 1;
                }
                self.answered_wait_sum_ms += call.wait_ms;
                self.talk_sum_ms += call.talk_ms;
                self.hold_sum_ms += call.hold_ms;
            }
            CallClass::Abandoned => self.abandoned += 1,
            _ => self.missed += 1,
        }
    }

    /// The sums of the union of two disjoint call sets.
    pub fn merge(&mut self, other: &KpiSums) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.answered_in_sl += other.answered_in_sl;
        self.missed += other.missed;
        self.abandoned += other.abandoned;
        self.short_abandoned += other.short_abandoned;
        self.wait_sum_ms += other.wait_sum_ms;
        self.wait_max_ms = self.wait_max_ms.max(other.wait_max_ms);
        self.answered_wait_sum_ms += other.answered_wait_sum_ms;
        self.talk_sum_ms += other.talk_sum_ms;
        self.hold_sum_ms += other.hold_sum_ms;
        self.transfers += other.transfers;
        self.outbound += other.outbound;
        self.outbound_answered += other.outbound_answered;
        self.outbound_talk_sum_ms += other.outbound_talk_sum_ms;
    }

    /// Offered calls minus short abandons: the denominator of every rate.
    pub fn counted(&self) -> i64 {
        self.offered - self.short_abandoned
    }
}

/// Agent time by status over a period, from status spans clipped to the period, plus the
/// agents' talk time from the calls of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActivitySums {
    /// Time in `available` (includes time on calls: talking does not change the status), ms.
    pub available_ms: i64,
    /// Time in `after_call_work`, ms.
    pub after_call_work_ms: i64,
    /// Time in `away` (any reason), ms.
    pub away_ms: i64,
    /// Σ agents' talk time on customer calls (each agent's own share), ms.
    pub agent_talk_ms: i64,
}

impl ActivitySums {
    /// The sums of two disjoint sets of agents.
    pub fn merge(&mut self, other: &ActivitySums) {
        self.available_ms += other.available_ms;
        self.after_call_work_ms += other.after_call_work_ms;
        self.away_ms += other.away_ms;
        self.agent_talk_ms += other.agent_talk_ms;
    }
}

/// Callback tasks (opened for missed calls) created in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallbackSums {
    /// Callback tasks opened.
    pub opened: i64,
    /// Of those, done (the customer was reached).
    pub done: i64,
    /// Σ (closed_at − created_at) of the done ones, ms.
    pub time_to_callback_sum_ms: i64,
    /// Max of the same, ms.
    pub time_to_callback_max_ms: i64,
}

/// The derived KPIs of one group. Ratios are `None` when their denominator is zero (a report
/// shows "—", not 0 % or 100 %). Durations are in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Kpis {
    /// Inbound calls.
    pub offered: i64,
    /// Answered inbound calls.
    pub answered: i64,
    /// Missed inbound calls.
    pub missed: i64,
    /// Abandoned inbound calls (short ones excluded).
    pub abandoned: i64,
    /// Short abandons.
    pub short_abandoned: i64,
    /// answered / (offered − short abandons).
    pub answer_rate: Option<f64>,
    /// (abandoned + missed) / (offered − short abandons).
    pub lost_rate: Option<f64>,
    /// answered within the threshold / (offered − short abandons).
    pub service_level: Option<f64>,
    /// Average speed of answer: Σ wait of answered / answered, s.
    pub asa_s: Option<f64>,
    /// Σ wait / (offered − short abandons), s.
    pub avg_wait_s: Option<f64>,
    /// Longest wait of a counted call, s.
    pub max_wait_s: f64,
    /// Average talk (hold included) of answered calls, s.
    pub avg_talk_s: Option<f64>,
    /// Average hold of answered calls, s.
    pub avg_hold_s: Option<f64>,
    /// Average handle time: (Σ talk + Σ after-call work) / answered, s. Without status data
    /// after-call work counts as zero.
    pub aht_s: Option<f64>,
    /// Transfers of customer calls.
    pub transfers: i64,
    /// Outbound calls.
    pub outbound: i64,
    /// Outbound calls answered.
    pub outbound_answered: i64,
    /// Callback tasks opened.
    pub callbacks_opened: i64,
    /// Callback tasks done.
    pub callbacks_done: i64,
    /// Average time from a missed call's task to its callback, s.
    pub avg_time_to_callback_s: Option<f64>,
    /// Longest of the same, s.
    pub max_time_to_callback_s: f64,
    /// (agent talk + after-call work) / (available + after-call work).
    pub occupancy: Option<f64>,
}

/// Turns sums into KPIs; the only place a ratio or average is computed.
pub fn kpis(calls: &KpiSums, activity: &ActivitySums, callbacks: &CallbackSums) -> Kpis {
    let counted = calls.counted();
    let staffed_ms = activity.available_ms + activity.after_call_work_ms;
    Kpis {
        offered: calls.offered,
        answered: calls.answered,
        missed: calls.missed,
        abandoned: calls.abandoned,
        short_abandoned: calls.short_abandoned,
        answer_rate: ratio(calls.answered, counted),
        lost_rate: ratio(calls.abandoned + calls.missed, counted),
        service_level: ratio(calls.answered_in_sl, counted),
        asa_s: seconds_per(calls.answered_wait_sum_ms, calls.answered),
        avg_wait_s: seconds_per(calls.wait_sum_ms, counted),
        max_wait_s: ms_to_s(calls.wait_max_ms),
        avg_talk_s: seconds_per(calls.talk_sum_ms, calls.answered),
        avg_hold_s: seconds_per(calls.hold_sum_ms, calls.answered),
        aht_s: seconds_per(
            calls.talk_sum_ms + activity.after_call_work_ms,
            calls.answered,
        ),
        transfers: calls.transfers,
        outbound: calls.outbound,
        outbound_answered: calls.outbound_answered,
        callbacks_opened: callbacks.opened,
        callbacks_done: callbacks.done,
        avg_time_to_callback_s: seconds_per(callbacks.time_to_callback_sum_ms, callbacks.done),
        max_time_to_callback_s: ms_to_s(callbacks.time_to_callback_max_ms),
        occupancy: ratio(
            activity.agent_talk_ms + activity.after_call_work_ms,
            staffed_ms,
        ),
    }
}

/// Service-level threshold per queue, with a default for calls of other queues (and calls
/// that entered no queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLevel {
    /// Threshold for queues not listed, ms.
    pub default_ms: i64,
    /// (queue, threshold ms).
    pub per_queue: Vec<(String, i64)>,
}

impl Default for ServiceLevel {
    /// 20 seconds: the classic "80/20" target.
    fn default() -> Self {
        ServiceLevel {
            default_ms: 20_000,
            per_queue: Vec::new(),
        }
    }
}

impl ServiceLevel {
    /// The threshold for a call of `queue`.
    pub fn threshold_ms(&self, queue: Option<&str>) -> i64 {
        queue
            .and_then(|q| self.per_queue.iter().find(|(name, _)| name == q))
            .map_or(self.default_ms, |(_, ms)| *ms)
    }
}

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;
/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;

/// Local hour of day (0–23) of a UTC time at a fixed UTC offset.
pub fn local_hour(at_us: i64, utc_offset_s: i32) -> u32 {
    let local = at_us + i64::from(utc_offset_s) * 1_000_000;
    (local.rem_euclid(DAY_US) / HOUR_US) as u32
}

/// Local weekday, Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
pub fn local_weekday(at_us: i64, utc_offset_s: i32) -> u32 {
    (local_day(at_us, utc_offset_s) + 3).rem_euclid(7) as u32
}

/// Local calendar day as days since 1970-01-01.
pub fn local_day(at_us: i64, utc_offset_s: i32) -> i64 {
    (at_us + i64::from(utc_offset_s) * 1_000_000).div_euclid(DAY_US)
}

/// Start (UTC, µs) of the shift containing `now_us`: shifts start at the given local minutes
/// after midnight (e.g. `[480, 1200]` for 08:00 and 20:00), every day. A 24/7 center's
/// "today" is its current shift, not the calendar day. With no shift starts, local midnight.
pub fn shift_start(now_us: i64, utc_offset_s: i32, shift_starts_min: &[u32]) -> i64 {
    let offset_us = i64::from(utc_offset_s) * 1_000_000;
    let local = now_us + offset_us;
    let midnight = local.div_euclid(DAY_US) * DAY_US;
    let minute_us = 60_000_000;
    let mut best: Option<i64> = None;
    for day in [midnight - DAY_US, midnight] {
        for start in shift_starts_min {
            let at = day + i64::from(*start % 1440) * minute_us;
            if at <= local && best.is_none_or(|b| at > b) {
                best = Some(at);
            }
        }
    }
    best.unwrap_or(midnight) - offset_us
}

/// The price of outbound calls to numbers starting with `prefix` (E.164, `+7495`; `+` alone
/// matches every number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    /// Number prefix; the longest matching prefix wins.
    pub prefix: String,
    /// Price of one minute in minor currency units (kopecks, cents).
    pub per_minute_minor: i64,
    /// Billing increment in seconds (60: per started minute; 1: per second).
    pub increment_s: i64,
    /// Calls with less talk than this are free, seconds.
    pub free_s: i64,
}

/// The cost of one answered outbound call in minor units: talk time rounded up to the
/// tariff's increment, times the per-minute price, rounded up to a whole minor unit.
/// `None` when no tariff matches the number.
pub fn call_cost_minor(tariffs: &[Tariff], number: &str, talk_ms: i64) -> Option<i64> {
    let tariff = tariffs
        .iter()
        .filter(|t| number.starts_with(t.prefix.as_str()))
        .max_by_key(|t| t.prefix.len())?;
    if talk_ms <= tariff.free_s.saturating_mul(1000) || talk_ms <= 0 {
        return Some(0);
    }
    let increment_ms = tariff.increment_s.max(1).saturating_mul(1000);
    let billed_ms = (talk_ms + increment_ms - 1) / increment_ms * increment_ms;
    let cost = billed_ms.saturating_mul(tariff.per_minute_minor);
    Some((cost + 59_999) / 60_000)
}

fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

fn seconds_per(sum_ms: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| sum_ms as f64 / 1000.0 / count as f64)
}

fn ms_to_s(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(direction: Direction, outcome: Outcome, short: bool, wait_ms: i64) -> CallFacts {
        CallFacts {
            direction,
            outcome,
            short_abandon: short,
            wait_ms,
            talk_ms: if outcome == Outcome::Answered {
                60_000
            } else {
                0
            },
            hold_ms: 0,
            transfers: 0,
        }
    }

    /// Each row: the calls of a period, then the expected rendering of their KPIs.
    #[test]
    fn kpis_as_data() {
        use Direction::*;
        use Outcome::*;
        let cases: Vec<(Vec<CallFacts>, &str)> = vec![
            (
                vec![],
                "offered=0 answered=0 rate=- sl=- asa=- wait=- max=0.0 aht=-",
            ),
            (
                vec![
                    call(Inbound, Answered, false, 5_000),
                    call(Inbound, Answered, false, 30_000),
                    call(Inbound, Abandoned, false, 40_000),
                    call(Inbound, Abandoned, true, 2_000),
                    call(Inbound, Missed, false, 25_000),
                    call(Outbound, Answered, false, 3_000),
                    call(Internal, Answered, false, 1_000),
                ],
                "offered=5 answered=2 rate=0.500 sl=0.250 asa=17.5 wait=25.0 max=40.0 aht=60.0",
            ),
            (
                vec![
                    call(Inbound, Voicemail, false, 20_000),
                    call(Inbound, Busy, true, 10),
                ],
                "offered=2 answered=0 rate=0.000 sl=0.000 asa=- wait=20.0 max=20.0 aht=-",
            ),
        ];
        let show = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        for (calls, expected) in cases {
            let mut sums = KpiSums::default();
            for c in &calls {
                sums.add(c, 20_000);
            }
            assert_eq!(
                sums.offered,
                sums.answered + sums.missed + sums.abandoned + sums.short_abandoned,
                "the partition is complete"
            );
            let k = kpis(&sums, &ActivitySums::default(), &CallbackSums::default());
            let got = format!(
                "offered={} answered={} rate={} sl={} asa={} wait={} max={:.1} aht={}",
                k.offered,
                k.answered,
                show(k.answer_rate, 3),
                show(k.service_level, 3),
                show(k.asa_s, 1),
                show(k.avg_wait_s, 1),
                k.max_wait_s,
                show(k.aht_s, 1),
            );
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn merged_groups_equal_the_whole() {
        use Direction::*;
        use Outcome::*;
        let calls = [
            call(Inbound, Answered, false, 5_000),
            call(Inbound, Missed, false, 50_000),
            call(Outbound, Busy, false, 1_000),
            call(Inbound, Abandoned, false, 70_000),
        ];
        let mut whole = KpiSums::default();
        let mut left = KpiSums::default();
        let mut right = KpiSums::default();
        for (i, c) in calls.iter().enumerate() {
            whole.add(c, 20_000);
            if i % 2 == 0 { &mut left } else { &mut right }.add(c, 20_000);
        }
        left.merge(&right);
        assert_eq!(left, whole);
    }

    #[test]
    fn aht_and_occupancy_use_activity() {
        let mut sums = KpiSums::default();
        sums.add(
            &call(Direction::Inbound, Outcome::Answered, false, 0),
            20_000,
        );
        let activity = ActivitySums {
            available_ms: 3_000_000,
            after_call_work_ms: 30_000,
            away_ms: 600_000,
            agent_talk_ms: 60_000,
        };
        let k = kpis(&sums, &activity, &CallbackSums::default());
        assert_eq!(k.aht_s, Some(90.0));
        let occupancy = k.occupancy.unwrap();
        assert!((occupancy - 90_000.0 / 3_030_000.0).abs() < 1e-12);
    }

    #[test]
    fn local_time_buckets_and_shifts() {
        // 2026-12-01T22:30:00Z is a Tuesday; at UTC+3 it is Wednesday 01:30.
        let at = 1_796_164_200_000_000;
        assert_eq!(local_hour(at, 0), 22);
        assert_eq!(local_weekday(at, 0), 1);
        assert_eq!(local_hour(at, 3 * 3600), 1);
        assert_eq!(local_weekday(at, 3 * 3600), 2);
        // Shifts at 08:00 and 20:00 local (UTC+3): 01:30 local belongs to the 20:00 shift of
        // the day before, which started at 17:00Z.
        let start = shift_start(at, 3 * 3600, &[480, 1200]);
        assert_eq!(at - start, 5 * HOUR_US + 30 * 60_000_000);
        // No shifts: local midnight.
        assert_eq!(
            at - shift_start(at, 3 * 3600, &[]),
            HOUR_US + 30 * 60_000_000
        );
    }

    #[test]
    fn call_cost_rounds_up_to_the_increment() {
        let tariffs = [
            Tariff {
                prefix: "+7".to_owned(),
                per_minute_minor: 150,
                increment_s: 60,
                free_s: 3,
            },
            Tariff {
                prefix: "+7495".to_owned(),
                per_minute_minor: 90,
                increment_s: 1,
                free_s: 0,
            },
        ];
        // (number, talk ms, expected cost)
        let cases = [
            ("+79161234567", 61_000, Some(300)),
            ("+79161234567", 2_500, Some(0)),
            ("+74951234567", 61_000, Some(92)),
            ("+74951234567", 60_000, Some(90)),
            ("+15551234567", 60_000, None),
        ];
        for (number, talk_ms, expected) in cases {
            assert_eq!(
                call_cost_minor(&tariffs, number, talk_ms),
                expected,
                "{number} {talk_ms}"
            );
        }
    }

    #[test]
    fn service_level_per_queue() {
        let sl = ServiceLevel {
            default_ms: 20_000,
            per_queue: vec![("vip".to_owned(), 10_000)],
        };
        assert_eq!(sl.threshold_ms(Some("vip")), 10_000);
        assert_eq!(sl.threshold_ms(Some("sales")), 20_000);
        assert_eq!(sl.threshold_ms(None), 20_000);
    }
}
