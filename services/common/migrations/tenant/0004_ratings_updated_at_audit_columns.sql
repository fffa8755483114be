-- Tenant schema v4: columns the invitation, rating and access-code domain needs beyond v3.
--  * ratings are editable (one per customer and subject, upserted): `updated_at` says when the
--    score last changed, `created_at` stays the first submission (keyset order of lists).
--  * invitations record who accepted them (the SSO user's subject), for the audit trail.
--  * access codes record who issued them (the staff member's token `sub`).
ALTER TABLE ratings ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE ratings ADD CONSTRAINT ratings_updated_after_created CHECK (updated_at >= created_at);
CREATE INDEX ratings_list_idx ON ratings (created_at DESC, id DESC);

ALTER TABLE invitations ADD COLUMN accepted_by text CHECK (length(accepted_by) BETWEEN 1 AND 255);
ALTER TABLE invitations ADD CONSTRAINT invitations_accepted_by_only_when_accepted
  CHECK (accepted_by IS NULL OR accepted_at IS NOT NULL);
CREATE INDEX invitations_list_idx ON invitations (created_at DESC, id DESC);

ALTER TABLE access_codes ADD COLUMN created_by text CHECK (length(created_by) BETWEEN 1 AND 255);
CREATE INDEX access_codes_list_idx ON access_codes (created_at DESC, id DESC);
