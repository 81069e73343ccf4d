-- Kommutator schema, version 3 (PostgreSQL dialect): the hourly report rollup.
--
-- Keep in step with migrations/sqlite/0003_report_rollup.sql (same table and columns;
-- dialect differences only); the reasons for the design are written there.
--
-- `report_hourly`: per UTC hour × queue × line × agent, the additive KPI sums of finished
-- customer calls, maintained by an AFTER trigger on `calls` in the writer's transaction
-- (old contribution out, new one in; the maximum wait recomputed from `calls` when the row
-- that may have held it changes). Under READ COMMITTED the first upsert locks the rollup row,
-- and the recomputation is a later statement with a fresh snapshot, so a concurrent writer
-- of the same hour and key is always seen. `calls.transfers` is computed by the 0002 BEFORE
-- trigger, so NEW.transfers is final here.

CREATE TABLE report_hourly (
    hour_us BIGINT NOT NULL,
    queue_key TEXT NOT NULL,
    line_key TEXT NOT NULL,
    agent_key TEXT NOT NULL,
    calls BIGINT NOT NULL,
    offered BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    missed BIGINT NOT NULL,
    abandoned BIGINT NOT NULL,
    short_abandoned BIGINT NOT NULL,
    wait_sum_ms BIGINT NOT NULL,
    wait_max_ms BIGINT NOT NULL,
    answered_wait_sum_ms BIGINT NOT NULL,
    talk_sum_ms BIGINT NOT NULL,
    hold_sum_ms BIGINT NOT NULL,
    transfers BIGINT NOT NULL,
    outbound BIGINT NOT NULL,
    outbound_answered BIGINT NOT NULL,
    outbound_talk_sum_ms BIGINT NOT NULL,
    answered_le_5s BIGINT NOT NULL,
    answered_le_10s BIGINT NOT NULL,
    answered_le_15s BIGINT NOT NULL,
    answered_le_20s BIGINT NOT NULL,
    answered_le_30s BIGINT NOT NULL,
    answered_le_45s BIGINT NOT NULL,
    answered_le_60s BIGINT NOT NULL,
    answered_le_90s BIGINT NOT NULL,
    answered_le_120s BIGINT NOT NULL,
    answered_le_180s BIGINT NOT NULL,
    answered_le_300s BIGINT NOT NULL,
    PRIMARY KEY (hour_us, queue_key, line_key, agent_key)
);

-- Existing finished calls.
INSERT INTO report_hourly (hour_us, queue_key, line_key, agent_key, calls, offered, answered, missed, abandoned, short_abandoned, wait_sum_ms, wait_max_ms, answered_wait_sum_ms, talk_sum_ms, hold_sum_ms, transfers, outbound, outbound_answered, outbound_talk_sum_ms, answered_le_5s, answered_le_10s, answered_le_15s, answered_le_20s, answered_le_30s, answered_le_45s, answered_le_60s, answered_le_90s, answered_le_120s, answered_le_180s, answered_le_300s)
    SELECT c.started_at - c.started_at % 3600000000, CASE WHEN c.queue IS NULL THEN '' ELSE '=' || c.queue END, CASE WHEN c.line IS NULL THEN '' ELSE '=' || c.line END, CASE WHEN c.answered_by IS NULL THEN '' ELSE '=' || c.answered_by END, COUNT(*), SUM(CASE WHEN c.direction = 'inbound' THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome NOT IN ('answered', 'abandoned') AND NOT c.short_abandon THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'abandoned' AND NOT c.short_abandon THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome <> 'answered' AND c.short_abandon THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND (c.outcome = 'answered' OR NOT c.short_abandon) THEN c.wait_ms ELSE 0 END), MAX(CASE WHEN c.direction = 'inbound' AND (c.outcome = 'answered' OR NOT c.short_abandon) THEN c.wait_ms ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' THEN c.wait_ms ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' THEN c.talk_ms ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' THEN c.hold_ms ELSE 0 END), SUM(c.transfers), SUM(CASE WHEN c.direction = 'outbound' THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'outbound' AND c.outcome = 'answered' THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'outbound' THEN c.talk_ms ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 5000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 10000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 15000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 20000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 30000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 45000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 60000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 90000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 120000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 180000 THEN 1 ELSE 0 END), SUM(CASE WHEN c.direction = 'inbound' AND c.outcome = 'answered' AND c.wait_ms <= 300000 THEN 1 ELSE 0 END)
    FROM calls c WHERE c.ended_at IS NOT NULL AND c.outcome IS NOT NULL AND c.direction <> 'internal'
    GROUP BY 1, 2, 3, 4;

CREATE FUNCTION report_hourly_apply(r calls, sign BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (r.ended_at IS NOT NULL AND r.outcome IS NOT NULL AND r.direction <> 'internal') THEN
        RETURN;
    END IF;
    INSERT INTO report_hourly (hour_us, queue_key, line_key, agent_key, calls, offered, answered, missed, abandoned, short_abandoned, wait_sum_ms, wait_max_ms, answered_wait_sum_ms, talk_sum_ms, hold_sum_ms, transfers, outbound, outbound_answered, outbound_talk_sum_ms, answered_le_5s, answered_le_10s, answered_le_15s, answered_le_20s, answered_le_30s, answered_le_45s, answered_le_60s, answered_le_90s, answered_le_120s, answered_le_180s, answered_le_300s)
    VALUES (r.started_at - r.started_at % 3600000000, CASE WHEN r.queue IS NULL THEN '' ELSE '=' || r.queue END, CASE WHEN r.line IS NULL THEN '' ELSE '=' || r.line END, CASE WHEN r.answered_by IS NULL THEN '' ELSE '=' || r.answered_by END, sign, sign * (CASE WHEN r.direction = 'inbound' THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome NOT IN ('answered', 'abandoned') AND NOT r.short_abandon THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'abandoned' AND NOT r.short_abandon THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome <> 'answered' AND r.short_abandon THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND (r.outcome = 'answered' OR NOT r.short_abandon) THEN r.wait_ms ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND (r.outcome = 'answered' OR NOT r.short_abandon) THEN r.wait_ms ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' THEN r.wait_ms ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' THEN r.talk_ms ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' THEN r.hold_ms ELSE 0 END), sign * (r.transfers), sign * (CASE WHEN r.direction = 'outbound' THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'outbound' AND r.outcome = 'answered' THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'outbound' THEN r.talk_ms ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 5000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 10000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 15000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 20000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 30000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 45000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 60000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 90000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 120000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 180000 THEN 1 ELSE 0 END), sign * (CASE WHEN r.direction = 'inbound' AND r.outcome = 'answered' AND r.wait_ms <= 300000 THEN 1 ELSE 0 END))
    ON CONFLICT (hour_us, queue_key, line_key, agent_key) DO UPDATE SET calls = report_hourly.calls + EXCLUDED.calls, offered = report_hourly.offered + EXCLUDED.offered, answered = report_hourly.answered + EXCLUDED.answered, missed = report_hourly.missed + EXCLUDED.missed, abandoned = report_hourly.abandoned + EXCLUDED.abandoned, short_abandoned = report_hourly.short_abandoned + EXCLUDED.short_abandoned, wait_sum_ms = report_hourly.wait_sum_ms + EXCLUDED.wait_sum_ms, wait_max_ms = CASE WHEN sign > 0 THEN GREATEST(report_hourly.wait_max_ms, EXCLUDED.wait_max_ms) ELSE report_hourly.wait_max_ms END, answered_wait_sum_ms = report_hourly.answered_wait_sum_ms + EXCLUDED.answered_wait_sum_ms, talk_sum_ms = report_hourly.talk_sum_ms + EXCLUDED.talk_sum_ms, hold_sum_ms = report_hourly.hold_sum_ms + EXCLUDED.hold_sum_ms, transfers = report_hourly.transfers + EXCLUDED.transfers, outbound = report_hourly.outbound + EXCLUDED.outbound, outbound_answered = report_hourly.outbound_answered + EXCLUDED.outbound_answered, outbound_talk_sum_ms = report_hourly.outbound_talk_sum_ms + EXCLUDED.outbound_talk_sum_ms, answered_le_5s = report_hourly.answered_le_5s + EXCLUDED.answered_le_5s, answered_le_10s = report_hourly.answered_le_10s + EXCLUDED.answered_le_10s, answered_le_15s = report_hourly.answered_le_15s + EXCLUDED.answered_le_15s, answered_le_20s = report_hourly.answered_le_20s + EXCLUDED.answered_le_20s, answered_le_30s = report_hourly.answered_le_30s + EXCLUDED.answered_le_30s, answered_le_45s = report_hourly.answered_le_45s + EXCLUDED.answered_le_45s, answered_le_60s = report_hourly.answered_le_60s + EXCLUDED.answered_le_60s, answered_le_90s = report_hourly.answered_le_90s + EXCLUDED.answered_le_90s, answered_le_120s = report_hourly.answered_le_120s + EXCLUDED.answered_le_120s, answered_le_180s = report_hourly.answered_le_180s + EXCLUDED.answered_le_180s, answered_le_300s = report_hourly.answered_le_300s + EXCLUDED.answered_le_300s;
END;
$$;

CREATE FUNCTION report_hourly_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM report_hourly_apply(OLD, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM report_hourly_apply(NEW, 1);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        UPDATE report_hourly SET wait_max_ms = COALESCE((SELECT MAX(CASE WHEN c.direction = 'inbound' AND (c.outcome = 'answered' OR NOT c.short_abandon) THEN c.wait_ms ELSE 0 END) FROM calls c WHERE c.started_at >= report_hourly.hour_us AND c.started_at < report_hourly.hour_us + 3600000000 AND c.ended_at IS NOT NULL AND c.outcome IS NOT NULL AND c.direction <> 'internal' AND (CASE WHEN c.queue IS NULL THEN '' ELSE '=' || c.queue END) = report_hourly.queue_key AND (CASE WHEN c.line IS NULL THEN '' ELSE '=' || c.line END) = report_hourly.line_key AND (CASE WHEN c.answered_by IS NULL THEN '' ELSE '=' || c.answered_by END) = report_hourly.agent_key), 0)
            WHERE report_hourly.hour_us = OLD.started_at - OLD.started_at % 3600000000 AND report_hourly.queue_key = CASE WHEN OLD.queue IS NULL THEN '' ELSE '=' || OLD.queue END AND report_hourly.line_key = CASE WHEN OLD.line IS NULL THEN '' ELSE '=' || OLD.line END AND report_hourly.agent_key = CASE WHEN OLD.answered_by IS NULL THEN '' ELSE '=' || OLD.answered_by END AND OLD.ended_at IS NOT NULL AND OLD.outcome IS NOT NULL AND OLD.direction <> 'internal'
                AND report_hourly.wait_max_ms <= (CASE WHEN OLD.direction = 'inbound' AND (OLD.outcome = 'answered' OR NOT OLD.short_abandon) THEN OLD.wait_ms ELSE 0 END)
                AND NOT (NEW.ended_at IS NOT NULL AND NEW.outcome IS NOT NULL AND NEW.direction <> 'internal' AND (OLD.started_at - OLD.started_at % 3600000000) = (NEW.started_at - NEW.started_at % 3600000000) AND (CASE WHEN OLD.queue IS NULL THEN '' ELSE '=' || OLD.queue END) = (CASE WHEN NEW.queue IS NULL THEN '' ELSE '=' || NEW.queue END) AND (CASE WHEN OLD.line IS NULL THEN '' ELSE '=' || OLD.line END) = (CASE WHEN NEW.line IS NULL THEN '' ELSE '=' || NEW.line END) AND (CASE WHEN OLD.answered_by IS NULL THEN '' ELSE '=' || OLD.answered_by END) = (CASE WHEN NEW.answered_by IS NULL THEN '' ELSE '=' || NEW.answered_by END) AND (CASE WHEN NEW.direction = 'inbound' AND (NEW.outcome = 'answered' OR NOT NEW.short_abandon) THEN NEW.wait_ms ELSE 0 END) >= (CASE WHEN OLD.direction = 'inbound' AND (OLD.outcome = 'answered' OR NOT OLD.short_abandon) THEN OLD.wait_ms ELSE 0 END));
        DELETE FROM report_hourly WHERE report_hourly.hour_us = OLD.started_at - OLD.started_at % 3600000000 AND report_hourly.queue_key = CASE WHEN OLD.queue IS NULL THEN '' ELSE '=' || OLD.queue END AND report_hourly.line_key = CASE WHEN OLD.line IS NULL THEN '' ELSE '=' || OLD.line END AND report_hourly.agent_key = CASE WHEN OLD.answered_by IS NULL THEN '' ELSE '=' || OLD.answered_by END AND report_hourly.calls = 0;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE report_hourly SET wait_max_ms = COALESCE((SELECT MAX(CASE WHEN c.direction = 'inbound' AND (c.outcome = 'answered' OR NOT c.short_abandon) THEN c.wait_ms ELSE 0 END) FROM calls c WHERE c.started_at >= report_hourly.hour_us AND c.started_at < report_hourly.hour_us + 3600000000 AND c.ended_at IS NOT NULL AND c.outcome IS NOT NULL AND c.direction <> 'internal' AND (CASE WHEN c.queue IS NULL THEN '' ELSE '=' || c.queue END) = report_hourly.queue_key AND (CASE WHEN c.line IS NULL THEN '' ELSE '=' || c.line END) = report_hourly.line_key AND (CASE WHEN c.answered_by IS NULL THEN '' ELSE '=' || c.answered_by END) = report_hourly.agent_key), 0)
            WHERE report_hourly.hour_us = OLD.started_at - OLD.started_at % 3600000000 AND report_hourly.queue_key = CASE WHEN OLD.queue IS NULL THEN '' ELSE '=' || OLD.queue END AND report_hourly.line_key = CASE WHEN OLD.line IS NULL THEN '' ELSE '=' || OLD.line END AND report_hourly.agent_key = CASE WHEN OLD.answered_by IS NULL THEN '' ELSE '=' || OLD.answered_by END AND OLD.ended_at IS NOT NULL AND OLD.outcome IS NOT NULL AND OLD.direction <> 'internal'
                AND report_hourly.wait_max_ms <= (CASE WHEN OLD.direction = 'inbound' AND (OLD.outcome = 'answered' OR NOT OLD.short_abandon) THEN OLD.wait_ms ELSE 0 END);
        DELETE FROM report_hourly WHERE report_hourly.hour_us = OLD.started_at - OLD.started_at % 3600000000 AND report_hourly.queue_key = CASE WHEN OLD.queue IS NULL THEN '' ELSE '=' || OLD.queue END AND report_hourly.line_key = CASE WHEN OLD.line IS NULL THEN '' ELSE '=' || OLD.line END AND report_hourly.agent_key = CASE WHEN OLD.answered_by IS NULL THEN '' ELSE '=' || OLD.answered_by END AND report_hourly.calls = 0;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER report_hourly_maintain AFTER INSERT OR DELETE OR UPDATE OF direction, outcome, short_abandon, wait_ms, talk_ms, hold_ms, queue, line, answered_by, started_at, ended_at, record, transfers ON calls
    FOR EACH ROW EXECUTE FUNCTION report_hourly_maintain();
