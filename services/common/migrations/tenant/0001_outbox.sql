-- Tenant schema v1: transactional outbox and idempotent-consumer bookkeeping (DESIGN §6).
-- Runs with search_path = <tenant schema>; unqualified names land there.

-- Exclusion constraints in later migrations need it in dedicated databases too.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE TABLE outbox (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq            bigint GENERATED ALWAYS AS IDENTITY, -- relay order; created_at can tie
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,                       -- Kafka key
  event_type     text NOT NULL,                       -- io.simptu.<area>.<event>
  payload        bytea NOT NULL,                      -- event data, encrypted with the tenant DEK
  headers        jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now(),
  published_at   timestamptz,
  attempts       integer NOT NULL DEFAULT 0,
  last_error     text
);

-- The relay scans only what is still to be sent.
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE processed_events (
  consumer     text NOT NULL,
  event_id     text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
