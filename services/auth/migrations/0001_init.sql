-- The SSO service's own schema (DESIGN §7) in the platform database. Runs with
-- search_path = auth; the runner creates the schema and auth.schema_migrations.

-- People who log in. A user belongs to exactly one tenant; the same e-mail address may exist in
-- several tenants as unrelated users (tenants are organizations, not a shared directory).
CREATE TABLE auth.users (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant              text NOT NULL CHECK (tenant ~ '^[a-z]([a-z0-9-]*[a-z0-9])?$' AND length(tenant) BETWEEN 3 AND 40),
  email               text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  password_hash       text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
  roles               text[] NOT NULL CHECK (roles <@ ARRAY['owner', 'admin', 'staff', 'customer']::text[] AND cardinality(roles) >= 1),
  status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  invitation_id       uuid,                       -- the invitation that created it, if any
  password_changed_at timestamptz NOT NULL DEFAULT now(),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, email)
);

-- Confidential clients for the client-credentials grant (services). Each acts for one tenant
-- with fixed roles. The secret is encrypted with the platform KEK (AAD = client id), not
-- hashed: oidc-provider compares client_secret itself, so it needs the value. The tenants'
-- public browser clients (`<tenant>-web`) are NOT here: they are read from platform.tenants.
CREATE TABLE auth.clients (
  client_id          text PRIMARY KEY CHECK (client_id ~ '^[a-z0-9][a-z0-9._-]{2,99}$' AND client_id !~ '-web$'),
  tenant             text NOT NULL CHECK (tenant ~ '^[a-z]([a-z0-9-]*[a-z0-9])?$'),
  wrapped_secret     bytea NOT NULL,
  kek_id             text NOT NULL,
  roles              text[] NOT NULL DEFAULT '{staff}' CHECK (roles <@ ARRAY['owner', 'admin', 'staff', 'customer']::text[]),
  scopes             text[] NOT NULL DEFAULT '{api}',
  description        text,
  disabled_at        timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- Durable oidc-provider artefacts (grants, refresh tokens, client-credentials tokens, …). The
-- short-lived ones (sessions, interactions, authorization codes) live in Redis.
-- @see https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js
CREATE TABLE auth.oidc_payloads (
  model       text NOT NULL,
  id          text NOT NULL,
  payload     jsonb NOT NULL,
  grant_id    text,
  uid         text,
  user_code   text,
  consumed_at timestamptz,
  expires_at  timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_payloads_grant_idx ON auth.oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_payloads_expires_idx ON auth.oidc_payloads (expires_at) WHERE expires_at IS NOT NULL;

-- JWT signing keys: the private JWK encrypted with the platform KEK (LocalKms.wrap, AAD binds
-- it to its kid). The newest non-retired key signs; retired keys stay published until every
-- token they signed has expired (`publish_until`), then `rotate-keys`/`prune-keys` delete them.
CREATE TABLE auth.signing_keys (
  kid            text PRIMARY KEY,
  alg            text NOT NULL CHECK (alg IN ('ES256', 'RS256', 'PS256', 'EdDSA')),
  public_jwk     jsonb NOT NULL,
  wrapped_jwk    bytea NOT NULL,
  kek_id         text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  retired_at     timestamptz,
  publish_until  timestamptz,
  CHECK ((retired_at IS NULL) = (publish_until IS NULL))
);
CREATE UNIQUE INDEX signing_keys_one_active ON auth.signing_keys ((true)) WHERE retired_at IS NULL;

-- Security-relevant events (refresh-token reuse, lockouts, password changes, invitations).
CREATE TABLE auth.audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  tenant     text,
  event      text NOT NULL,
  subject    text,
  client_id  text,
  ip         text,
  details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_event_idx ON auth.audit_log (event, at DESC);
CREATE INDEX audit_log_tenant_idx ON auth.audit_log (tenant, at DESC);

-- Password-reset tokens: only SHA-256 of the 256-bit random token is stored; single use.
CREATE TABLE auth.password_resets (
  token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
  user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_user_idx ON auth.password_resets (user_id);
