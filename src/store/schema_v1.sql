-- Migration 1: the whole schema segsync needs.
-- NEVER edit or reorder a migration once released: add a new one instead.
-- Times are RFC 3339 UTC text, except in the member tables, where they are
-- unix seconds (INTEGER) because those tables hold tens of millions of rows.

-- One row per segment, drafts included. Recipients are a JSON array.
CREATE TABLE segment (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    description      TEXT NOT NULL DEFAULT '',
    -- NULL only for a draft saved before its type was chosen.
    type             TEXT CHECK (type IN ('scd', 'non-scd') OR (type IS NULL AND status = 'draft')),
    method           TEXT NOT NULL DEFAULT 'upload' CHECK (method = 'upload'),
    upload_type      TEXT NOT NULL CHECK (upload_type IN ('scheduled', 'manual')),
    status           TEXT NOT NULL
                     CHECK (status IN ('draft', 'inprogress', 'active', 'inactive')),
    ftp              TEXT,
    path             TEXT,
    frequency        TEXT CHECK (frequency IN ('daily', 'weekly', 'monthly')),
    valid_from       TEXT,
    valid_to         TEXT,
    recipients       TEXT NOT NULL DEFAULT '[]',
    -- Identifier type and partition column of the data held, set by the
    -- first successful load; later files must name the same identifier.
    id_type          TEXT CHECK (id_type IN ('user_id', 'mobile', 'email', 'external_id')),
    partition_column TEXT,
    -- The moment slots count from: creation, upload edit or re-activation.
    schedule_anchor  TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    -- What recipients were last told ('ok' or 'failing'): one email per change.
    alert_state      TEXT NOT NULL DEFAULT 'ok' CHECK (alert_state IN ('ok', 'failing'))
);

-- Distinct partition values of a segment, with the current member count,
-- kept up to date by each load so that `show` never counts members.
CREATE TABLE partition (
    id         INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segment(id) ON DELETE CASCADE,
    value      TEXT NOT NULL,
    members    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (segment_id, value)
);

-- Current membership: one open record per user. `key` is an INTEGER for
-- user_id and mobile segments, TEXT (emails lower-cased) otherwise; the
-- column has no type so SQLite keeps what it is given. `since` is when the
-- record opened (unix seconds, the slot's time). No foreign keys here: a
-- check per row costs too much at tens of millions of rows, and segments
-- are never deleted, only deactivated.
CREATE TABLE member (
    segment_id   INTEGER NOT NULL,
    key                  NOT NULL,
    partition_id INTEGER NOT NULL,
    since        INTEGER NOT NULL,
    PRIMARY KEY (segment_id, key)
) WITHOUT ROWID;

-- Closed records of SCD segments: the user was in `partition_id` from
-- `valid_from` (inclusive) to `valid_to` (exclusive).
CREATE TABLE member_history (
    segment_id   INTEGER NOT NULL,
    key                  NOT NULL,
    partition_id INTEGER NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_to     INTEGER NOT NULL,
    PRIMARY KEY (segment_id, key, valid_from)
) WITHOUT ROWID;

-- One row per refresh attempt (and per missed slot). A row with outcome
-- 'running' is a claim: `claim_owner` holds it until `lease_until`.
CREATE TABLE execution (
    id            INTEGER PRIMARY KEY,
    segment_id    INTEGER NOT NULL REFERENCES segment(id) ON DELETE CASCADE,
    slot          TEXT,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'retry', 'manual')),
    attempt       INTEGER NOT NULL DEFAULT 1,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    outcome       TEXT NOT NULL
                  CHECK (outcome IN ('running', 'success', 'unchanged', 'failed', 'missed')),
    file          TEXT,
    file_size     INTEGER,
    file_modified TEXT,
    sha256        TEXT,
    rows_read     INTEGER,
    rows_loaded   INTEGER,
    rows_rejected INTEGER,
    added         INTEGER,
    removed       INTEGER,
    changed       INTEGER,
    error         TEXT,
    -- Free text notes for the log: ignored columns, takeovers, ...
    notes         TEXT,
    -- Who was notified and when, or why sending failed.
    notified      TEXT,
    claim_owner   TEXT,
    lease_until   TEXT
);
CREATE UNIQUE INDEX execution_slot_attempt
    ON execution (segment_id, slot, attempt) WHERE slot IS NOT NULL;
CREATE INDEX execution_segment ON execution (segment_id, id);
CREATE INDEX execution_running ON execution (outcome) WHERE outcome = 'running';

-- Rejected rows of an execution (the first 1,000), for logs and emails.
CREATE TABLE rejected_row (
    execution_id INTEGER NOT NULL REFERENCES execution(id) ON DELETE CASCADE,
    line         INTEGER NOT NULL,
    field        TEXT,
    reason       TEXT NOT NULL,
    content      TEXT,
    PRIMARY KEY (execution_id, line)
);

-- Slots whose newest file was still being uploaded when `run-due` last
-- tried them. Such an attempt leaves no execution row (it released its
-- claim), so this is how a later `run-due` tells a deferred slot, which
-- becomes `failed` when its next slot comes, from a missed one.
CREATE TABLE slot_deferral (
    segment_id  INTEGER NOT NULL REFERENCES segment(id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    file        TEXT NOT NULL,
    ready_at    TEXT NOT NULL,
    deferred_at TEXT NOT NULL,
    PRIMARY KEY (segment_id, slot)
);
