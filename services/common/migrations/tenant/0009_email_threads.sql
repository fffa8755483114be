-- Tenant schema v9: the e-mail thread of each e-mail conversation (services/agent/src/channels/
-- thread.ts, docs/channels.md), so a staff reply is threaded on the customer's LATEST mail and
-- references every mail of the conversation — also the mails that arrived while staff had the
-- conversation (the agent does not answer those, so no outbound row records them).
--  * one row per session; `thread` is JSON ENCRYPTED with the tenant DEK (AAD
--    email_threads | thread | <session id>): the subject, the customer's address, the Message-ID
--    of their latest mail and the References chain (their mails and ours, oldest first) are
--    personal data.
--  * written by the agent when a mail arrives (runtime) and when one of our replies is sent
--    (outbound sender); read by the staff relay. The role's privileges on the new table are the
--    migration runner's usual set (grantStatements: SELECT, INSERT, UPDATE, DELETE).

CREATE TABLE email_threads (
  session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
  thread     bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
