-- Tenant schema v6: gym memberships and personal-training services (DESIGN §7, gym: "classes
-- and schedule, memberships, book a class or a trainer session, cancel").
--  * services.kind gains 'personal_training': a one-to-one session with a trainer (a resource of
--    kind 'trainer'), booked through the same availability and booking code as everything else.
--  * membership_plans: what the business sells (catalog data, not personal, not encrypted).
--    A plan runs per calendar month or year of the membership (renewing until cancelled, or
--    for a fixed term when the membership has an end), or for a fixed number of days (a pass).
--    `class_allowance`: classes per period (per month / year; the whole term of a days pass);
--    NULL = unlimited.
--  * memberships: a customer's membership of a plan. The plan's terms (price, period, allowance)
--    are copied at sale, so a later change of the plan never changes what a customer bought.
--    `note` is staff free text (a freeze reason may be medical), so it is encrypted by the
--    application (FieldCipher, AAD bound to the row id, which the application generates).
--    At most ONE live (pending, active or frozen) membership per customer at any instant:
--    an exclusion constraint, like bookings_no_overlap.

ALTER TABLE services DROP CONSTRAINT services_kind_check;
ALTER TABLE services ADD CONSTRAINT services_kind_check
  CHECK (kind IN ('treatment', 'class', 'room_type', 'personal_training'));

CREATE TABLE membership_plans (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  description     text CHECK (length(description) <= 4000),
  price_cents     bigint NOT NULL CHECK (price_cents >= 0),
  currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  period          text NOT NULL CHECK (period IN ('month', 'year', 'days')),
  duration_days   integer CHECK (duration_days BETWEEN 1 AND 3660),
  class_allowance integer CHECK (class_allowance BETWEEN 0 AND 10000),
  active          boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT membership_plans_duration_only_for_days CHECK ((period = 'days') = (duration_days IS NOT NULL))
);
-- The agent finds plans by name: two plans of one name would be ambiguous.
CREATE UNIQUE INDEX membership_plans_name_key ON membership_plans (lower(btrim(name)));

CREATE TABLE memberships (
  id              uuid PRIMARY KEY,
  customer_id     uuid NOT NULL REFERENCES customers (id),
  plan_id         uuid NOT NULL REFERENCES membership_plans (id),
  status          text NOT NULL CHECK (status IN ('pending', 'active', 'frozen', 'cancelled')),
  starts_at       timestamptz NOT NULL,
  ends_at         timestamptz,           -- NULL: renews every period until cancelled
  -- the plan's terms when sold
  price_cents     bigint NOT NULL CHECK (price_cents >= 0),
  currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  period          text NOT NULL CHECK (period IN ('month', 'year', 'days')),
  class_allowance integer CHECK (class_allowance BETWEEN 0 AND 10000),
  note            bytea,                 -- encrypted staff note
  source          text NOT NULL CHECK (source IN ('web', 'sms', 'whatsapp', 'messenger', 'instagram', 'email', 'phone', 'staff', 'api')),
  idempotency_key text UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  -- audit: token `sub` of the staff member, or `agent`, who created / last changed it
  created_by      text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 255),
  updated_by      text NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 255),
  activated_at    timestamptz,
  frozen_at       timestamptz,
  cancelled_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (ends_at IS NULL OR ends_at > starts_at),
  CHECK ((status = 'frozen') = (frozen_at IS NOT NULL)),
  CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
  CHECK (status = 'pending' OR status = 'cancelled' OR activated_at IS NOT NULL),
  CHECK (period <> 'days' OR ends_at IS NOT NULL),
  -- One live membership per customer at a time (btree_gist from 0001 for `uuid WITH =`).
  CONSTRAINT memberships_no_overlap EXCLUDE USING gist (
    customer_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&
  ) WHERE (status <> 'cancelled')
);
CREATE INDEX memberships_customer_idx ON memberships (customer_id, starts_at DESC);
CREATE INDEX memberships_plan_idx ON memberships (plan_id);
CREATE INDEX memberships_list_idx ON memberships (created_at DESC, id DESC);
