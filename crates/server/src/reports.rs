//! Historical contact-center reports: REST under `/api/v1/reports/…` (supervisor and admin
//! roles), CSV and XLSX export of every report, and the report page (`web/reports/`).
//!
//! Endpoints (all take `from`/`to` in RFC 3339, `lang=en|ru` for export headers and
//! `format=json|csv|xlsx`):
//! - `GET /reports/kpis?group=total|queue|agent|line|day|week|month|hour|weekday`: the KPIs of
//!   `docs/metrics.md` per group, and the total;
//! - `GET /reports/heatmap`: offered and answered calls per local weekday × hour;
//! - `GET /reports/agents`: agent performance (calls rung and handled, talk time, status time
//!   by status and away reason, occupancy, callbacks);
//! - `GET /reports/lines`: call tracking — calls, answered and new callers per line (DID) and
//!   per advertising campaign (the configured DID → campaign map);
//! - `GET /reports/cost`: the cost of answered outbound calls under the configured tariffs.
//!
//! Numbers come from `storage`'s `GROUP BY` sums turned into KPIs by `cti_core::kpi`, the same
//! arithmetic the live dashboard uses, so the two never disagree.
//!
//! What it is not: it stores nothing and keeps no cache; every request reads the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use cti_core::kpi::{self, ActivitySums, CallbackSums, KpiSums, Kpis, ServiceLevel, Tariff};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::AuthUser;
use crate::{ApiError, AppState};

/// How reports compute and label their numbers; from the `[reports]` configuration section.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// Local time offset from UTC, seconds (hour-of-day, weekday and day buckets, shifts).
    pub utc_offset_s: i32,
    /// Service-level thresholds.
    pub service_level: ServiceLevel,
    /// Line (DID, E.164) → advertising campaign.
    pub campaigns: BTreeMap<String, String>,
    /// Outbound tariffs; empty: the cost report says it is not configured.
    pub tariffs: Vec<Tariff>,
    /// Currency code shown with costs (`RUB`).
    pub currency: String,
    /// Longest period one request may cover, days.
    pub max_period_days: i64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            utc_offset_s: 0,
            service_level: ServiceLevel::default(),
            campaigns: BTreeMap::new(),
            tariffs: Vec::new(),
            currency: "RUB".to_owned(),
            max_period_days: 400,
        }
    }
}

/// `/api/v1/reports/…` (mount behind authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/kpis", get(kpis_report))
        .route("/reports/heatmap", get(heatmap_report))
        .route("/reports/agents", get(agents_report))
        .route("/reports/lines", get(lines_report))
        .route("/reports/cost", get(cost_report))
}

/// The report page (`/reports/`) and the shared page script and styles.
pub(crate) fn page_router() -> Router<AppState> {
    Router::new()
        .route(
            "/reports",
            get(|| async { axum::response::Redirect::temporary("/reports/") }),
        )
        .route(
            "/reports/",
            get(|State(s): State<AppState>| async move { asset(&s, HTML, PAGE_HTML) }),
        )
        .route(
            "/reports/reports.js",
            get(|State(s): State<AppState>| async move { asset(&s, JS, PAGE_JS) }),
        )
        .route(
            "/reports/common.js",
            get(|State(s): State<AppState>| async move { asset(&s, JS, COMMON_JS) }),
        )
        .route(
            "/reports/insight.css",
            get(|State(s): State<AppState>| async move { asset(&s, CSS, INSIGHT_CSS) }),
        )
}

const PAGE_HTML: &str = include_str!("../../../web/reports/index.html");
const PAGE_JS: &str = include_str!("../../../web/reports/reports.js");
const COMMON_JS: &str = include_str!("../../../web/reports/common.js");
const INSIGHT_CSS: &str = include_str!("../../../web/reports/insight.css");
pub(crate) const HTML: &str = "text/html; charset=utf-8";
pub(crate) const JS: &str = "text/javascript; charset=utf-8";
pub(crate) const CSS: &str = "text/css; charset=utf-8";

/// A static page asset with the same security headers as the operator panel: scripts and
/// styles only from this server, no inline code, framing as configured for the panel.
pub(crate) fn asset(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let ancestors = &state.cti.config().frame_ancestors;
    let ancestors = if ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        ancestors.join(" ")
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
         object-src 'none'; frame-ancestors {ancestors}"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Query parameters shared by every report.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// Start of the period (RFC 3339); default: 24 hours before `to`.
    from: Option<String>,
    /// End of the period, exclusive (RFC 3339); default: now.
    to: Option<String>,
    /// Grouping of `/reports/kpis`.
    group: Option<String>,
    /// Only calls of this queue (`/reports/kpis`).
    queue: Option<String>,
    /// Only calls on this line (`/reports/kpis`).
    line: Option<String>,
    /// Only calls attributed to this extension (`/reports/kpis`).
    agent: Option<String>,
    /// `json` (default), `csv` or `xlsx`.
    format: Option<String>,
    /// Language of export headers: `en` (default) or `ru`.
    lang: Option<String>,
}

/// A validated report period.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
            ))
        })
}

fn period(params: &ReportParams, config: &ReportsConfig) -> Result<Period, ApiError> {
    let to = match &params.to {
        Some(text) => parse_time("to", text)?,
        None => Utc::now(),
    };
    let from = match &params.from {
        Some(text) => parse_time("from", text)?,
        None => to - Duration::hours(24),
    };
    if from >= to {
        return Err(ApiError::BadRequest(
            "from must be earlier than to".to_owned(),
        ));
    }
    if to - from > Duration::days(config.max_period_days) {
        return Err(ApiError::BadRequest(format!(
            "a report covers at most {} days; narrow the period",
            config.max_period_days
        )));
    }
    Ok(Period { from, to })
}

fn require_supervisor(user: &AuthUser) -> Result<(), ApiError> {
    if user.sees_everything() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "reports are for supervisors and administrators".to_owned(),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
}

fn format(params: &ReportParams) -> Result<Format, ApiError> {
    match params.format.as_deref() {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some("xlsx") => Ok(Format::Xlsx),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown format {other:?}; use json, csv or xlsx"
        ))),
    }
}

fn russian(params: &ReportParams) -> bool {
    params.lang.as_deref().is_some_and(|l| l.starts_with("ru"))
}

// ------------------------------------------------------------------------------ KPIs

/// One row of KPIs on the wire. Rates are fractions (0.85), durations seconds, `null` when
/// the denominator is zero.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KpiDto {
    pub offered: i64,
    pub answered: i64,
    pub missed: i64,
    pub abandoned: i64,
    pub short_abandoned: i64,
    pub answer_rate: Option<f64>,
    pub lost_rate: Option<f64>,
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    pub avg_wait_s: Option<f64>,
    pub max_wait_s: f64,
    pub avg_talk_s: Option<f64>,
    pub avg_hold_s: Option<f64>,
    pub aht_s: Option<f64>,
    pub transfers: i64,
    pub outbound: i64,
    pub outbound_answered: i64,
    pub callbacks_opened: i64,
    pub callbacks_done: i64,
    pub avg_time_to_callback_s: Option<f64>,
    pub max_time_to_callback_s: f64,
    pub occupancy: Option<f64>,
}

impl From<Kpis> for KpiDto {
    fn from(k: Kpis) -> Self {
        Self {
            offered: k.offered,
            answered: k.answered,
            missed: k.missed,
            abandoned: k.abandoned,
            short_abandoned: k.short_abandoned,
            answer_rate: k.answer_rate,
            lost_rate: k.lost_rate,
            service_level: k.service_level,
            asa_s: k.asa_s,
            avg_wait_s: k.avg_wait_s,
            max_wait_s: k.max_wait_s,
            avg_talk_s: k.avg_talk_s,
            avg_hold_s: k.avg_hold_s,
            aht_s: k.aht_s,
            transfers: k.transfers,
            outbound: k.outbound,
            outbound_answered: k.outbound_answered,
            callbacks_opened: k.callbacks_opened,
            callbacks_done: k.callbacks_done,
            avg_time_to_callback_s: k.avg_time_to_callback_s,
            max_time_to_callback_s: k.max_time_to_callback_s,
            occupancy: k.occupancy,
        }
    }
}

/// Converts storage's sums into the core's.
pub(crate) fn sums_of(row: &storage::KpiSumsRow) -> KpiSums {
    KpiSums {
        offered: row.offered,
        answered: row.answered,
        answered_in_sl: row.answered_in_sl,
        missed: row.missed,
        abandoned: row.abandoned,
        short_abandoned: row.short_abandoned,
        wait_sum_ms: row.wait_sum_ms,
        wait_max_ms: row.wait_max_ms,
        answered_wait_sum_ms: row.answered_wait_sum_ms,
        talk_sum_ms: row.talk_sum_ms,
        hold_sum_ms: row.hold_sum_ms,
        transfers: row.transfers,
        outbound: row.outbound,
        outbound_answered: row.outbound_answered,
        outbound_talk_sum_ms: row.outbound_talk_sum_ms,
    }
}

/// Status time of the period per user: (activity sums without talk, µs by status/reason).
pub(crate) struct StatusTimes {
    pub by_user: HashMap<storage::UserId, (ActivitySums, BTreeMap<String, i64>)>,
}

/// Reads status time of `period` (open spans count up to `now`), per user.
pub(crate) async fn status_times(
    storage: &storage::Storage,
    period: Period,
    now: DateTime<Utc>,
) -> Result<StatusTimes, ApiError> {
    let rows = storage
        .report_status_time(period.from, period.to, now)
        .await?;
    let mut by_user: HashMap<storage::UserId, (ActivitySums, BTreeMap<String, i64>)> =
        HashMap::new();
    for row in rows {
        let entry = by_user.entry(row.user_id).or_default();
        // Microseconds are summed per user first and truncated to ms once, per user.
        let label = match &row.reason {
            Some(reason) => format!("{}:{reason}", row.status),
            None => row.status.clone(),
        };
        *entry.1.entry(label).or_default() += row.micros;
    }
    for (activity, labels) in by_user.values_mut() {
        let total = |prefix: &str| -> i64 {
            labels
                .iter()
                .filter(|(label, _)| *label == prefix || label.starts_with(&format!("{prefix}:")))
                .map(|(_, us)| *us)
                .sum::<i64>()
                / 1000
        };
        activity.available_ms = total("available");
        activity.after_call_work_ms = total("after_call_work");
        activity.away_ms = total("away");
    }
    Ok(StatusTimes { by_user })
}

/// Activity (status time plus agents' talk) and callbacks of the whole period: the parts of
/// the KPIs that do not come from call rows. Shared with the dashboard.
pub(crate) async fn activity_and_callbacks(
    storage: &storage::Storage,
    period: Period,
    now: DateTime<Utc>,
) -> Result<(ActivitySums, CallbackSums), ApiError> {
    let mut activity = ActivitySums::default();
    for (user_activity, _) in status_times(storage, period, now).await?.by_user.values() {
        activity.merge(user_activity);
    }
    for agent in storage.report_agent_calls(period.from, period.to).await? {
        activity.agent_talk_ms += agent.talk_ms;
    }
    let mut callbacks = CallbackSums::default();
    for row in storage.report_callbacks(period.from, period.to).await? {
        add_callbacks(&mut callbacks, &row);
    }
    Ok((activity, callbacks))
}

fn add_callbacks(sums: &mut CallbackSums, row: &storage::CallbackRow) {
    sums.opened += row.opened;
    sums.done += row.done;
    sums.time_to_callback_sum_ms += row.time_to_callback_sum_ms;
    sums.time_to_callback_max_ms = sums
        .time_to_callback_max_ms
        .max(row.time_to_callback_max_ms);
}

/// The storage query for a period and grouping under this configuration.
pub(crate) fn report_query(
    config: &ReportsConfig,
    period: Period,
    group: storage::ReportGroup,
) -> storage::ReportQuery {
    storage::ReportQuery {
        from: period.from,
        to: period.to,
        group,
        utc_offset_s: config.utc_offset_s,
        sl_default_ms: config.service_level.default_ms,
        sl_per_queue: config.service_level.per_queue.clone(),
        queue: None,
        line: None,
        agent: None,
    }
}

#[derive(Debug, Serialize)]
struct KpiRowDto {
    /// Group key: queue name, agent extension, line, `2026-12-01` (day), `2026-11-30` (week,
    /// its Monday), `2026-12` (month), `0`–`23` (hour), `0`–`6` (weekday, Monday first);
    /// `null` for calls without that attribute.
    key: Option<String>,
    /// What the page shows: the campaign of a line, the agent's name.
    label: Option<String>,
    #[serde(flatten)]
    kpis: KpiDto,
}

#[derive(Debug, Serialize)]
struct KpiReportDto {
    from: String,
    to: String,
    group: String,
    utc_offset_s: i32,
    service_level_threshold_s: f64,
    rows: Vec<KpiRowDto>,
    total: KpiDto,
}

async fn kpis_report(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let config = state.reports.clone();
    let period = period(&params, &config)?;
    let fmt = format(&params)?;
    let group_name = params.group.clone().unwrap_or_else(|| "total".to_owned());
    let group = match group_name.as_str() {
        "total" => storage::ReportGroup::Total,
        "queue" => storage::ReportGroup::Queue,
        "agent" => storage::ReportGroup::Agent,
        "line" => storage::ReportGroup::Line,
        "day" | "week" | "month" => storage::ReportGroup::Day,
        "hour" => storage::ReportGroup::Hour,
        "weekday" => storage::ReportGroup::Weekday,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown group {other:?}; use total, queue, agent, line, day, week, month, hour or weekday"
            )))
        }
    };
    let mut query = report_query(&config, period, group);
    query.queue = params.queue.clone();
    query.line = params.line.clone();
    query.agent = params.agent.clone();
    let filtered = query.queue.is_some() || query.line.is_some() || query.agent.is_some();
    let rows = state.storage.report_kpi_sums(&query).await?;
    let now = Utc::now();
    // Status time and callbacks belong to people, not to queues or lines: they enter the total
    // (unfiltered) and the per-agent rows only.
    let (activity, callbacks) = if filtered {
        (ActivitySums::default(), CallbackSums::default())
    } else {
        activity_and_callbacks(&state.storage, period, now).await?
    };
    let mut groups: BTreeMap<Option<String>, KpiSums> = BTreeMap::new();
    let mut total = KpiSums::default();
    for row in &rows {
        let sums = sums_of(row);
        total.merge(&sums);
        let key = match group_name.as_str() {
            "day" => row.bucket.map(day_label),
            "week" => row.bucket.map(|d| day_label(d - (d + 3).rem_euclid(7))),
            "month" => row.bucket.map(|d| day_label(d)[..7].to_owned()),
            "hour" | "weekday" => row.bucket.map(|b| b.to_string()),
            _ => row.key.clone(),
        };
        groups.entry(key).or_default().merge(&sums);
    }
    let agent_rows = if group_name == "agent" && !filtered {
        Some(per_agent_activity(&state, period, now).await?)
    } else {
        None
    };
    let users = if group_name == "agent" {
        state.storage.list_users().await?
    } else {
        Vec::new()
    };
    let mut out_rows = Vec::new();
    for (key, sums) in &groups {
        let (activity, callbacks, label) = match (&agent_rows, key) {
            (Some(per_agent), Some(extension)) => {
                let (a, c) = per_agent.get(extension).copied().unwrap_or_default();
                (
                    a,
                    c,
                    users
                        .iter()
                        .find(|u| u.extensions.contains(extension))
                        .map(|u| u.display_name.clone()),
                )
            }
            _ => {
                let label = match (group_name.as_str(), key) {
                    ("line", Some(line)) => config.campaigns.get(line).cloned(),
                    ("agent", Some(extension)) => users
                        .iter()
                        .find(|u| u.extensions.contains(extension))
                        .map(|u| u.display_name.clone()),
                    _ => None,
                };
                (ActivitySums::default(), CallbackSums::default(), label)
            }
        };
        out_rows.push(KpiRowDto {
            key: key.clone(),
            label,
            kpis: kpi::kpis(sums, &activity, &callbacks).into(),
        });
    }
    let total = KpiDto::from(kpi::kpis(&total, &activity, &callbacks));
    let dto = KpiReportDto {
        from: rfc3339(period.from),
        to: rfc3339(period.to),
        group: group_name.clone(),
        utc_offset_s: config.utc_offset_s,
        service_level_threshold_s: config.service_level.default_ms as f64 / 1000.0,
        rows: out_rows,
        total,
    };
    match fmt {
        Format::Json => Ok(Json(dto).into_response()),
        _ => {
            let ru = russian(&params);
            let mut table = Table::new(
                if ru { "Показатели" } else { "KPIs" },
                std::iter::once(if ru { "Группа" } else { "Group" })
                    .chain(std::iter::once(if ru {
                        "Название"
                    } else {
                        "Label"
                    }))
                    .chain(
                        KPI_COLUMNS
                            .iter()
                            .map(|(en, ru_name, _)| if ru { *ru_name } else { *en }),
                    )
                    .collect(),
            );
            for row in &dto.rows {
                let mut cells = vec![
                    Cell::opt_text(row.key.clone()),
                    Cell::opt_text(row.label.clone()),
                ];
                cells.extend(kpi_cells(&row.kpis));
                table.rows.push(cells);
            }
            let mut cells = vec![
                Cell::Text(if ru { "Итого" } else { "Total" }.to_owned()),
                Cell::Empty,
            ];
            cells.extend(kpi_cells(&dto.total));
            table.rows.push(cells);
            export(fmt, &table, &format!("kpis-{group_name}"))
        }
    }
}

/// Per agent extension: their status time and callbacks (a user with several extensions is
/// credited on the first one only, so totals are not counted twice).
async fn per_agent_activity(
    state: &AppState,
    period: Period,
    now: DateTime<Utc>,
) -> Result<HashMap<String, (ActivitySums, CallbackSums)>, ApiError> {
    let statuses = status_times(&state.storage, period, now).await?;
    let talk: HashMap<String, i64> = state
        .storage
        .report_agent_calls(period.from, period.to)
        .await?
        .into_iter()
        .map(|r| (r.extension, r.talk_ms))
        .collect();
    let callbacks: HashMap<Option<storage::UserId>, storage::CallbackRow> = state
        .storage
        .report_callbacks(period.from, period.to)
        .await?
        .into_iter()
        .map(|r| (r.assignee, r))
        .collect();
    let mut res = HashMap::new();
    for user in state.storage.list_users().await? {
        let Some(first) = user.extensions.first() else {
            continue;
        };
        let mut activity = statuses
            .by_user
            .get(&user.id)
            .map(|(a, _)| *a)
            .unwrap_or_default();
        activity.agent_talk_ms = user.extensions.iter().filter_map(|e| talk.get(e)).sum();
        let mut cb = CallbackSums::default();
        if let Some(row) = callbacks.get(&Some(user.id)) {
            add_callbacks(&mut cb, row);
        }
        res.insert(first.clone(), (activity, cb));
    }
    Ok(res)
}

/// Columns of a KPI row in exports: (English, Russian, kind).
const KPI_COLUMNS: &[(&str, &str, &str)] = &[
    ("Offered", "Поступило", "n"),
    ("Answered", "Отвечено", "n"),
    ("Missed", "Пропущено", "n"),
    ("Abandoned", "Брошено", "n"),
    ("Short abandons", "Короткие сбросы", "n"),
    ("Answer rate, %", "Доля отвеченных, %", "%"),
    ("Service level, %", "Уровень сервиса, %", "%"),
    ("ASA, s", "Ср. время ответа, с", "s"),
    ("Avg wait, s", "Ср. ожидание, с", "s"),
    ("Max wait, s", "Макс. ожидание, с", "s"),
    ("AHT, s", "Ср. время обработки, с", "s"),
    ("Transfers", "Переводы", "n"),
    ("Outbound", "Исходящие", "n"),
    ("Callbacks done", "Перезвонов", "n"),
    ("Avg time to callback, s", "Ср. время до перезвона, с", "s"),
    ("Occupancy, %", "Занятость, %", "%"),
];

fn kpi_cells(k: &KpiDto) -> Vec<Cell> {
    let pct = |v: Option<f64>| v.map_or(Cell::Empty, |v| Cell::Number((v * 1000.0).round() / 10.0));
    let secs = |v: Option<f64>| v.map_or(Cell::Empty, |v| Cell::Number((v * 10.0).round() / 10.0));
    let n = |v: i64| Cell::Number(v as f64);
    vec![
        n(k.offered),
        n(k.answered),
        n(k.missed),
        n(k.abandoned),
        n(k.short_abandoned),
        pct(k.answer_rate),
        pct(k.service_level),
        secs(k.asa_s),
        secs(k.avg_wait_s),
        secs(Some(k.max_wait_s)),
        secs(k.aht_s),
        n(k.transfers),
        n(k.outbound),
        n(k.callbacks_done),
        secs(k.avg_time_to_callback_s),
        pct(k.occupancy),
    ]
}

fn day_label(days_since_epoch: i64) -> String {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date");
    (epoch + Duration::days(days_since_epoch))
        .format("%Y-%m-%d")
        .to_string()
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ------------------------------------------------------------------------------ heatmap

async fn heatmap_report(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let config = state.reports.clone();
    let period = period(&params, &config)?;
    let fmt = format(&params)?;
    let rows = state
        .storage
        .report_kpi_sums(&report_query(
            &config,
            period,
            storage::ReportGroup::WeekdayHour,
        ))
        .await?;
    let mut cells = Vec::new();
    for row in &rows {
        let (Some(weekday), Some(hour)) = (row.bucket, row.bucket2) else {
            continue;
        };
        let k = kpi::kpis(
            &sums_of(row),
            &ActivitySums::default(),
            &CallbackSums::default(),
        );
        cells.push(json!({
            "weekday": weekday, "hour": hour, "offered": k.offered, "answered": k.answered,
            "answer_rate": k.answer_rate, "service_level": k.service_level, "outbound": k.outbound,
        }));
    }
    match fmt {
        Format::Json => Ok(Json(json!({
            "from": rfc3339(period.from), "to": rfc3339(period.to),
            "utc_offset_s": config.utc_offset_s, "cells": cells,
        }))
        .into_response()),
        _ => {
            let ru = russian(&params);
            let days_en = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let days_ru = ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"];
            let mut columns = vec![if ru { "День" } else { "Day" }.to_owned()];
            columns.extend((0..24).map(|h| format!("{h:02}")));
            let mut table = Table::new(
                if ru {
                    "Поступило по часам"
                } else {
                    "Offered by hour"
                },
                vec![],
            );
            table.columns = columns;
            for day in 0..7 {
                let mut cells_row = vec![Cell::Text(
                    if ru { days_ru[day] } else { days_en[day] }.to_owned(),
                )];
                for hour in 0..24 {
                    let n = cells
                        .iter()
                        .find(|c| c["weekday"] == day as i64 && c["hour"] == hour)
                        .and_then(|c| c["offered"].as_i64())
                        .unwrap_or(0);
                    cells_row.push(Cell::Number(n as f64));
                }
                table.rows.push(cells_row);
            }
            export(fmt, &table, "heatmap")
        }
    }
}

// ------------------------------------------------------------------------------ agents

#[derive(Debug, Serialize)]
struct AgentReportRow {
    login: Option<String>,
    name: Option<String>,
    extensions: Vec<String>,
    /// Calls that rang this agent.
    rang: i64,
    /// Calls this agent talked on.
    handled: i64,
    /// Calls attributed to this agent (answered).
    answered: i64,
    outbound: i64,
    talk_s: f64,
    avg_talk_s: Option<f64>,
    aht_s: Option<f64>,
    /// Seconds per status (`available`, `away`, `after_call_work`, `offline`) and per away
    /// reason (`away:lunch`).
    status_s: BTreeMap<String, f64>,
    occupancy: Option<f64>,
    callbacks_opened: i64,
    callbacks_done: i64,
    avg_time_to_callback_s: Option<f64>,
}

async fn agents_report(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let config = state.reports.clone();
    let period = period(&params, &config)?;
    let fmt = format(&params)?;
    let now = Utc::now();
    let calls: HashMap<String, storage::AgentCallsRow> = state
        .storage
        .report_agent_calls(period.from, period.to)
        .await?
        .into_iter()
        .map(|r| (r.extension.clone(), r))
        .collect();
    let attributed: HashMap<String, KpiSums> = state
        .storage
        .report_kpi_sums(&report_query(&config, period, storage::ReportGroup::Agent))
        .await?
        .iter()
        .filter_map(|r| r.key.clone().map(|k| (k, sums_of(r))))
        .collect();
    let statuses = status_times(&state.storage, period, now).await?;
    let callbacks: HashMap<Option<storage::UserId>, storage::CallbackRow> = state
        .storage
        .report_callbacks(period.from, period.to)
        .await?
        .into_iter()
        .map(|r| (r.assignee, r))
        .collect();
    let users = state.storage.list_users().await?;
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut rows = Vec::new();
    for u in &users {
        let status = statuses.by_user.get(&u.id);
        let has_calls = u
            .extensions
            .iter()
            .any(|e| calls.contains_key(e) || attributed.contains_key(e));
        if u.extensions.is_empty() && status.is_none() {
            continue;
        }
        if !has_calls && status.is_none() && u.role != storage::Role::Agent {
            continue;
        }
        seen.extend(u.extensions.iter().cloned());
        let mut row = agent_row(Some(u), &u.extensions, &calls, &attributed);
        if let Some((activity, labels)) = status {
            let mut activity = *activity;
            activity.agent_talk_ms = (row.talk_s * 1000.0).round() as i64;
            row.status_s = labels
                .iter()
                .map(|(k, us)| (k.clone(), *us as f64 / 1e6))
                .collect();
            let mut cb = CallbackSums::default();
            if let Some(r) = callbacks.get(&Some(u.id)) {
                add_callbacks(&mut cb, r);
            }
            let sums: KpiSums = u.extensions.iter().filter_map(|e| attributed.get(e)).fold(
                KpiSums::default(),
                |mut a, s| {
                    a.merge(s);
                    a
                },
            );
            let k = kpi::kpis(&sums, &activity, &cb);
            row.occupancy = k.occupancy;
            row.aht_s = k.aht_s;
            row.callbacks_opened = k.callbacks_opened;
            row.callbacks_done = k.callbacks_done;
            row.avg_time_to_callback_s = k.avg_time_to_callback_s;
        } else if let Some(r) = callbacks.get(&Some(u.id)) {
            row.callbacks_opened = r.opened;
            row.callbacks_done = r.done;
        }
        rows.push(row);
    }
    // Extensions with calls but no user account still show up, so nothing disappears.
    let mut orphans: Vec<&String> = calls
        .keys()
        .chain(attributed.keys())
        .filter(|e| !seen.contains(*e))
        .collect();
    orphans.sort();
    orphans.dedup();
    for extension in orphans {
        rows.push(agent_row(
            None,
            std::slice::from_ref(extension),
            &calls,
            &attributed,
        ));
    }
    match fmt {
        Format::Json => Ok(Json(json!({
            "from": rfc3339(period.from), "to": rfc3339(period.to), "agents": rows,
        }))
        .into_response()),
        _ => {
            let ru = russian(&params);
            let heads: [(&str, &str); 13] = [
                ("Agent", "Оператор"),
                ("Extensions", "Номера"),
                ("Rang", "Поступило"),
                ("Handled", "Обработано"),
                ("Answered (attributed)", "Отвечено (засчитано)"),
                ("Outbound", "Исходящие"),
                ("Talk, s", "Разговор, с"),
                ("AHT, s", "Ср. время обработки, с"),
                ("Available, s", "Доступен, с"),
                ("Away, s", "Отошёл, с"),
                ("After-call work, s", "Постобработка, с"),
                ("Occupancy, %", "Занятость, %"),
                ("Callbacks done", "Перезвонов"),
            ];
            let mut table = Table::new(
                if ru { "Операторы" } else { "Agents" },
                heads
                    .iter()
                    .map(|(en, r)| if ru { *r } else { *en })
                    .collect(),
            );
            for r in &rows {
                let status =
                    |k: &str| Cell::Number(r.status_s.get(k).copied().unwrap_or(0.0).round());
                let away: f64 = r
                    .status_s
                    .iter()
                    .filter(|(k, _)| k.starts_with("away"))
                    .map(|(_, v)| v)
                    .sum();
                table.rows.push(vec![
                    Cell::Text(
                        r.name
                            .clone()
                            .or_else(|| r.login.clone())
                            .unwrap_or_default(),
                    ),
                    Cell::Text(r.extensions.join(", ")),
                    Cell::Number(r.rang as f64),
                    Cell::Number(r.handled as f64),
                    Cell::Number(r.answered as f64),
                    Cell::Number(r.outbound as f64),
                    Cell::Number(r.talk_s.round()),
                    r.aht_s.map_or(Cell::Empty, |v| Cell::Number(v.round())),
                    status("available"),
                    Cell::Number(away.round()),
                    status("after_call_work"),
                    r.occupancy
                        .map_or(Cell::Empty, |v| Cell::Number((v * 1000.0).round() / 10.0)),
                    Cell::Number(r.callbacks_done as f64),
                ]);
            }
            export(fmt, &table, "agents")
        }
    }
}

fn agent_row(
    user: Option<&storage::UserRow>,
    extensions: &[String],
    calls: &HashMap<String, storage::AgentCallsRow>,
    attributed: &HashMap<String, KpiSums>,
) -> AgentReportRow {
    let mut rang = 0;
    let mut handled = 0;
    let mut talk_ms = 0;
    let mut sums = KpiSums::default();
    for e in extensions {
        if let Some(c) = calls.get(e) {
            rang += c.rang;
            handled += c.handled;
            talk_ms += c.talk_ms;
        }
        if let Some(s) = attributed.get(e) {
            sums.merge(s);
        }
    }
    let k = kpi::kpis(&sums, &ActivitySums::default(), &CallbackSums::default());
    AgentReportRow {
        login: user.map(|u| u.login.clone()),
        name: user.map(|u| u.display_name.clone()),
        extensions: extensions.to_vec(),
        rang,
        handled,
        answered: k.answered,
        outbound: k.outbound,
        talk_s: talk_ms as f64 / 1000.0,
        avg_talk_s: (handled > 0).then(|| talk_ms as f64 / 1000.0 / handled as f64),
        aht_s: k.aht_s,
        status_s: BTreeMap::new(),
        occupancy: None,
        callbacks_opened: 0,
        callbacks_done: 0,
        avg_time_to_callback_s: None,
    }
}

// ------------------------------------------------------------------------------ lines

async fn lines_report(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let config = state.reports.clone();
    let period = period(&params, &config)?;
    let fmt = format(&params)?;
    let rows = state.storage.report_lines(period.from, period.to).await?;
    let mut lines = Vec::new();
    let mut campaigns: BTreeMap<String, (Vec<String>, i64, i64, i64)> = BTreeMap::new();
    for r in &rows {
        let campaign = r
            .line
            .as_ref()
            .and_then(|l| config.campaigns.get(l))
            .cloned();
        let name = campaign.clone().unwrap_or_else(|| "—".to_owned());
        let entry = campaigns.entry(name).or_default();
        if let Some(line) = &r.line {
            entry.0.push(line.clone());
        }
        entry.1 += r.calls;
        entry.2 += r.answered;
        entry.3 += r.new_callers;
        lines.push(json!({
            "line": r.line, "campaign": campaign, "calls": r.calls, "answered": r.answered,
            "answer_rate": (r.calls > 0).then(|| r.answered as f64 / r.calls as f64),
            "unique_callers": r.unique_callers, "new_callers": r.new_callers,
        }));
    }
    let campaigns: Vec<_> = campaigns
        .into_iter()
        .map(|(name, (lines, calls, answered, new_callers))| {
            json!({
                "campaign": if name == "—" { None } else { Some(name) }, "lines": lines, "calls": calls,
                "answered": answered, "new_callers": new_callers,
                "answer_rate": (calls > 0).then(|| answered as f64 / calls as f64),
            })
        })
        .collect();
    match fmt {
        Format::Json => Ok(Json(json!({
            "from": rfc3339(period.from), "to": rfc3339(period.to), "lines": lines, "campaigns": campaigns,
        }))
        .into_response()),
        _ => {
            let ru = russian(&params);
            let mut table = Table::new(
                if ru { "Линии и кампании" } else { "Lines and campaigns" },
                if ru {
                    vec!["Линия", "Кампания", "Звонков", "Отвечено", "Уникальных", "Новых клиентов"]
                } else {
                    vec!["Line", "Campaign", "Calls", "Answered", "Unique callers", "New callers"]
                },
            );
            for l in &lines {
                table.rows.push(vec![
                    Cell::opt_text(l["line"].as_str().map(str::to_owned)),
                    Cell::opt_text(l["campaign"].as_str().map(str::to_owned)),
                    Cell::Number(l["calls"].as_f64().unwrap_or(0.0)),
                    Cell::Number(l["answered"].as_f64().unwrap_or(0.0)),
                    Cell::Number(l["unique_callers"].as_f64().unwrap_or(0.0)),
                    Cell::Number(l["new_callers"].as_f64().unwrap_or(0.0)),
                ]);
            }
            export(fmt, &table, "lines")
        }
    }
}

// ------------------------------------------------------------------------------ cost

async fn cost_report(
    State(state): State<AppState>,
    Extension(user): Extension<AuthUser>,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    require_supervisor(&user)?;
    let config = state.reports.clone();
    let period = period(&params, &config)?;
    let fmt = format(&params)?;
    if config.tariffs.is_empty() {
        return match fmt {
            Format::Json => Ok(Json(json!({ "configured": false })).into_response()),
            _ => Err(ApiError::BadRequest(
                "no tariffs are configured ([[reports.tariffs]])".to_owned(),
            )),
        };
    }
    let calls = state
        .storage
        .report_cost_calls(period.from, period.to)
        .await?;
    let mut total_minor = 0i64;
    let mut unpriced = 0i64;
    let mut by_agent: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut by_line: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut priced = Vec::with_capacity(calls.len());
    for c in &calls {
        let cost = c
            .customer_number
            .as_deref()
            .and_then(|n| kpi::call_cost_minor(&config.tariffs, n, c.talk_ms));
        match cost {
            Some(minor) => total_minor += minor,
            None => unpriced += 1,
        }
        for (map, key) in [(&mut by_agent, &c.agent), (&mut by_line, &c.line)] {
            let e = map
                .entry(key.clone().unwrap_or_else(|| "—".to_owned()))
                .or_default();
            e.0 += 1;
            e.1 += c.talk_ms;
            e.2 += cost.unwrap_or(0);
        }
        priced.push((c, cost));
    }
    let group = |map: BTreeMap<String, (i64, i64, i64)>| -> Vec<serde_json::Value> {
        map.into_iter()
            .map(|(key, (n, talk, minor))| json!({ "key": key, "calls": n, "talk_s": talk as f64 / 1000.0, "cost": minor as f64 / 100.0 }))
            .collect()
    };
    match fmt {
        Format::Json => Ok(Json(json!({
            "configured": true, "from": rfc3339(period.from), "to": rfc3339(period.to),
            "currency": config.currency, "calls": calls.len(), "unpriced_calls": unpriced,
            "total": total_minor as f64 / 100.0, "by_agent": group(by_agent), "by_line": group(by_line),
        }))
        .into_response()),
        _ => {
            let ru = russian(&params);
            let mut table = Table::new(
                if ru { "Стоимость звонков" } else { "Call cost" },
                if ru {
                    vec!["Звонок", "Номер", "Линия", "Оператор", "Разговор, с", "Стоимость"]
                } else {
                    vec!["Call", "Number", "Line", "Agent", "Talk, s", "Cost"]
                },
            );
            for (c, cost) in priced {
                table.rows.push(vec![
                    Cell::Text(c.call_id.clone()),
                    Cell::opt_text(c.customer_number.clone()),
                    Cell::opt_text(c.line.clone()),
                    Cell::opt_text(c.agent.clone()),
                    Cell::Number(c.talk_ms as f64 / 1000.0),
                    cost.map_or(Cell::Empty, |m| Cell::Number(m as f64 / 100.0)),
                ]);
            }
            export(fmt, &table, "cost")
        }
    }
}

// ------------------------------------------------------------------------------ export

/// One cell of an exported table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

impl Cell {
    fn opt_text(text: Option<String>) -> Cell {
        text.map_or(Cell::Empty, Cell::Text)
    }
}

/// A report as a table, for CSV and XLSX.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(title: &str, columns: Vec<&str>) -> Table {
        Table {
            title: title.to_owned(),
            columns: columns.into_iter().map(str::to_owned).collect(),
            rows: Vec::new(),
        }
    }
}

fn export(fmt: Format, table: &Table, name: &str) -> Result<Response, ApiError> {
    let (body, content_type, ext) = match fmt {
        Format::Csv => (to_csv(table).into_bytes(), "text/csv; charset=utf-8", "csv"),
        Format::Xlsx => (
            to_xlsx(table)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        Format::Json => return Err(ApiError::Internal),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"kommutator-{name}.{ext}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// RFC 4180 CSV with a UTF-8 byte-order mark, so spreadsheet programs read Cyrillic right.
pub(crate) fn to_csv(table: &Table) -> String {
    fn field(out: &mut String, text: &str) {
        // A leading =, +, - or @ would run as a formula in a spreadsheet: quote it as text.
        let formula = text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err();
        if formula || text.contains([',', '"', '\n', '\r']) {
            out.push('"');
            if formula {
                out.push('\'');
            }
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    }
    let mut out = String::from("\u{feff}");
    for (i, c) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, c);
    }
    out.push_str("\r\n");
    for row in &table.rows {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match cell {
                Cell::Text(t) => field(&mut out, t),
                Cell::Number(n) => out.push_str(&n.to_string()),
                Cell::Empty => {}
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// One worksheet with a bold, frozen header row.
pub(crate) fn to_xlsx(table: &Table) -> Result<Vec<u8>, ApiError> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| {
        tracing::error!(error = %e, "Building an XLSX export failed.");
        ApiError::Internal
    };
    let mut workbook = Workbook::new();
    let bold = XFormat::new().set_bold();
    let sheet = workbook.add_worksheet();
    // Sheet names are limited to 31 characters and some punctuation.
    let name: String = table
        .title
        .chars()
        .filter(|c| !"[]:*?/\\".contains(*c))
        .take(31)
        .collect();
    sheet
        .set_name(if name.is_empty() { "Report" } else { &name })
        .map_err(fail)?;
    for (col, title) in table.columns.iter().enumerate() {
        sheet
            .write_string_with_format(0, col as u16, title, &bold)
            .map_err(fail)?;
        sheet
            .set_column_width(col as u16, (title.chars().count() as f64 + 2.0).max(10.0))
            .map_err(fail)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        let r = (r + 1) as u32;
        for (col, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(t) => {
                    sheet.write_string(r, col as u16, t).map_err(fail)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(r, col as u16, *n).map_err(fail)?;
                }
                Cell::Empty => {}
            }
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(fail)?;
    workbook.save_to_buffer().map_err(fail)
}

/// Reports configuration shared by the handlers (`AppState::reports`).
pub type SharedReportsConfig = Arc<ReportsConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let mut table = Table::new("t", vec!["a", "b"]);
        table
            .rows
            .push(vec![Cell::Text("x,y".into()), Cell::Number(1.5)]);
        table
            .rows
            .push(vec![Cell::Text("=HYPERLINK(1)".into()), Cell::Empty]);
        table.rows.push(vec![
            Cell::Text("+79161234567".into()),
            Cell::Text("Иван \"И\"".into()),
        ]);
        assert_eq!(
            to_csv(&table),
            "\u{feff}a,b\r\n\"x,y\",1.5\r\n\"'=HYPERLINK(1)\",\r\n+79161234567,\"Иван \"\"И\"\"\"\r\n"
        );
    }

    #[test]
    fn xlsx_is_a_zip_file() {
        let mut table = Table::new("KPIs: [daily]", vec!["a"]);
        table.rows.push(vec![Cell::Number(1.0)]);
        let bytes = to_xlsx(&table).unwrap();
        assert_eq!(&bytes[..2], b"PK");
    }

    #[test]
    fn day_labels() {
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(day_label(20_788), "2026-12-01");
    }
}
