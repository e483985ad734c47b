-- A database written by segsync at schema version 1 (three manual SCD loads,
-- a scheduled segment, a draft, an inactive segment). Never regenerate it:
-- it stands for databases already in the field.
BEGIN TRANSACTION;
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
INSERT INTO "execution" VALUES(1,1,NULL,'manual',1,'2026-12-01T00:00:00Z','2026-12-01T00:00:00Z','success','/work/main/examples/data/high_value__2026-12-01.csv',316,'2026-12-03T17:15:19Z','3bee990890591f701bce2c87c7a49e96d79644a7ed49b2151e03d33dad418f8d',30,30,0,30,0,0,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "execution" VALUES(2,1,NULL,'manual',1,'2026-12-02T00:00:00Z','2026-12-02T00:00:00Z','success','/work/main/examples/data/high_value__2026-12-02.csv',316,'2026-12-03T17:15:19Z','778955d373a9e9e7dd720008cfd456e672df312dce8993181971b148b4b1e18f',30,30,0,2,2,3,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "execution" VALUES(3,1,NULL,'manual',1,'2026-12-03T00:00:00Z','2026-12-03T00:00:00Z','success','/work/main/examples/data/high_value__2026-12-03.csv',320,'2026-12-03T17:15:19Z','e593d326dc8fc3a9372757f60f2bf68b4d636f03b548ecf63fb19ef7aa6ecfe5',31,30,1,0,0,2,NULL,NULL,'warning email not sent: no [smtp] section in segments.toml',NULL,NULL);
CREATE TABLE member (
    segment_id   INTEGER NOT NULL,
    key                  NOT NULL,
    partition_id INTEGER NOT NULL,
    since        INTEGER NOT NULL,
    PRIMARY KEY (segment_id, key)
) WITHOUT ROWID;
INSERT INTO "member" VALUES(1,1001,3,1796256000);
INSERT INTO "member" VALUES(1,1002,2,1796083200);
INSERT INTO "member" VALUES(1,1003,2,1796169600);
INSERT INTO "member" VALUES(1,1004,3,1796083200);
INSERT INTO "member" VALUES(1,1006,2,1796083200);
INSERT INTO "member" VALUES(1,1007,3,1796083200);
INSERT INTO "member" VALUES(1,1008,2,1796083200);
INSERT INTO "member" VALUES(1,1009,1,1796083200);
INSERT INTO "member" VALUES(1,1010,2,1796169600);
INSERT INTO "member" VALUES(1,1011,2,1796083200);
INSERT INTO "member" VALUES(1,1012,3,1796083200);
INSERT INTO "member" VALUES(1,1013,2,1796083200);
INSERT INTO "member" VALUES(1,1014,2,1796083200);
INSERT INTO "member" VALUES(1,1015,2,1796083200);
INSERT INTO "member" VALUES(1,1016,1,1796083200);
INSERT INTO "member" VALUES(1,1018,2,1796083200);
INSERT INTO "member" VALUES(1,1019,2,1796083200);
INSERT INTO "member" VALUES(1,1020,2,1796083200);
INSERT INTO "member" VALUES(1,1021,2,1796169600);
INSERT INTO "member" VALUES(1,1022,1,1796083200);
INSERT INTO "member" VALUES(1,1023,2,1796083200);
INSERT INTO "member" VALUES(1,1024,3,1796083200);
INSERT INTO "member" VALUES(1,1025,2,1796083200);
INSERT INTO "member" VALUES(1,1026,2,1796083200);
INSERT INTO "member" VALUES(1,1027,3,1796083200);
INSERT INTO "member" VALUES(1,1028,3,1796083200);
INSERT INTO "member" VALUES(1,1029,3,1796083200);
INSERT INTO "member" VALUES(1,1030,2,1796083200);
INSERT INTO "member" VALUES(1,1031,2,1796256000);
INSERT INTO "member" VALUES(1,1032,2,1796169600);
CREATE TABLE member_history (
    segment_id   INTEGER NOT NULL,
    key                  NOT NULL,
    partition_id INTEGER NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_to     INTEGER NOT NULL,
    PRIMARY KEY (segment_id, key, valid_from)
) WITHOUT ROWID;
INSERT INTO "member_history" VALUES(1,1001,1,1796083200,1796256000);
INSERT INTO "member_history" VALUES(1,1003,1,1796083200,1796169600);
INSERT INTO "member_history" VALUES(1,1005,2,1796083200,1796169600);
INSERT INTO "member_history" VALUES(1,1010,3,1796083200,1796169600);
INSERT INTO "member_history" VALUES(1,1017,1,1796083200,1796169600);
INSERT INTO "member_history" VALUES(1,1021,3,1796083200,1796169600);
INSERT INTO "member_history" VALUES(1,1031,1,1796169600,1796256000);
CREATE TABLE partition (
    id         INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segment(id) ON DELETE CASCADE,
    value      TEXT NOT NULL,
    members    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (segment_id, value)
);
INSERT INTO "partition" VALUES(1,1,'medium',3);
INSERT INTO "partition" VALUES(2,1,'high',19);
INSERT INTO "partition" VALUES(3,1,'low',8);
CREATE TABLE rejected_row (
    execution_id INTEGER NOT NULL REFERENCES execution(id) ON DELETE CASCADE,
    line         INTEGER NOT NULL,
    field        TEXT,
    reason       TEXT NOT NULL,
    content      TEXT,
    PRIMARY KEY (execution_id, line)
);
INSERT INTO "rejected_row" VALUES(3,7,'user_id','user_id `abc` is not a positive integer','abc,high');
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
INSERT INTO "segment" VALUES(1,'hv','high value','scd','upload','manual','active',NULL,NULL,NULL,NULL,NULL,'[]','user_id','tier','2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','ok');
INSERT INTO "segment" VALUES(2,'churn','','non-scd','upload','scheduled','inprogress','apac','churn','daily','2026-11-30',NULL,'[]',NULL,NULL,'2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','ok');
INSERT INTO "segment" VALUES(3,'wip','',NULL,'upload','scheduled','draft','apac',NULL,NULL,NULL,NULL,'[]',NULL,NULL,'2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','ok');
INSERT INTO "segment" VALUES(4,'old','','scd','upload','manual','inactive',NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'2026-11-30T10:00:00Z','2026-11-30T10:00:00Z','2026-12-03T17:35:47Z','ok');
CREATE TABLE slot_deferral (
    segment_id  INTEGER NOT NULL REFERENCES segment(id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    file        TEXT NOT NULL,
    ready_at    TEXT NOT NULL,
    deferred_at TEXT NOT NULL,
    PRIMARY KEY (segment_id, slot)
);
CREATE UNIQUE INDEX execution_slot_attempt
    ON execution (segment_id, slot, attempt) WHERE slot IS NOT NULL;
CREATE INDEX execution_segment ON execution (segment_id, id);
CREATE INDEX execution_running ON execution (outcome) WHERE outcome = 'running';
COMMIT;
PRAGMA user_version = 1;
