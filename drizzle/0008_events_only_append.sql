-- An append writes the events table and nothing else (issue #15).
--
-- Measured with pgbench (bench/profile/lean-append/, PostgreSQL 15, fsync on,
-- 2 cores): the server's side of 0007's append ran at 0.51-0.64 of a bare
-- INSERT of the same events, this one at 0.78-0.95 (1.4-1.65x). 0007 wrote
-- each written stream's row in a second table (heap, index, WAL), ran a
-- statement trigger over the inserted rows, and inserted version-0 rows for
-- read-only participants of missing streams.
--
-- Each rule, and what enforces it now:
--  * A stream's version is its last event's: read backwards along the unique
--    (stream_id, stream_version) index. Streams have no row of their own;
--    `streams` stays, as a view, for readers.
--  * Gap-free versions from 1, raw inserts included: every event's
--    previous_version (generated: stream_version - 1, none for version 1) must
--    exist, a foreign key to the events' own (stream_id, stream_version),
--    checked by PostgreSQL itself; the unique index refuses a version taken
--    twice and a check refuses versions below 1. A version can only follow one
--    that is there, so every stream is 1, 2, ..., n.
--  * Every participant's expected version holds at commit: the append takes a
--    transaction-scoped advisory lock per participant, in one order (the lock
--    key's, then the id's), exclusive for a stream it writes and shared for a
--    read-only one, before it reads the stream's version. Writers of the same
--    streams queue instead of deadlocking; readers of a stream pass each other.
--  * Nothing appends without the locks: INSERT on the events table (and USAGE
--    on its sequence) is revoked from every role but the owner, so roles append
--    through this function only (it runs with the owner's rights).
--
-- Upgrading rewrites the events table once (the generated column) and checks
-- the foreign key over it, under an exclusive lock: count on minutes for tens
-- of millions of events.
DROP TRIGGER eventcore_events_advance_streams ON events;
--> statement-breakpoint
DROP FUNCTION advance_streams();
--> statement-breakpoint
DROP TABLE "streams" CASCADE;
--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "previous_version" integer GENERATED ALWAYS AS (nullif(stream_version - 1, 0)) STORED;
--> statement-breakpoint
-- Unqualified: the migrator applies this in the store's schema (drizzle-kit wrote "public").
ALTER TABLE "events" ADD CONSTRAINT "eventcore_events_previous_version" FOREIGN KEY ("stream_id","previous_version") REFERENCES "events"("stream_id","stream_version") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
-- Every stream with its version, for readers (the command line's `streams`,
-- reports); a condition on stream_id is applied before the grouping.
CREATE VIEW streams AS
  SELECT stream_id, max(stream_version) AS version FROM events GROUP BY stream_id;
--> statement-breakpoint
-- Roles that could read the events read the view; roles (PUBLIC included) that
-- could insert events directly no longer can.
DO $$
DECLARE
  grantee record;
BEGIN
  FOR grantee IN
    SELECT DISTINCT a.grantee AS oid, a.privilege_type
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = 'events'::regclass AND a.grantee <> c.relowner AND a.privilege_type IN ('SELECT', 'INSERT')
  LOOP
    IF grantee.privilege_type = 'SELECT' THEN
      EXECUTE format('GRANT SELECT ON streams TO %s',
        CASE WHEN grantee.oid = 0 THEN 'PUBLIC' ELSE grantee.oid::regrole::text END);
    ELSE
      EXECUTE format('REVOKE INSERT ON events FROM %s',
        CASE WHEN grantee.oid = 0 THEN 'PUBLIC' ELSE grantee.oid::regrole::text END);
    END IF;
  END LOOP;
  FOR grantee IN
    SELECT DISTINCT a.grantee AS oid
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = 'eventcore_events_global_position_seq'::regclass AND a.grantee <> c.relowner
      AND a.privilege_type = 'USAGE'
  LOOP
    EXECUTE format('REVOKE USAGE ON SEQUENCE eventcore_events_global_position_seq FROM %s',
      CASE WHEN grantee.oid = 0 THEN 'PUBLIC' ELSE grantee.oid::regrole::text END);
  END LOOP;
END
$$;
--> statement-breakpoint
-- Request and reply as 0007's:
--   {"streams": [{"id": text, "expected": <integer> | "any" | "no_stream" | "stream_exists"}, ...],
--    "events":  [{"stream": text, "id": uuid, "type": text, "data": jsonb, "metadata": jsonb}, ...],
--    "conflict": "reply" (optional)}
--   -> {"versions": [...], "positions": [...], "transaction": text, "recordedAt": ms}
--   or, with "conflict": "reply", {"conflict": {"stream_id": text, "expected": ..., "actual": bigint}}
-- Every conflict is now found before anything is written, so with the flag
-- every conflict is a reply.
CREATE OR REPLACE FUNCTION append(request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  participant record;
  current_version bigint;
  -- Advisory lock keys are (this schema's space, the stream id's hash): stores
  -- in other schemas of the database, and other users of advisory locks with
  -- one bigint key, never share them.
  lock_space integer := hashtext('eventcore.append:' || current_schema());
  -- {stream id: version before this append}, and the versions after it in request order
  versions_before jsonb := '{}';
  versions_after bigint[] := '{}';
  event_count bigint;
  positions jsonb;
BEGIN
  -- Lock each participant in one order, then read its version: a new
  -- statement, so a new snapshot, which sees everything committed by whoever
  -- held the lock before. Ordered by the key first, so two ids with the same
  -- hash never make two appends take one key in opposite orders.
  FOR participant IN
    SELECT p.value->>'id' AS stream_id, p.value->'expected' AS expected, p.ord, coalesce(c.n, 0) AS n
    FROM jsonb_array_elements(request->'streams') WITH ORDINALITY AS p(value, ord)
    LEFT JOIN (
      SELECT e.value->>'stream' AS stream_id, count(*) AS n
      FROM jsonb_array_elements(request->'events') AS e(value) GROUP BY 1
    ) c ON c.stream_id = p.value->>'id'
    ORDER BY hashtext(p.value->>'id'), p.value->>'id' COLLATE "C"
  LOOP
    IF participant.n = 0 THEN
      PERFORM pg_advisory_xact_lock_shared(lock_space, hashtext(participant.stream_id));
    ELSE
      PERFORM pg_advisory_xact_lock(lock_space, hashtext(participant.stream_id));
    END IF;
    SELECT coalesce(max(e.stream_version), 0) INTO current_version
    FROM events e WHERE e.stream_id = participant.stream_id;

    IF NOT (CASE participant.expected
      WHEN '"any"' THEN true
      WHEN '"no_stream"' THEN current_version = 0
      WHEN '"stream_exists"' THEN current_version > 0
      ELSE current_version = (participant.expected)::bigint
    END) THEN
      IF request->>'conflict' = 'reply' THEN
        RETURN jsonb_build_object('conflict', jsonb_build_object(
          'stream_id', participant.stream_id, 'expected', participant.expected, 'actual', current_version));
      END IF;
      RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
          quote_literal(participant.stream_id), participant.expected, current_version
        USING ERRCODE = 'EC001',
              DETAIL = json_build_object(
                'stream_id', participant.stream_id, 'expected', participant.expected, 'actual', current_version)::text;
    END IF;
    versions_before := versions_before || jsonb_build_object(participant.stream_id, current_version);
    versions_after[participant.ord] := current_version + participant.n;
  END LOOP;

  -- All events in one statement, each stream's numbered on from its version
  -- before this append; positions follow the request's order.
  WITH inserted AS (
    INSERT INTO events (event_id, stream_id, stream_version, event_type, data, metadata)
    SELECT (e.value->>'id')::uuid,
           e.value->>'stream',
           (versions_before->>(e.value->>'stream'))::integer
             + row_number() OVER (PARTITION BY e.value->>'stream' ORDER BY e.ord),
           e.value->>'type',
           e.value->'data',
           coalesce(e.value->'metadata', '{}'::jsonb)
    FROM jsonb_array_elements(request->'events') WITH ORDINALITY AS e(value, ord)
    WHERE versions_before ? (e.value->>'stream')
    ORDER BY e.ord
    RETURNING global_position
  )
  SELECT count(*), coalesce(jsonb_agg(global_position::text ORDER BY global_position), '[]'::jsonb)
  INTO event_count, positions
  FROM inserted;
  IF event_count <> jsonb_array_length(request->'events') THEN
    RAISE EXCEPTION 'eventcore: an event names a stream that is not a participant of the append'
      USING ERRCODE = '22023';
  END IF;

  RETURN jsonb_build_object(
    'versions', to_jsonb(versions_after),
    'positions', positions,
    -- The transaction id the events' transaction_id default recorded (none
    -- when the append wrote no events: then nothing asks for one).
    'transaction', CASE WHEN event_count > 0 THEN pg_current_xact_id()::text END,
    'recordedAt', floor(extract(epoch FROM now()) * 1000));
END
$$;
--> statement-breakpoint
-- CREATE OR REPLACE resets a function's security and settings: run as the
-- owner with the schema fixed as the search path again (EXECUTE grants stay).
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION append(jsonb) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$$;
