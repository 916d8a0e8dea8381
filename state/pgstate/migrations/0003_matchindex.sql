-- crmsync state, schema version 3: the match index of each target system
-- (state/matchindex.go), so a restarted run refreshes it from the target's
-- saved cursor instead of reading the whole target again.

-- One row per target record and match value; ref is the engine's key of
-- the record (its id, or entity:id), entity and id what a match reads.
CREATE TABLE match_index (
    system text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    value  text COLLATE "C" NOT NULL,
    ref    text COLLATE "C" NOT NULL,
    entity text NOT NULL,
    id     text NOT NULL,
    PRIMARY KEY (system, key, value, ref)
);
-- The reverse rows: which values a record is indexed under.
CREATE INDEX match_index_ref ON match_index (system, ref);

-- One row per target system: the keys covered, whether the full read
-- finished, and the target's pull cursor to go on from.
CREATE TABLE match_index_meta (
    system   text COLLATE "C" PRIMARY KEY,
    keys     text[] NOT NULL,
    complete boolean NOT NULL,
    cursor   bytea,
    at       timestamptz NOT NULL
);
