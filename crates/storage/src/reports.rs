//! The sums behind contact-center reports, computed by the database with `GROUP BY`.
//!
//! Each query returns additive sums (counts, sums of milliseconds, maxima) per group, never a
//! ratio: ratios and averages are computed once, from these sums, by `cti_core::kpi`, so a
//! report, its export and the live dashboard share one formula (`docs/metrics.md`). The SQL
//! here must classify calls exactly like `cti_core::kpi::CallFacts::class`; the server's
//! report test checks that on a simulated day of calls.
//!
//! Which calls a period holds: finished calls (`ended_at` set) whose `started_at` falls in
//! `[from, to)`. Local-time buckets (hour of day, weekday, day) use a fixed UTC offset.
//!
//! What this module is not: it knows no KPI names and computes no rates; it does not depend
//! on `cti-core` (the server converts).

use chrono::{DateTime, Utc};

use crate::row::{bind_args, Arg, Conditions, RowExt};
use crate::types::to_micros;
use crate::{on_pool, Storage, StorageError, UserId};

/// How a KPI report groups its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportGroup {
    /// One row for the whole period.
    Total,
    /// By the call's (first) queue; calls without a queue form their own group.
    Queue,
    /// By the agent the call is attributed to (`answered_by`).
    Agent,
    /// By the line (DID) the call came in on or went out through.
    Line,
    /// By local calendar day (`bucket` = days since 1970-01-01, local).
    Day,
    /// By local hour of day (`bucket` = 0–23).
    Hour,
    /// By local weekday (`bucket` = 0 Monday … 6 Sunday).
    Weekday,
    /// By local weekday and hour (`bucket` = weekday, `bucket2` = hour): the heatmap.
    WeekdayHour,
}

/// What a KPI report reads.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// Calls that started at or after this.
    pub from: DateTime<Utc>,
    /// Calls that started before this.
    pub to: DateTime<Utc>,
    /// Grouping.
    pub group: ReportGroup,
    /// Offset of local time from UTC, seconds (for day, hour and weekday buckets).
    pub utc_offset_s: i32,
    /// Service-level threshold for queues not in `sl_per_queue`, ms.
    pub sl_default_ms: i64,
    /// Service-level threshold per queue, ms.
    pub sl_per_queue: Vec<(String, i64)>,
    /// Only calls of this queue.
    pub queue: Option<String>,
    /// Only calls on this line.
    pub line: Option<String>,
    /// Only calls attributed to this extension.
    pub agent: Option<String>,
}

/// The sums of one group (see `cti_core::kpi::KpiSums` for each field's rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiSumsRow {
    /// Text key (queue, agent extension or line); `None` for calls without one, and for
    /// numeric groupings.
    pub key: Option<String>,
    /// Numeric key (day, hour or weekday).
    pub bucket: Option<i64>,
    /// Second numeric key (hour, for the heatmap).
    pub bucket2: Option<i64>,
    pub offered: i64,
    pub answered: i64,
    pub answered_in_sl: i64,
    pub missed: i64,
    pub abandoned: i64,
    pub short_abandoned: i64,
    pub wait_sum_ms: i64,
    pub wait_max_ms: i64,
    pub answered_wait_sum_ms: i64,
    pub talk_sum_ms: i64,
    pub hold_sum_ms: i64,
    pub transfers: i64,
    pub outbound: i64,
    pub outbound_answered: i64,
    pub outbound_talk_sum_ms: i64,
}

/// One agent's share of the calls of a period, from the agents each call rang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCallsRow {
    /// The agent's extension.
    pub extension: String,
    /// Calls that rang this agent.
    pub rang: i64,
    /// Calls this agent talked on.
    pub handled: i64,
    /// This agent's talk time, ms.
    pub talk_ms: i64,
}

/// Time one user spent in one status (and reason) within a period, spans clipped to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTimeRow {
    /// The user.
    pub user_id: UserId,
    /// Status name as stored (`available`, `away`, `after_call_work`, `offline`).
    pub status: String,
    /// Away reason, when the status has one.
    pub reason: Option<String>,
    /// Time, µs.
    pub micros: i64,
}

/// Callback tasks opened in a period, per assignee (`None`: unassigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRow {
    /// The assignee.
    pub assignee: Option<UserId>,
    pub opened: i64,
    pub done: i64,
    /// Σ (closed_at − created_at) of done tasks, ms.
    pub time_to_callback_sum_ms: i64,
    /// Max of the same, ms.
    pub time_to_callback_max_ms: i64,
}

/// Inbound calls of a period per line (DID): the call-tracking report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    /// The line (`None`: calls without a known DID).
    pub line: Option<String>,
    /// Inbound calls.
    pub calls: i64,
    /// Of those, answered.
    pub answered: i64,
    /// Distinct caller numbers.
    pub unique_callers: i64,
    /// Calls that were the first call ever from their number (new customers).
    pub new_callers: i64,
}

/// An answered outbound call, for call cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostCallRow {
    /// The call.
    pub call_id: String,
    /// The number called, E.164.
    pub customer_number: Option<String>,
    /// The line it went out through.
    pub line: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// Talk time, ms.
    pub talk_ms: i64,
}

/// What KPIs read from one finished call (for live counters seeded from storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFactsRow {
    /// The call.
    pub call_id: String,
    /// `inbound`, `outbound` or `internal`.
    pub direction: String,
    /// The outcome as stored.
    pub outcome: String,
    pub short_abandon: bool,
    pub wait_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub transfers: i64,
    /// The (first) queue.
    pub queue: Option<String>,
    /// Start, µs since the epoch.
    pub started_at_us: i64,
}

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

impl Storage {
    /// KPI sums per group over the finished calls that started in `[from, to)`.
    ///
    /// Reads the hourly rollup (`report_hourly`, migration 0003) for the whole hours of the
    /// period when [`rollup_applies`] says it can answer exactly, and raw call rows for the
    /// partial hours at either end; otherwise raw rows only. Rows are ordered by key, then
    /// buckets, with `None` first.
    pub async fn report_kpi_sums(&self, q: &ReportQuery) -> Result<Vec<KpiSumsRow>, StorageError> {
        let from = to_micros(q.from);
        let to = to_micros(q.to);
        let Some((whole_from, whole_to)) = rollup_span(q) else {
            return self.report_kpi_sums_raw(q).await;
        };
        let mut rows = self
            .kpi_sums_from(q, Source::Rollup, whole_from, whole_to)
            .await?;
        if from < whole_from {
            rows.extend(
                self.kpi_sums_from(q, Source::Calls, from, whole_from)
                    .await?,
            );
        }
        if whole_to < to {
            rows.extend(self.kpi_sums_from(q, Source::Calls, whole_to, to).await?);
        }
        Ok(merge_rows(rows))
    }

    /// The same sums as [`Storage::report_kpi_sums`], always from raw call rows (the reference
    /// the rollup is tested against, and the path for queries the rollup cannot answer).
    pub async fn report_kpi_sums_raw(
        &self,
        q: &ReportQuery,
    ) -> Result<Vec<KpiSumsRow>, StorageError> {
        let rows = self
            .kpi_sums_from(q, Source::Calls, to_micros(q.from), to_micros(q.to))
            .await?;
        Ok(merge_rows(rows))
    }

    async fn kpi_sums_from(
        &self,
        q: &ReportQuery,
        source: Source,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<KpiSumsRow>, StorageError> {
        let rollup = source == Source::Rollup;
        let time = if rollup { "hour_us" } else { "started_at" };
        // Rollup keys are '' for NULL and '=' || value otherwise (see migration 0003).
        let key_column = |raw: &str, key: &str| {
            if rollup {
                format!("(CASE WHEN {key} = '' THEN NULL ELSE substr({key}, 2) END)")
            } else {
                raw.to_owned()
            }
        };
        let mut cond = Conditions::default();
        let from = cond.arg(Arg::Int(from_us));
        let to = cond.arg(Arg::Int(to_us));
        cond.push(format!("{time} >= {from}"));
        cond.push(format!("{time} < {to}"));
        if !rollup {
            cond.push("ended_at IS NOT NULL".to_owned());
            cond.push("outcome IS NOT NULL".to_owned());
            cond.push("direction <> 'internal'".to_owned());
        }
        for (column, key, value) in [
            ("queue", "queue_key", &q.queue),
            ("line", "line_key", &q.line),
            ("answered_by", "agent_key", &q.agent),
        ] {
            if let Some(value) = value {
                if rollup {
                    let p = cond.arg(Arg::Text(format!("={value}")));
                    cond.push(format!("{key} = {p}"));
                } else {
                    let p = cond.arg(Arg::Text(value.clone()));
                    cond.push(format!("{column} = {p}"));
                }
            }
        }
        let local = |cond: &mut Conditions| {
            let p = cond.arg(Arg::Int(i64::from(q.utc_offset_s) * 1_000_000));
            format!("({time} + {p})")
        };
        let no_key = || "CAST(NULL AS TEXT)".to_owned();
        let no_bucket = || "CAST(NULL AS BIGINT)".to_owned();
        let (key, bucket, bucket2) = match q.group {
            ReportGroup::Total => (no_key(), no_bucket(), no_bucket()),
            ReportGroup::Queue => (key_column("queue", "queue_key"), no_bucket(), no_bucket()),
            ReportGroup::Agent => (
                key_column("answered_by", "agent_key"),
                no_bucket(),
                no_bucket(),
            ),
            ReportGroup::Line => (key_column("line", "line_key"), no_bucket(), no_bucket()),
            ReportGroup::Day => {
                let t = local(&mut cond);
                (no_key(), format!("{t} / {DAY_US}"), no_bucket())
            }
            ReportGroup::Hour => {
                let t = local(&mut cond);
                (no_key(), format!("({t} / {HOUR_US}) % 24"), no_bucket())
            }
            ReportGroup::Weekday => {
                let t = local(&mut cond);
                (no_key(), format!("({t} / {DAY_US} + 3) % 7"), no_bucket())
            }
            ReportGroup::WeekdayHour => {
                let t = local(&mut cond);
                (
                    no_key(),
                    format!("({t} / {DAY_US} + 3) % 7"),
                    format!("({t} / {HOUR_US}) % 24"),
                )
            }
        };
        let sql = if rollup {
            rollup_sums_sql(q, &mut cond, &key, &bucket, &bucket2)
        } else {
            raw_sums_sql(q, &mut cond, &key, &bucket, &bucket2)
        };
        on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(&sql), cond.args.clone()).fetch_all(pool).await?;
            rows.iter().map(kpi_row).collect()
        })
    }

    /// Runs a report query with `args` bound to `$1`, `$2`, … and maps each row: one spelling
    /// for both databases (their row types differ, [`RowExt`] reads both).
    async fn report_rows<T>(
        &self,
        sql: &str,
        args: Vec<Arg>,
        map: impl Fn(&dyn RowExt) -> Result<T, StorageError>,
    ) -> Result<Vec<T>, StorageError> {
        on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(sql), args).fetch_all(pool).await?;
            rows.iter().map(|row| map(row)).collect()
        })
    }

    /// Per agent extension: calls that rang them, calls they talked on, their talk time, over
    /// the finished customer calls that started in `[from, to)`.
    pub async fn report_agent_calls(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgentCallsRow>, StorageError> {
        let sql = "SELECT a.extension AS extension, CAST(COUNT(*) AS BIGINT) AS rang, \
             CAST(SUM(CASE WHEN a.answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS handled, \
             CAST(SUM(a.talk_ms) AS BIGINT) AS talk_ms \
             FROM calls c JOIN call_agents a ON a.call_id = c.id \
             WHERE c.started_at >= $1 AND c.started_at < $2 AND c.ended_at IS NOT NULL \
             AND c.direction <> 'internal' GROUP BY a.extension ORDER BY a.extension";
        self.report_rows(sql, period(from, to), |row| {
            Ok(AgentCallsRow {
                extension: row.text("extension")?,
                rang: row.int("rang")?,
                handled: row.int("handled")?,
                talk_ms: row.int("talk_ms")?,
            })
        })
        .await
    }

    /// Time per user, status and reason within `[from, to)`; an open span counts up to `now`.
    pub async fn report_status_time(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StatusTimeRow>, StorageError> {
        // Portable LEAST/GREATEST: SQLite spells them min()/max(), PostgreSQL LEAST/GREATEST.
        let end = "COALESCE(ended_at, $3)";
        let sql = format!(
            "SELECT user_id, status, reason, CAST(SUM( \
               (CASE WHEN {end} < $2 THEN {end} ELSE $2 END) - \
               (CASE WHEN started_at > $1 THEN started_at ELSE $1 END)) AS BIGINT) AS micros \
             FROM agent_status_history \
             WHERE started_at < $2 AND {end} > $1 AND started_at < $3 \
             GROUP BY user_id, status, reason ORDER BY user_id, status, reason"
        );
        let args = vec![
            Arg::Int(to_micros(from)),
            Arg::Int(to_micros(to)),
            Arg::Int(to_micros(now)),
        ];
        self.report_rows(&sql, args, |row| {
            Ok(StatusTimeRow {
                user_id: UserId(row.int("user_id")?),
                status: row.text("status")?,
                reason: row.opt_text("reason")?,
                micros: row.int("micros")?.max(0),
            })
        })
        .await
    }

    /// Callback tasks created in `[from, to)`, per assignee.
    pub async fn report_callbacks(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallbackRow>, StorageError> {
        let sql = "SELECT assignee_user_id, CAST(COUNT(*) AS BIGINT) AS opened, \
             CAST(SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS BIGINT) AS done, \
             CAST(SUM(CASE WHEN status = 'done' AND closed_at IS NOT NULL THEN (closed_at - created_at) / 1000 ELSE 0 END) AS BIGINT) AS sum_ms, \
             CAST(MAX(CASE WHEN status = 'done' AND closed_at IS NOT NULL THEN (closed_at - created_at) / 1000 ELSE 0 END) AS BIGINT) AS max_ms \
             FROM tasks WHERE kind = 'callback' AND created_at >= $1 AND created_at < $2 \
             GROUP BY assignee_user_id ORDER BY assignee_user_id";
        self.report_rows(sql, period(from, to), |row| {
            Ok(CallbackRow {
                assignee: row.opt_int("assignee_user_id")?.map(UserId),
                opened: row.int("opened")?,
                done: row.int("done")?,
                time_to_callback_sum_ms: row.int("sum_ms")?,
                time_to_callback_max_ms: row.int("max_ms")?,
            })
        })
        .await
    }

    /// Inbound finished calls that started in `[from, to)`, per line.
    pub async fn report_lines(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LineRow>, StorageError> {
        let sql = "SELECT c.line AS line, CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(SUM(CASE WHEN c.outcome = 'answered' THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(COUNT(DISTINCT c.customer_number) AS BIGINT) AS unique_callers, \
             CAST(SUM(CASE WHEN c.customer_number IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM calls p WHERE p.customer_number = c.customer_number \
                 AND (p.started_at < c.started_at OR (p.started_at = c.started_at AND p.id < c.id))) \
               THEN 1 ELSE 0 END) AS BIGINT) AS new_callers \
             FROM calls c WHERE c.started_at >= $1 AND c.started_at < $2 AND c.ended_at IS NOT NULL \
             AND c.direction = 'inbound' GROUP BY c.line ORDER BY c.line";
        self.report_rows(sql, period(from, to), |row| {
            Ok(LineRow {
                line: row.opt_text("line")?,
                calls: row.int("calls")?,
                answered: row.int("answered")?,
                unique_callers: row.int("unique_callers")?,
                new_callers: row.int("new_callers")?,
            })
        })
        .await
    }

    /// Answered outbound calls that started in `[from, to)` (for call cost), oldest first.
    pub async fn report_cost_calls(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CostCallRow>, StorageError> {
        let sql = "SELECT id, customer_number, line, answered_by, talk_ms FROM calls \
             WHERE started_at >= $1 AND started_at < $2 AND ended_at IS NOT NULL \
             AND direction = 'outbound' AND outcome = 'answered' ORDER BY started_at, id";
        self.report_rows(sql, period(from, to), |row| {
            Ok(CostCallRow {
                call_id: row.text("id")?,
                customer_number: row.opt_text("customer_number")?,
                line: row.opt_text("line")?,
                agent: row.opt_text("answered_by")?,
                talk_ms: row.int("talk_ms")?,
            })
        })
        .await
    }

    /// The KPI facts of every finished call that started in `[from, to)`, oldest first.
    pub async fn report_call_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallFactsRow>, StorageError> {
        let sql =
            "SELECT id, direction, outcome, short_abandon, wait_ms, talk_ms, hold_ms, transfers, \
             queue, started_at FROM calls WHERE started_at >= $1 AND started_at < $2 \
             AND ended_at IS NOT NULL AND outcome IS NOT NULL ORDER BY started_at, id";
        self.report_rows(sql, period(from, to), |row| {
            Ok(CallFactsRow {
                call_id: row.text("id")?,
                direction: row.text("direction")?,
                outcome: row.text("outcome")?,
                short_abandon: row.flag("short_abandon")?,
                wait_ms: row.int("wait_ms")?,
                talk_ms: row.int("talk_ms")?,
                hold_ms: row.int("hold_ms")?,
                transfers: row.int("transfers")?,
                queue: row.opt_text("queue")?,
                started_at_us: row.int("started_at")?,
            })
        })
        .await
    }
}

/// `$1`, `$2`: the period `[from, to)` in microseconds.
fn period(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Arg> {
    vec![Arg::Int(to_micros(from)), Arg::Int(to_micros(to))]
}

/// Where KPI sums are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Calls,
    Rollup,
}

/// The service-level thresholds the rollup keeps a count for (`answered_le_<N>s`), seconds.
pub const ROLLUP_SL_THRESHOLDS_S: [i64; 11] = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300];

/// Whether `report_kpi_sums` can read this query from the hourly rollup: the local offset is
/// a whole number of hours (so every hour of the rollup falls in one local hour, day and
/// weekday), every service-level threshold is on [`ROLLUP_SL_THRESHOLDS_S`], and the period
/// holds at least one whole UTC hour. Every grouping and filter (queue, line, agent) is
/// answerable, since the rollup is keyed by all three.
pub fn rollup_applies(q: &ReportQuery) -> bool {
    rollup_span(q).is_some()
}

/// The whole UTC hours of the period `[from, to)`, when the rollup applies.
fn rollup_span(q: &ReportQuery) -> Option<(i64, i64)> {
    let on_ladder = |ms: i64| ROLLUP_SL_THRESHOLDS_S.iter().any(|s| s * 1000 == ms);
    if i64::from(q.utc_offset_s) % 3600 != 0
        || !on_ladder(q.sl_default_ms)
        || !q.sl_per_queue.iter().all(|(_, ms)| on_ladder(*ms))
    {
        return None;
    }
    let from = to_micros(q.from);
    let to = to_micros(q.to);
    let whole_from = from.div_euclid(HOUR_US) * HOUR_US
        + if from.rem_euclid(HOUR_US) == 0 {
            0
        } else {
            HOUR_US
        };
    let whole_to = to.div_euclid(HOUR_US) * HOUR_US;
    (whole_from < whole_to).then_some((whole_from, whole_to))
}

fn raw_sums_sql(
    q: &ReportQuery,
    cond: &mut Conditions,
    key: &str,
    bucket: &str,
    bucket2: &str,
) -> String {
    let mut sl = String::from("CASE queue");
    for (queue, ms) in &q.sl_per_queue {
        let name = cond.arg(Arg::Text(queue.clone()));
        let threshold = cond.arg(Arg::Int(*ms));
        sl.push_str(&format!(" WHEN {name} THEN {threshold}"));
    }
    let default = cond.arg(Arg::Int(q.sl_default_ms));
    if q.sl_per_queue.is_empty() {
        sl = default;
    } else {
        sl.push_str(&format!(" ELSE {default} END"));
    }
    // The partition of cti_core::kpi::CallFacts::class, spelled in SQL (and again in the
    // rollup triggers of migration 0003).
    let inbound = "direction = 'inbound'";
    let answered = "direction = 'inbound' AND outcome = 'answered'";
    let short = "direction = 'inbound' AND outcome <> 'answered' AND short_abandon";
    let counted = "direction = 'inbound' AND (outcome = 'answered' OR NOT short_abandon)";
    let abandoned = "direction = 'inbound' AND outcome = 'abandoned' AND NOT short_abandon";
    let missed =
        "direction = 'inbound' AND outcome NOT IN ('answered', 'abandoned') AND NOT short_abandon";
    let outbound = "direction = 'outbound'";
    let count = |c: &str| format!("CAST(SUM(CASE WHEN {c} THEN 1 ELSE 0 END) AS BIGINT)");
    let sum = |c: &str, v: &str| format!("CAST(SUM(CASE WHEN {c} THEN {v} ELSE 0 END) AS BIGINT)");
    format!(
        "SELECT {key} AS k, {bucket} AS b1, {bucket2} AS b2, \
         {offered} AS offered, {answered_n} AS answered, \
         CAST(SUM(CASE WHEN {answered} AND wait_ms <= {sl} THEN 1 ELSE 0 END) AS BIGINT) AS answered_in_sl, \
         {missed_n} AS missed, {abandoned_n} AS abandoned, {short_n} AS short_abandoned, \
         {wait_sum} AS wait_sum_ms, CAST(MAX(CASE WHEN {counted} THEN wait_ms ELSE 0 END) AS BIGINT) AS wait_max_ms, \
         {answered_wait} AS answered_wait_sum_ms, {talk} AS talk_sum_ms, {hold} AS hold_sum_ms, \
         CAST(SUM(transfers) AS BIGINT) AS transfers, \
         {outbound_n} AS outbound, {outbound_answered} AS outbound_answered, \
         {outbound_talk} AS outbound_talk_sum_ms \
         FROM calls{where_sql} GROUP BY 1, 2, 3",
        offered = count(inbound),
        answered_n = count(answered),
        missed_n = count(missed),
        abandoned_n = count(abandoned),
        short_n = count(short),
        wait_sum = sum(counted, "wait_ms"),
        answered_wait = sum(answered, "wait_ms"),
        talk = sum(answered, "talk_ms"),
        hold = sum(answered, "hold_ms"),
        outbound_n = count(outbound),
        outbound_answered = count("direction = 'outbound' AND outcome = 'answered'"),
        outbound_talk = sum(outbound, "talk_ms"),
        where_sql = cond.where_sql(),
    )
}

fn rollup_sums_sql(
    q: &ReportQuery,
    cond: &mut Conditions,
    key: &str,
    bucket: &str,
    bucket2: &str,
) -> String {
    // rollup_span checked that every threshold is on the ladder.
    let column = |ms: i64| format!("answered_le_{}s", ms / 1000);
    let mut sl = String::from("CASE queue_key");
    for (queue, ms) in &q.sl_per_queue {
        let name = cond.arg(Arg::Text(format!("={queue}")));
        sl.push_str(&format!(" WHEN {name} THEN {}", column(*ms)));
    }
    if q.sl_per_queue.is_empty() {
        sl = column(q.sl_default_ms);
    } else {
        sl.push_str(&format!(" ELSE {} END", column(q.sl_default_ms)));
    }
    let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT) AS {c}");
    let sums = [
        "offered",
        "answered",
        "missed",
        "abandoned",
        "short_abandoned",
        "wait_sum_ms",
        "answered_wait_sum_ms",
        "talk_sum_ms",
        "hold_sum_ms",
        "transfers",
        "outbound",
        "outbound_answered",
        "outbound_talk_sum_ms",
    ]
    .map(sum)
    .join(", ");
    format!(
        "SELECT {key} AS k, {bucket} AS b1, {bucket2} AS b2, {sums}, \
         CAST(SUM({sl}) AS BIGINT) AS answered_in_sl, \
         CAST(MAX(wait_max_ms) AS BIGINT) AS wait_max_ms \
         FROM report_hourly{where_sql} GROUP BY 1, 2, 3",
        where_sql = cond.where_sql(),
    )
}

/// A row's group: text key, bucket, second bucket.
type GroupKey = (Option<String>, Option<i64>, Option<i64>);

/// Rows with the same keys added up (sums add, maxima take the larger), ordered by key.
fn merge_rows(rows: Vec<KpiSumsRow>) -> Vec<KpiSumsRow> {
    let mut merged: std::collections::BTreeMap<GroupKey, KpiSumsRow> =
        std::collections::BTreeMap::new();
    for row in rows {
        let slot = merged
            .entry((row.key.clone(), row.bucket, row.bucket2))
            .or_insert_with(|| KpiSumsRow {
                key: row.key.clone(),
                bucket: row.bucket,
                bucket2: row.bucket2,
                ..KpiSumsRow::default()
            });
        slot.offered += row.offered;
        slot.answered += row.answered;
        slot.answered_in_sl += row.answered_in_sl;
        slot.missed += row.missed;
        slot.abandoned += row.abandoned;
        slot.short_abandoned += row.short_abandoned;
        slot.wait_sum_ms += row.wait_sum_ms;
        slot.wait_max_ms = slot.wait_max_ms.max(row.wait_max_ms);
        slot.answered_wait_sum_ms += row.answered_wait_sum_ms;
        slot.talk_sum_ms += row.talk_sum_ms;
        slot.hold_sum_ms += row.hold_sum_ms;
        slot.transfers += row.transfers;
        slot.outbound += row.outbound;
        slot.outbound_answered += row.outbound_answered;
        slot.outbound_talk_sum_ms += row.outbound_talk_sum_ms;
    }
    merged.into_values().collect()
}

fn kpi_row(row: &impl RowExt) -> Result<KpiSumsRow, StorageError> {
    Ok(KpiSumsRow {
        key: row.opt_text("k")?,
        bucket: row.opt_int("b1")?,
        bucket2: row.opt_int("b2")?,
        offered: row.int("offered")?,
        answered: row.int("answered")?,
        answered_in_sl: row.int("answered_in_sl")?,
        missed: row.int("missed")?,
        abandoned: row.int("abandoned")?,
        short_abandoned: row.int("short_abandoned")?,
        wait_sum_ms: row.int("wait_sum_ms")?,
        wait_max_ms: row.int("wait_max_ms")?,
        answered_wait_sum_ms: row.int("answered_wait_sum_ms")?,
        talk_sum_ms: row.int("talk_sum_ms")?,
        hold_sum_ms: row.int("hold_sum_ms")?,
        transfers: row.int("transfers")?,
        outbound: row.int("outbound")?,
        outbound_answered: row.int("outbound_answered")?,
        outbound_talk_sum_ms: row.int("outbound_talk_sum_ms")?,
    })
}
