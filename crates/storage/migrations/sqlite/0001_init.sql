-- Kommutator schema, version 1 (SQLite dialect).
--
-- Keep this file in step with migrations/postgres/0001_init.sql: the same tables, columns,
-- constraints and indexes. The only differences are dialect ones:
--   * ids are INTEGER PRIMARY KEY AUTOINCREMENT here and BIGSERIAL there;
--   * timestamps are INTEGER microseconds since the Unix epoch, UTC, on both (portable, fast);
--   * JSON documents are TEXT on both, so binds and queries stay identical;
--   * booleans are BOOLEAN (stored as 0/1 by SQLite).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    password_hash TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE user_extensions (
    extension TEXT    NOT NULL PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_extensions_user ON user_extensions (user_id);

CREATE TABLE user_queues (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    queue     TEXT    NOT NULL,
    interface TEXT    NOT NULL,
    PRIMARY KEY (user_id, queue)
);
CREATE INDEX user_queues_queue ON user_queues (queue);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE agent_status_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status     TEXT    NOT NULL,
    reason     TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX agent_status_history_user ON agent_status_history (user_id, started_at);
CREATE INDEX agent_status_history_started ON agent_status_history (started_at);
-- At most one open status span per user: record_status_change closes it before opening the next.
CREATE UNIQUE INDEX agent_status_history_one_open ON agent_status_history (user_id)
    WHERE ended_at IS NULL;

CREATE TABLE customers (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL,
    company             TEXT,
    responsible_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    segment             TEXT,
    tags                TEXT    NOT NULL DEFAULT '[]',
    blacklisted         BOOLEAN NOT NULL DEFAULT FALSE,
    debtor              BOOLEAN NOT NULL DEFAULT FALSE,
    region              TEXT,
    notes               TEXT,
    instructions        TEXT,
    external_crm        TEXT,
    external_id         TEXT,
    -- Lower-cased name, company, region and phones, maintained by the application, so that a
    -- case-insensitive search works the same on both databases and for Cyrillic text.
    search_text         TEXT    NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (external_crm, external_id)
);
CREATE INDEX customers_responsible ON customers (responsible_user_id);

CREATE TABLE customer_phones (
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    phone_e164  TEXT    NOT NULL,
    phone_raw   TEXT,
    kind        TEXT,
    PRIMARY KEY (customer_id, phone_e164)
);
-- A number may belong to several customers; lookups by number are the hot path of a screen pop.
CREATE INDEX customer_phones_e164 ON customer_phones (phone_e164);

CREATE TABLE calls (
    id                  TEXT    NOT NULL PRIMARY KEY,
    source              TEXT    NOT NULL,
    direction           TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    customer_number     TEXT,
    customer_number_raw TEXT,
    line                TEXT,
    queue               TEXT,
    started_at          INTEGER NOT NULL,
    answered_at         INTEGER,
    ended_at            INTEGER,
    outcome             TEXT    CHECK (outcome IN ('answered', 'missed', 'abandoned', 'busy', 'failed', 'voicemail')),
    answered_by         TEXT,
    agent_user_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    wait_ms             INTEGER NOT NULL DEFAULT 0,
    talk_ms             INTEGER NOT NULL DEFAULT 0,
    hold_ms             INTEGER NOT NULL DEFAULT 0,
    recording           TEXT,
    degraded            BOOLEAN NOT NULL DEFAULT FALSE,
    short_abandon       BOOLEAN NOT NULL DEFAULT FALSE,
    internal            BOOLEAN NOT NULL DEFAULT FALSE,
    route_decision      TEXT,
    disposition         TEXT,
    wrapup_notes        TEXT,
    wrapup_at           INTEGER,
    record              TEXT    NOT NULL DEFAULT '{}',
    updated_at          INTEGER NOT NULL
);
-- Every list/report filter is combined with a period and "newest first", hence (col, started_at).
CREATE INDEX calls_started ON calls (started_at, id);
CREATE INDEX calls_answered_by ON calls (answered_by, started_at);
CREATE INDEX calls_customer_number ON calls (customer_number, started_at);
CREATE INDEX calls_outcome ON calls (outcome, started_at);
CREATE INDEX calls_direction ON calls (direction, started_at);
CREATE INDEX calls_line ON calls (line, started_at);
CREATE INDEX calls_queue ON calls (queue, started_at);
CREATE INDEX calls_agent_user ON calls (agent_user_id, started_at);

CREATE TABLE call_events (
    call_id TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    data    TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_agents (
    call_id     TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    extension   TEXT    NOT NULL,
    user_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    rang_at     INTEGER,
    answered_at INTEGER,
    talk_ms     INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT    NOT NULL,
    PRIMARY KEY (call_id, extension)
);
CREATE INDEX call_agents_extension ON call_agents (extension, call_id);
CREATE INDEX call_agents_user ON call_agents (user_id);

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    customer_id      INTEGER REFERENCES customers (id) ON DELETE SET NULL,
    phone_e164       TEXT,
    assignee_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    status           TEXT    NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    -- 'customer:<id>' when the customer is known, else 'phone:<e164>': one open task per key.
    dedup_key        TEXT    NOT NULL,
    call_id          TEXT,
    closed_by_call_id TEXT,
    attempts         INTEGER NOT NULL DEFAULT 1,
    note             TEXT,
    external_ref     TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    due_at           INTEGER,
    closed_at        INTEGER
);
CREATE UNIQUE INDEX tasks_one_open ON tasks (kind, dedup_key) WHERE status = 'open';
CREATE INDEX tasks_assignee ON tasks (assignee_user_id, status, created_at);
CREATE INDEX tasks_customer ON tasks (customer_id, status);
CREATE INDEX tasks_phone ON tasks (phone_e164, status);
CREATE INDEX tasks_status ON tasks (status, created_at);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connector       TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    call_id         TEXT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'in_flight', 'done', 'dead', 'discarded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    last_error_kind TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    locked_by       TEXT,
    locked_until    INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_connector_due ON outbox (connector, status, next_attempt_at);
CREATE INDEX outbox_call ON outbox (call_id);

CREATE TABLE crm_tokens (
    connector     TEXT    NOT NULL PRIMARY KEY,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT,
    expires_at    INTEGER,
    extra         TEXT    NOT NULL DEFAULT '{}',
    updated_at    INTEGER NOT NULL
);
