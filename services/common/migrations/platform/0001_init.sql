-- The platform registry (DESIGN §5.6) and the tenants' wrapped data keys (DESIGN §5.2).
-- Runs with search_path = platform; the runner creates the schema and schema_migrations.

-- For the exclusion constraints that make double booking impossible (DESIGN §6).
-- In `public` so opclasses resolve the same for every schema.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE TABLE platform.tenants (
  name               text PRIMARY KEY CHECK (name ~ '^[a-z]([a-z0-9-]*[a-z0-9])?$' AND length(name) BETWEEN 3 AND 40),
  tenant_id          text NOT NULL UNIQUE,            -- t_<name>: schema, role, dedicated database
  display_name       text NOT NULL,
  business_type      text NOT NULL CHECK (business_type IN ('dental', 'gym', 'hotel')),
  locale             text NOT NULL DEFAULT 'en-US',
  timezone           text NOT NULL DEFAULT 'UTC',
  database_isolation text NOT NULL DEFAULT 'shared' CHECK (database_isolation IN ('shared', 'dedicated')),
  agent_isolation    text NOT NULL DEFAULT 'shared' CHECK (agent_isolation IN ('shared', 'dedicated')),
  database_name      text NOT NULL,                   -- where the schema lives
  schema_name        text NOT NULL,
  schema_version     integer NOT NULL DEFAULT 0,
  active_key_version integer NOT NULL DEFAULT 0,
  topics             text[] NOT NULL DEFAULT '{}',
  origins            text[] NOT NULL DEFAULT '{}',
  redirect_uris      text[] NOT NULL DEFAULT '{}',
  integrations       jsonb NOT NULL DEFAULT '{}',     -- secrets by reference only
  agent              jsonb NOT NULL DEFAULT '{}',     -- {model, instructions, replicas}
  state              text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'archived')),
  spec_hash          text,                            -- hash of what was written, to skip unchanged upserts
  published_hash     text,                            -- hash of the last lifecycle event published
  generation         bigint NOT NULL DEFAULT 0,       -- metadata.generation it reflects
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Deliberately no foreign key to tenants (and so no ON DELETE CASCADE): keys outlive registry
-- rows under deletionPolicy Retain; only the encryption reconciler's finalizer deletes them
-- (crypto-shredding).
CREATE TABLE platform.tenant_keys (
  tenant      text NOT NULL,
  version     integer NOT NULL CHECK (version >= 1),
  wrapped_dek bytea NOT NULL,
  kek_id      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, version)
);
