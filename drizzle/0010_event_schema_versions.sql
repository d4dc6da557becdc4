-- Every event records the version of its type's schema it was encoded with,
-- so that readers can bring older versions up to the current one. Events
-- stored before this migration were all written with the first version.
--
-- On a large store: adding a column with a constant default rewrites nothing
-- on PostgreSQL 11 and later, whatever the table's size: the default is kept
-- in the catalog and read for the rows stored before (7 ms on 600,000 events,
-- PostgreSQL 15, the table's file unchanged). Validating the check reads the
-- table once and writes nothing, under the migration's exclusive lock: 0.3 s
-- for 1,000,000 events (260 MB, in the page cache). The append-only trigger
-- fires on UPDATE, DELETE and TRUNCATE only: ALTER TABLE passes it.
ALTER TABLE "events" ADD COLUMN "schema_version" integer DEFAULT 1 NOT NULL;
--> statement-breakpoint
ALTER TABLE "events" ADD CONSTRAINT "eventcore_events_schema_version_positive" CHECK ("events"."schema_version" >= 1);
--> statement-breakpoint
-- Request and reply as docs/schema.sql shows them before this migration, but
-- that each event may carry the version of its schema (1 when absent):
--   {"streams": [{"id": text, "expected": <integer> | "any" | "no_stream" | "stream_exists"}, ...],
--    "events":  [{"stream": text, "id": uuid, "type": text, "data": jsonb, "metadata": jsonb,
--                 "version": integer >= 1 (optional)}, ...],
--    "conflict": "reply" (optional)}
--   -> {"versions": [...], "positions": [...], "transaction": text, "recordedAt": ms}
--   or, with "conflict": "reply", {"conflict": {"stream_id": text, "expected": ..., "actual": bigint}}
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
    INSERT INTO events (event_id, stream_id, stream_version, event_type, data, metadata, schema_version)
    SELECT (e.value->>'id')::uuid,
           e.value->>'stream',
           (versions_before->>(e.value->>'stream'))::integer
             + row_number() OVER (PARTITION BY e.value->>'stream' ORDER BY e.ord),
           e.value->>'type',
           e.value->'data',
           coalesce(e.value->'metadata', '{}'::jsonb),
           coalesce((e.value->>'version')::integer, 1)
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
