-- Kommutator schema, version 4 (PostgreSQL dialect): calls a CRM started.
--
-- Keep in step with migrations/sqlite/0004_crm_call_links.sql (same table and columns).
--
-- A click-to-call from a CRM (Bitrix24 ONEXTERNALCALLSTART) arrives with the CRM's own call
-- id, already registered on the CRM side. Kommutator picks the PBX channel id before it
-- originates, so the call it will track has a known id, and stores the pair here first: the
-- connector then finishes the CRM's call instead of registering a second one, also after a
-- restart. The unique CRM id makes a repeated event (the CRM may deliver one twice) a no-op.
CREATE TABLE crm_call_links (
    connector   TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,
    crm_call_id TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (connector, call_id),
    UNIQUE (connector, crm_call_id)
);
