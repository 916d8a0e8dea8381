-- crmsync state, schema version 1: one table per kind of state.
-- Keys and names are compared byte by byte (COLLATE "C"), as in the bbolt
-- engine, so listings come back in the same order whatever the database's
-- locale. Times are timestamptz (microseconds); a run's start is its key and
-- is kept to the nanosecond in runs.started_ns. JSONB holds payloads only.

-- Where each flow's pull has got to: opaque connector bytes.
CREATE TABLE cursors (
    key        text COLLATE "C" PRIMARY KEY,
    value      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Golden records: canonical fields, which system set each field, where the
-- record was deleted, and the record's own system -> external id map (the
-- links table below is the index the engine looks ids up in).
CREATE TABLE records (
    id         text COLLATE "C" PRIMARY KEY,
    fields     jsonb NOT NULL,
    links      jsonb NOT NULL DEFAULT '{}',
    sources    jsonb,
    gone       jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- System + external id -> canonical id.
CREATE TABLE links (
    system       text COLLATE "C" NOT NULL,
    external_id  text COLLATE "C" NOT NULL,
    canonical_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (system, external_id)
);
CREATE INDEX links_canonical_id ON links (canonical_id);

-- What crmsync last wrote to or read from each external record (echo
-- suppression).
CREATE TABLE fingerprints (
    system      text COLLATE "C" NOT NULL,
    external_id text COLLATE "C" NOT NULL,
    hash        text NOT NULL,
    entity      text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    payload     jsonb,
    PRIMARY KEY (system, external_id)
);

-- Create intents: written before a create is sent, deleted by the page
-- commit that records the created record's link.
CREATE TABLE intents (
    system       text COLLATE "C" NOT NULL,
    canonical_id text COLLATE "C" NOT NULL,
    entity       text NOT NULL DEFAULT '',
    flow         text COLLATE "C" NOT NULL DEFAULT '',
    at           timestamptz NOT NULL,
    match        jsonb,
    payload      jsonb,
    PRIMARY KEY (system, canonical_id)
);

-- Deliveries that have not reached their target: pending (the target's
-- fault, retried every run), dead (the record's fault) or dropped by an
-- operator (kept as a marker). key is "<flow>/<system>/<canonical id>" or
-- "<flow>/<system>/<source system>:<source id>".
CREATE TABLE deliveries (
    key           text COLLATE "C" PRIMARY KEY,
    flow          text COLLATE "C" NOT NULL,
    system        text COLLATE "C" NOT NULL,
    canonical_id  text NOT NULL DEFAULT '',
    source_system text NOT NULL DEFAULT '',
    source_entity text NOT NULL DEFAULT '',
    source_id     text NOT NULL DEFAULT '',
    op            text NOT NULL DEFAULT '',
    pending       boolean NOT NULL DEFAULT false,
    dropped       boolean NOT NULL DEFAULT false,
    error         text NOT NULL DEFAULT '',
    attempts      integer NOT NULL,
    first_at      timestamptz NOT NULL,
    last_at       timestamptz NOT NULL,
    payload       jsonb
);
CREATE INDEX deliveries_flow ON deliveries (flow, key);

-- Run history: the newest 100 runs of each flow.
CREATE TABLE runs (
    flow       text COLLATE "C" NOT NULL,
    started_ns bigint NOT NULL,
    started    timestamptz NOT NULL,
    finished   timestamptz,
    mode       text NOT NULL DEFAULT '',
    error      text NOT NULL DEFAULT '',
    counts     jsonb,
    PRIMARY KEY (flow, started_ns)
);
CREATE INDEX runs_started ON runs (started_ns DESC, flow);
