-- Kommutator schema, version 2 (SQLite dialect): what reports and BI tools read.
--
-- Keep in step with migrations/postgres/0002_reports.sql (same columns, indexes and view
-- columns; dialect differences only).
--
-- 1. `calls.transfers`: how many times the customer was transferred, kept equal to the length
--    of the record's `transfers` array by a trigger, so reports count transfers from an
--    integer column instead of parsing every record's JSON. Written only for finished calls:
--    reports count finished calls only, and a live call's snapshot changes with every event.
-- 2. `calls_report`: one index that covers every column a KPI report reads, ordered by start
--    time, so a report over a period reads the index and never the wide rows (record JSON).
-- 3. `bi_*` views: stable, readable shapes for BI tools that read the database directly.
--    Times are given both as integer microseconds since the epoch (exact, for joins) and as
--    UTC text/timestamps (for people); durations in seconds.

ALTER TABLE calls ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0;

UPDATE calls SET transfers = COALESCE(json_array_length(record, '$.transfers'), 0)
    WHERE ended_at IS NOT NULL AND json_valid(record);

CREATE TRIGGER calls_transfers_insert AFTER INSERT ON calls
    WHEN NEW.ended_at IS NOT NULL AND json_valid(NEW.record)
BEGIN
    UPDATE calls SET transfers = COALESCE(json_array_length(NEW.record, '$.transfers'), 0)
        WHERE id = NEW.id;
END;

CREATE TRIGGER calls_transfers_update AFTER UPDATE OF record, ended_at ON calls
    WHEN NEW.ended_at IS NOT NULL AND json_valid(NEW.record)
BEGIN
    UPDATE calls SET transfers = COALESCE(json_array_length(NEW.record, '$.transfers'), 0)
        WHERE id = NEW.id;
END;

CREATE INDEX calls_report ON calls (started_at, direction, outcome, short_abandon, wait_ms,
    talk_ms, hold_ms, transfers, queue, line, answered_by, ended_at);

-- "Was this number ever seen before?" (new customers per line) and callbacks per period.
CREATE INDEX tasks_kind_created ON tasks (kind, created_at);

CREATE VIEW bi_calls AS
SELECT
    c.id                                                   AS call_id,
    c.source                                               AS source,
    c.direction                                            AS direction,
    c.outcome                                              AS outcome,
    CASE
        WHEN c.direction = 'internal' THEN 'internal'
        WHEN c.direction = 'outbound' THEN 'outbound'
        WHEN c.outcome = 'answered' THEN 'answered'
        WHEN c.short_abandon THEN 'short_abandoned'
        WHEN c.outcome = 'abandoned' THEN 'abandoned'
        ELSE 'missed'
    END                                                    AS kpi_class,
    c.customer_number                                      AS customer_number,
    c.line                                                 AS line,
    c.queue                                                AS queue,
    c.answered_by                                          AS agent_extension,
    c.started_at                                           AS started_at_us,
    c.answered_at                                          AS answered_at_us,
    c.ended_at                                             AS ended_at_us,
    strftime('%Y-%m-%dT%H:%M:%SZ', c.started_at / 1000000, 'unixepoch') AS started_at_utc,
    c.wait_ms / 1000.0                                     AS wait_s,
    c.talk_ms / 1000.0                                     AS talk_s,
    c.hold_ms / 1000.0                                     AS hold_s,
    c.transfers                                            AS transfers,
    c.short_abandon                                        AS short_abandon,
    c.degraded                                             AS degraded,
    c.disposition                                          AS disposition
FROM calls c
WHERE c.ended_at IS NOT NULL;

CREATE VIEW bi_call_agents AS
SELECT
    a.call_id                 AS call_id,
    a.extension               AS extension,
    u.login                   AS login,
    a.rang_at                 AS rang_at_us,
    a.answered_at             AS answered_at_us,
    a.talk_ms / 1000.0        AS talk_s,
    a.outcome                 AS outcome
FROM call_agents a
LEFT JOIN user_extensions ue ON ue.extension = a.extension
LEFT JOIN users u ON u.id = COALESCE(a.user_id, ue.user_id);

CREATE VIEW bi_agent_status AS
SELECT
    h.user_id                 AS user_id,
    u.login                   AS login,
    h.status                  AS status,
    h.reason                  AS reason,
    h.started_at              AS started_at_us,
    h.ended_at                AS ended_at_us,
    (h.ended_at - h.started_at) / 1000000.0 AS duration_s
FROM agent_status_history h
JOIN users u ON u.id = h.user_id;

CREATE VIEW bi_callbacks AS
SELECT
    t.id                      AS task_id,
    t.status                  AS status,
    t.phone_e164              AS phone,
    t.call_id                 AS missed_call_id,
    t.closed_by_call_id       AS callback_call_id,
    u.login                   AS assignee,
    t.attempts                AS attempts,
    t.created_at              AS created_at_us,
    t.closed_at               AS closed_at_us,
    CASE WHEN t.status = 'done' THEN (t.closed_at - t.created_at) / 1000000.0 END AS time_to_callback_s
FROM tasks t
LEFT JOIN users u ON u.id = t.assignee_user_id
WHERE t.kind = 'callback';
