-- Tenant schema v8: group classes take up to `capacity` bookings per occurrence (issue #7 / #4).
--
-- Until now `bookings_no_overlap` allowed ONE live booking per resource and time, so a Yoga class
-- of capacity 12 in one studio took one member and refused the second. The rules now:
--
--  * Two live bookings may overlap on a resource only when they are the SAME CLASS OCCURRENCE:
--    the same class service at the same start. Each booking carries `occurrence`: for a class,
--    an id derived from (service, start); for anything else (appointments, trainer sessions of
--    kind `personal_training`, hotel rooms) its own id. `bookings_no_overlap` becomes
--    (resource =, occurrence <>, during &&) — so everything but a class keeps one live booking
--    per resource and time, and a studio never holds two DIFFERENT things at overlapping times
--    (another class, another start of the same class, a trainer session).
--  * A class occurrence on a resource takes up to `services.capacity` live bookings: the
--    `bookings_before_write` trigger refuses one more (SQLSTATE 23514, constraint name
--    `bookings_class_capacity`). It counts under a transaction-scoped advisory lock per
--    occurrence (`class_occurrence_lock_key`); the application takes the same lock before it
--    chooses a studio and counts, so its answers are exact, and the trigger is the backstop for
--    every writer. Counting under the lock is correct at READ COMMITTED (the tenant
--    transactions' level): the lock is released only at COMMIT, and the count after acquiring
--    it takes a fresh snapshot, which includes every booking committed by the previous holder.
--    (An advisory lock because an occurrence has no row of its own to lock; a counter row would
--    be one more thing to keep in step with every cancel and reschedule.)
--  * A customer holds at most one place in an occurrence (`bookings_class_once_per_customer`).
--
-- `bookings.service_kind` copies the service's kind onto the row, filled by the trigger on every
-- write and kept right by a composite foreign key (`ON UPDATE CASCADE`, so even a hand-made
-- change of a service's kind re-derives `occurrence` and re-checks its bookings). `occurrence`
-- is a stored generated column, so no writer can set it wrong.
-- btree_gist (0001) provides `uuid WITH =` and `uuid WITH <>` in GiST.
-- https://www.postgresql.org/docs/15/btree-gist.html

ALTER TABLE services ADD CONSTRAINT services_id_kind_key UNIQUE (id, kind);

ALTER TABLE bookings ADD COLUMN service_kind text;
UPDATE bookings b SET service_kind = s.kind FROM services s WHERE s.id = b.service_id;
ALTER TABLE bookings ALTER COLUMN service_kind SET NOT NULL;
ALTER TABLE bookings ADD CONSTRAINT bookings_service_kind_fkey
  FOREIGN KEY (service_id, service_kind) REFERENCES services (id, kind) ON UPDATE CASCADE;

-- The id of a class occurrence: (service, start). The start goes in as seconds since the epoch
-- (an interval's epoch, so truly IMMUTABLE: unlike the text of a timestamptz it doesn't depend
-- on the session's TimeZone).
CREATE FUNCTION class_occurrence_id(service_id uuid, start_at timestamptz) RETURNS uuid
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN md5('simptu.class-occurrence:' || service_id::text || '@'
             || extract(epoch FROM start_at - timestamptz '1970-01-01 00:00:00+00')::text)::uuid;

-- The advisory lock key of a class occurrence (all its studios). Service ids are random UUIDs,
-- so keys of tenants sharing a database practically never meet (and a hash collision only
-- makes two occurrences wait for each other, never wrong).
CREATE FUNCTION class_occurrence_lock_key(service_id uuid, start_at timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN hashtextextended(class_occurrence_id(service_id, start_at)::text, 0);

ALTER TABLE bookings ADD COLUMN occurrence uuid NOT NULL GENERATED ALWAYS AS (
  CASE WHEN service_kind = 'class' THEN class_occurrence_id(service_id, lower(during)) ELSE id END
) STORED;

CREATE FUNCTION bookings_before_write() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  cap   integer;
  taken integer;
BEGIN
  SELECT s.kind, s.capacity INTO NEW.service_kind, cap FROM services s WHERE s.id = NEW.service_id;
  IF NEW.status = 'booked' AND NEW.service_kind = 'class' AND (
       TG_OP = 'INSERT' OR OLD.status <> 'booked' OR OLD.service_id <> NEW.service_id
       OR OLD.resource_id <> NEW.resource_id OR lower(OLD.during) <> lower(NEW.during)) THEN
    PERFORM pg_advisory_xact_lock(class_occurrence_lock_key(NEW.service_id, lower(NEW.during)));
    SELECT count(*) INTO taken FROM bookings b
     WHERE b.resource_id = NEW.resource_id
       AND b.occurrence = class_occurrence_id(NEW.service_id, lower(NEW.during))
       AND b.status = 'booked' AND b.id <> NEW.id;
    IF taken >= cap THEN
      RAISE EXCEPTION 'class occurrence is full (% of % places taken)', taken, cap
        USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_class_capacity', TABLE = 'bookings';
    END IF;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER bookings_before_write BEFORE INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_before_write();

ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap
  EXCLUDE USING gist (resource_id WITH =, occurrence WITH <>, during WITH &&) WHERE (status = 'booked');

CREATE UNIQUE INDEX bookings_class_once_per_customer ON bookings (customer_id, occurrence)
  WHERE status = 'booked' AND service_kind = 'class';
