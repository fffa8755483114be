-- Tenant schema v5: what the agent (services/agent) and the inbound channel webhooks need
-- (DESIGN §6, §7).
--  * LangGraph checkpoints, in the layout of @langchain/langgraph-checkpoint-postgres 1.x
--    (its migrations 0..4, reproduced here so the tenant role never needs CREATE: the saver's
--    `setup()` is never called). Channel values and pending writes are ENCRYPTED by the agent's
--    serializer (tenant DEK, AAD bound to the thread) before they reach `blob`; `checkpoint`
--    holds only ids, versions and timestamps, `metadata` only {source, step, parents}.
--    `created_at` is ours: retention pruning deletes old checkpoints by it.
--  * the tenant's knowledge base (FAQ answers the agent may quote; not personal data).
--  * channel contacts: a Messenger/Instagram/WhatsApp sender id (encrypted + blind index)
--    mapped to the customer, so replies find their way back.
--  * inbound receipts: provider message ids already accepted (webhook replays are dropped).
--  * outbound messages: replies to send on a channel, recorded in the run's transaction and
--    marked sent after the provider accepted them (no reply lost, none sent twice by a replay).

CREATE TABLE checkpoint_migrations (
  v integer PRIMARY KEY
);
INSERT INTO checkpoint_migrations (v) VALUES (0), (1), (2), (3), (4);

CREATE TABLE checkpoints (
  thread_id            text NOT NULL,
  checkpoint_ns        text NOT NULL DEFAULT '',
  checkpoint_id        text NOT NULL,
  parent_checkpoint_id text,
  type                 text,
  checkpoint           jsonb NOT NULL,
  metadata             jsonb NOT NULL DEFAULT '{}',
  created_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX checkpoints_created_idx ON checkpoints (created_at);

CREATE TABLE checkpoint_blobs (
  thread_id     text NOT NULL,
  checkpoint_ns text NOT NULL DEFAULT '',
  channel       text NOT NULL,
  version       text NOT NULL,
  type          text NOT NULL,
  blob          bytea,
  PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);

CREATE TABLE checkpoint_writes (
  thread_id     text NOT NULL,
  checkpoint_ns text NOT NULL DEFAULT '',
  checkpoint_id text NOT NULL,
  task_id       text NOT NULL,
  idx           integer NOT NULL,
  channel       text NOT NULL,
  type          text,
  blob          bytea NOT NULL,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE knowledge_base (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  question   text NOT NULL CHECK (length(btrim(question)) BETWEEN 1 AND 500),
  answer     text NOT NULL CHECK (length(btrim(answer)) BETWEEN 1 AND 4000),
  -- lower-case words that select the entry besides the question's own words
  keywords   text[] NOT NULL DEFAULT '{}',
  locale     text CHECK (locale ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$'),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channel_contacts (
  id           uuid PRIMARY KEY,
  channel      text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'messenger', 'instagram', 'email')),
  address      bytea NOT NULL,                                   -- encrypted sender id / number
  address_bidx bytea NOT NULL CHECK (octet_length(address_bidx) = 32),
  customer_id  uuid NOT NULL REFERENCES customers (id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (channel, address_bidx)
);
CREATE INDEX channel_contacts_customer_idx ON channel_contacts (customer_id);

CREATE TABLE inbound_receipts (
  provider            text NOT NULL CHECK (provider IN ('twilio', 'meta', 'email')),
  provider_message_id text NOT NULL CHECK (length(provider_message_id) BETWEEN 1 AND 300),
  session_id          uuid,
  received_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, provider_message_id)
);
CREATE INDEX inbound_receipts_received_idx ON inbound_receipts (received_at);

CREATE TABLE outbound_messages (
  id                  uuid PRIMARY KEY,
  session_id          uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  channel             text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'messenger', 'instagram')),
  recipient           bytea NOT NULL,                            -- encrypted
  body                bytea NOT NULL,                            -- encrypted
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts            integer NOT NULL DEFAULT 0,
  provider_message_id text,
  last_error          text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  sent_at             timestamptz
);
CREATE INDEX outbound_messages_pending_idx ON outbound_messages (created_at) WHERE status = 'pending';
