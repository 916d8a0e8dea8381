-- crmsync state, schema version 2: replicas and the leases they hold on
-- flows (several `crmsync run` processes sharing one database).

-- Every running replica, seen at its last heartbeat. A replica not seen
-- for a lease's TTL is gone: its flows are spread over the others.
CREATE TABLE replicas (
    id      text COLLATE "C" PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    info    text NOT NULL DEFAULT ''
);

-- One lease per flow. token only grows: it changes whenever the lease
-- passes to another holder (or back after it ran out), and every commit
-- of a flow's state checks it in the same transaction (a fencing token),
-- so a replica that lost its lease commits nothing.
CREATE TABLE leases (
    flow        text COLLATE "C" PRIMARY KEY,
    holder      text COLLATE "C" NOT NULL,
    token       bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX leases_holder ON leases (holder);
