-- Tenant schema v7: what the agent's outbound channels need for e-mail replies and WhatsApp
-- through Meta's Cloud API (services/agent/src/channels, docs/channels.md).
--  * outbound_messages may carry e-mail replies (channel 'email'); `thread` holds the reply's
--    threading (subject, In-Reply-To, References) as JSON ENCRYPTED with the tenant DEK
--    (AAD outbound_messages | thread | <id>): message ids and subjects are personal data.
--  * inbound_receipts by session: a WhatsApp reply goes back through the provider the
--    conversation last came in by (Twilio or the Cloud API) when a tenant has both.

ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_channel_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_channel_check
  CHECK (channel IN ('sms', 'whatsapp', 'messenger', 'instagram', 'email'));
ALTER TABLE outbound_messages ADD COLUMN thread bytea;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_email_thread_check
  CHECK ((channel = 'email') = (thread IS NOT NULL));

CREATE INDEX inbound_receipts_session_idx ON inbound_receipts (session_id, received_at DESC);
