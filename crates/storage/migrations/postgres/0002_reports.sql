-- Kommutator schema, version 2 (PostgreSQL dialect): what reports and BI tools read.
--
-- Keep in step with migrations/sqlite/0002_reports.sql (same columns, indexes and view
-- columns; dialect differences only).
--
-- 1. `calls.transfers`: how many times the customer was transferred, kept equal to the length
--    of the record's `transfers` array by a trigger, so reports count transfers from an
--    integer column instead of parsing every record's JSON. Written only for finished calls.
-- 2. `calls_report`: one index that covers every column a KPI report reads, ordered by start
--    time (index-only scans once the table is vacuumed).
-- 3. `bi_*` views: stable, readable shapes for BI tools that read the database directly.

ALTER TABLE calls ADD COLUMN transfers BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION calls_count_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ended_at IS NOT NULL THEN
        BEGIN
            NEW.transfers := COALESCE(json_array_length(NEW.record::json -> 'transfers'), 0);
        EXCEPTION WHEN others THEN
            -- A record that is not JSON (or whose transfers are not an array) counts none:
            -- a report must never make a call write fail.
            NEW.transfers := 0;
        END;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER calls_transfers BEFORE INSERT OR UPDATE OF record, ended_at ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_count_transfers();

-- Backfill: the trigger fires for the record column it rewrites.
UPDATE calls SET record = record WHERE ended_at IS NOT NULL;

CREATE INDEX calls_report ON calls (started_at) INCLUDE (direction, outcome, short_abandon,
    wait_ms, talk_ms, hold_ms, transfers, queue, line, answered_by, ended_at);

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
    to_char(to_timestamp(c.started_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at_utc,
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
