-- Tenant schema v10: outbox rows published by the process that enqueued them (events/outbox.ts,
-- "direct publishing"), with the relay as the safety net.
--  * `claimed_by` / `claimed_until`: set when the row is inserted by a process whose relay
--    publishes its own rows right after COMMIT (the process's OUTBOX_INSTANCE and a lease).
--    Relays leave a row with a live claim alone — and the later rows of its aggregate, so order
--    per key holds — until it is marked published or the lease runs out (its process died).
--    A row is claimed only when no earlier unpublished row of its aggregate is held by anyone
--    else (another process, or nobody: the relay's), so a direct publish never overtakes it.
--  * the partial index serves that check (pending rows of one aggregate).

ALTER TABLE outbox
  ADD COLUMN claimed_by    text,
  ADD COLUMN claimed_until timestamptz;

CREATE INDEX outbox_pending_aggregate_idx ON outbox (aggregate_id, seq) WHERE published_at IS NULL;
