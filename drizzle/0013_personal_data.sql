-- Personal data by data subject, erasable (see the functions below and docs/erasure.md).
CREATE TABLE "erasures" (
	"subject" text PRIMARY KEY NOT NULL,
	"erased_by" text NOT NULL,
	"erased_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "subject_keys" (
	"subject" text PRIMARY KEY NOT NULL,
	"key" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "eventcore_subject_keys_key_length" CHECK (octet_length("subject_keys"."key") = 32)
);

--> statement-breakpoint
-- Personal data (see src/PersonalData.ts): events hold a data subject's
-- personal fields only as AES-256-GCM ciphertext under the subject's own key,
-- a row of `subject_keys`. Erasing the subject deletes that row: the log stays
-- append-only, and every copy of the ciphertext (standbys, backups of the
-- events) becomes unreadable with it. SQLSTATE raised here:
--   EC004  the subject was erased: no key is made for it again
--
-- A subject's key and its erasure are serialised by one advisory lock per
-- subject, in a key space of its own per schema: a key made while the subject
-- is being erased is either deleted by the erasure or refused after it, never
-- left behind.
CREATE FUNCTION refuse_key_of_erased_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- The lock erase_subject takes (the same key: keep the two in step).
  PERFORM pg_advisory_xact_lock(hashtext('eventcore.subject:' || current_schema()), hashtext(NEW.subject));
  -- A statement of its own after the lock: it sees an erasure committed while
  -- this insert waited for the lock.
  IF EXISTS (SELECT 1 FROM erasures e WHERE e.subject = NEW.subject) THEN
    RAISE EXCEPTION 'eventcore: subject % was erased: its personal data cannot be written again', quote_literal(NEW.subject)
      USING ERRCODE = 'EC004',
            DETAIL = json_build_object('subject', NEW.subject)::text;
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER eventcore_subject_keys_not_erased
BEFORE INSERT ON subject_keys
FOR EACH ROW EXECUTE FUNCTION refuse_key_of_erased_subject();
--> statement-breakpoint
-- The keys of the subjects in `candidates` ({subject: a new key in base64}):
-- each subject's existing key, or the candidate, stored as its key when it had
-- none; EC004 for an erased subject. One round trip before an append that
-- writes personal data. Runs as its caller, who needs SELECT and INSERT on
-- subject_keys (granted below with the append).
CREATE FUNCTION subject_keys_for(candidates jsonb) RETURNS TABLE (subject text, key text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO subject_keys AS k (subject, key)
  SELECT c.key, decode(c.value, 'base64') FROM jsonb_each_text(candidates) AS c
  WHERE NOT EXISTS (SELECT 1 FROM subject_keys s WHERE s.subject = c.key)
  ORDER BY c.key COLLATE "C"
  ON CONFLICT DO NOTHING;
  -- A new statement: it sees a key another append stored while this one waited on it.
  RETURN QUERY
    SELECT s.subject, encode(s.key, 'base64') FROM subject_keys s
    WHERE s.subject IN (SELECT jsonb_object_keys(candidates));
END
$$;
--> statement-breakpoint
-- Erases a subject: deletes its key, records who erased it and when (no
-- personal data: the subject's id and the name the caller gives), removes
-- every snapshot (a cache whose states may hold the subject's fields in the
-- clear; commands fold their events again), and appends `SubjectErased`
-- ({"subject": ...}) to the stream `eventcore-erasures`, where projections and
-- reactors see it in the global log and can erase what they derived.
-- Erasing a subject again changes nothing and appends nothing. Runs as the
-- owner; EXECUTE is the owner's alone unless granted (docs/erasure.md).
CREATE FUNCTION erase_subject(subject_id text, erased_by text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  keys_removed integer;
  snapshots_removed integer;
  reply jsonb;
BEGIN
  IF subject_id IS NULL OR length(subject_id) = 0 OR erased_by IS NULL OR length(erased_by) = 0 THEN
    RAISE EXCEPTION 'eventcore: erase_subject needs a subject and who erases it' USING ERRCODE = '22023';
  END IF;
  -- The lock a new key's trigger takes (the same key: keep the two in step).
  PERFORM pg_advisory_xact_lock(hashtext('eventcore.subject:' || current_schema()), hashtext(subject_id));
  INSERT INTO erasures AS r (subject, erased_by) VALUES (subject_id, erase_subject.erased_by) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    SELECT jsonb_build_object('erased', false, 'erasedBy', r.erased_by,
                              'erasedAt', floor(extract(epoch FROM r.erased_at) * 1000))
    INTO reply FROM erasures r WHERE r.subject = subject_id;
    RETURN reply;
  END IF;
  DELETE FROM subject_keys k WHERE k.subject = subject_id;
  GET DIAGNOSTICS keys_removed = ROW_COUNT;
  DELETE FROM snapshots;
  GET DIAGNOSTICS snapshots_removed = ROW_COUNT;
  reply := append(jsonb_build_object(
    'streams', jsonb_build_array(jsonb_build_object('id', 'eventcore-erasures', 'expected', 'any')),
    'events', jsonb_build_array(jsonb_build_object(
      'id', gen_random_uuid(), 'stream', 'eventcore-erasures', 'type', 'SubjectErased',
      'data', jsonb_build_object('subject', subject_id)))));
  RETURN jsonb_build_object('erased', true, 'keyRemoved', keys_removed > 0, 'snapshotsRemoved', snapshots_removed,
                            'position', reply->'positions'->0, 'transaction', reply->'transaction',
                            'erasedAt', floor(extract(epoch FROM now()) * 1000));
END
$$;
--> statement-breakpoint
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION erase_subject(text, text) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  -- These two run as their caller, with the schema fixed as their search path
  -- (a caller's own tables named like ours are never reached).
  EXECUTE format('ALTER FUNCTION subject_keys_for(jsonb) SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION refuse_key_of_erased_subject() SET search_path = %I, pg_temp', current_schema());
END
$$;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION erase_subject(text, text) FROM PUBLIC;
--> statement-breakpoint
-- An application role that appends writes personal data too: every role (PUBLIC
-- included) granted EXECUTE on the append gets what making and reading keys
-- takes, so a role set up before this migration keeps running its commands.
-- Deleting a key (erasure) stays the owner's.
DO $$
DECLARE
  grantee record;
BEGIN
  FOR grantee IN
    SELECT DISTINCT a.grantee AS oid
    FROM pg_proc p, aclexplode(p.proacl) a
    WHERE p.oid = 'append(jsonb)'::regprocedure AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
  LOOP
    IF grantee.oid = 0 THEN
      GRANT SELECT, INSERT ON subject_keys TO PUBLIC;
      GRANT SELECT ON erasures TO PUBLIC;
    ELSE
      EXECUTE format('GRANT SELECT, INSERT ON subject_keys TO %s', grantee.oid::regrole);
      EXECUTE format('GRANT SELECT ON erasures TO %s', grantee.oid::regrole);
    END IF;
  END LOOP;
END
$$;
