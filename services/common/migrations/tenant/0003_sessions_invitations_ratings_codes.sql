-- Tenant schema v3: chat sessions and messages, invitations, ratings, patient access codes,
-- API idempotency records (DESIGN §7). Personal data is application-encrypted bytea.

CREATE TABLE sessions (
  id              uuid PRIMARY KEY,
  customer_id     uuid REFERENCES customers (id),
  channel         text NOT NULL CHECK (channel IN ('web', 'sms', 'whatsapp', 'messenger', 'instagram', 'email', 'phone', 'staff', 'api')),
  state           text NOT NULL DEFAULT 'bot' CHECK (state IN ('bot', 'pending_human', 'human', 'closed')),
  subject         bytea,                 -- encrypted: customers write names and symptoms here
  assigned_to     text,                  -- staff subject (token `sub`) while state = human
  last_seq        bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0), -- seq of the newest message
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_message_at timestamptz,
  closed_at       timestamptz,
  CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX sessions_created_idx ON sessions (created_at DESC, id DESC);
CREATE INDEX sessions_customer_idx ON sessions (customer_id, created_at DESC);
CREATE INDEX sessions_open_state_idx ON sessions (state, updated_at) WHERE state <> 'closed';

CREATE TABLE messages (
  id         uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq        bigint NOT NULL CHECK (seq >= 1),
  role       text NOT NULL CHECK (role IN ('user', 'assistant', 'staff', 'system')),
  body       bytea NOT NULL,             -- encrypted
  author     text,                       -- staff subject for role = staff
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (session_id, seq)
);

CREATE TABLE invitations (
  id          uuid PRIMARY KEY,
  email       bytea,
  email_bidx  bytea CHECK (octet_length(email_bidx) = 32),
  phone       bytea,
  phone_bidx  bytea CHECK (octet_length(phone_bidx) = 32),
  role        text NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'customer')),
  token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  expires_at  timestamptz NOT NULL,
  accepted_at timestamptz,
  revoked_at  timestamptz,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (email IS NOT NULL OR phone IS NOT NULL),
  CHECK ((email IS NULL) = (email_bidx IS NULL)),
  CHECK ((phone IS NULL) = (phone_bidx IS NULL)),
  CHECK (expires_at > created_at),
  CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitations_email_bidx_idx ON invitations (email_bidx) WHERE email_bidx IS NOT NULL;
CREATE INDEX invitations_phone_bidx_idx ON invitations (phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE INDEX invitations_pending_idx ON invitations (expires_at) WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE ratings (
  id           uuid PRIMARY KEY,
  customer_id  uuid NOT NULL REFERENCES customers (id),
  subject_type text NOT NULL CHECK (subject_type IN ('session', 'booking', 'staff')),
  subject_id   text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 200),
  score        smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
  comment      bytea,                    -- encrypted
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, subject_type, subject_id)
);
CREATE INDEX ratings_subject_idx ON ratings (subject_type, subject_id);

-- Patient access codes: exchanged in auth for a narrow token. Only a hash is stored.
CREATE TABLE access_codes (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id  uuid NOT NULL REFERENCES customers (id),
  code_hash    bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
  expires_at   timestamptz NOT NULL,
  attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
  revoked_at   timestamptz,
  used_at      timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (expires_at > created_at)
);
CREATE INDEX access_codes_customer_idx ON access_codes (customer_id);

-- API idempotency (Idempotency-Key header): the first response is replayed for the same key
-- and principal; a different request body under the same key is refused.
CREATE TABLE idempotency_keys (
  key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
  principal    text NOT NULL,
  request_hash text NOT NULL,
  status_code  integer CHECK (status_code BETWEEN 100 AND 599),
  response     jsonb,                    -- null while the first request is in flight
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
