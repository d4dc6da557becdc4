-- Appends to one stream take a path of their own, and streams stay gap-free
-- by the append alone (issue 28).
--
-- The foreign key from each event's previous_version to the events' own
-- (stream_id, stream_version) goes, with the generated column it needed.
-- Measured with bench/profile/append-sql.sh (pgbench calling the append on
-- the server alone, synchronous_commit off, 2 cores, 2 runs each): appends of
-- ten events ran 1.19-1.24x faster without it (W3, one stream; one event: no
-- change). What keeps versions gap-free is the append itself, the only
-- writer the roles allow since 0008 (INSERT on events is refused to every
-- role but the owner): under the stream's lock it reads the version and
-- numbers the events on from it; the unique (stream_id, stream_version) index
-- still refuses a version taken twice, and a check versions below 1. A raw
-- INSERT by the owner is no longer checked for gaps; the owner could drop any
-- constraint anyway.
--
-- Dropping a column rewrites nothing (the catalog marks it dropped); dropping
-- the constraint takes the table's exclusive lock for a moment.
-- Unqualified: the migrator applies this in the store's schema.
ALTER TABLE "events" DROP CONSTRAINT "eventcore_events_previous_version";
--> statement-breakpoint
ALTER TABLE "events" DROP COLUMN "previous_version";
--> statement-breakpoint
-- Whether a stream at version `actual` satisfies an expected version: a number, or "any",
-- "no_stream", "stream_exists". SQL, so that the append's expressions inline it.
CREATE OR REPLACE FUNCTION expected_version_holds(expected jsonb, actual bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE expected
    WHEN '"any"' THEN true
    WHEN '"no_stream"' THEN actual = 0
    WHEN '"stream_exists"' THEN actual > 0
    ELSE actual = expected::bigint
  END
$$;
--> statement-breakpoint
-- A participant not at its expected version: the reply's conflict when the
-- request asks for conflicts in the reply, else the exception (SQLSTATE EC001)
-- with the same facts as its DETAIL.
CREATE OR REPLACE FUNCTION version_conflict(request jsonb, stream_id text, expected jsonb, actual bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  IF request->>'conflict' = 'reply' THEN
    RETURN jsonb_build_object('conflict', jsonb_build_object('stream_id', stream_id, 'expected', expected, 'actual', actual));
  END IF;
  RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %', quote_literal(stream_id), expected, actual
    USING ERRCODE = 'EC001',
          DETAIL = json_build_object('stream_id', stream_id, 'expected', expected, 'actual', actual)::text;
END
$$;
--> statement-breakpoint
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
  -- The one-stream path's
  stream text;
  expected jsonb;
BEGIN
  -- One participant, the common case: one lock, one version read, and the
  -- events numbered on from it, without the general path's join over the
  -- request and its object of versions (bench/profile/append-sql.sh: W1 1.3-1.45x
  -- the general path's calls per second on the server, W3 1.13-1.15x).
  IF jsonb_array_length(request->'streams') = 1 THEN
    stream := request->'streams'->0->>'id';
    expected := request->'streams'->0->'expected';
    event_count := jsonb_array_length(request->'events');
    IF event_count = 0 THEN
      PERFORM pg_advisory_xact_lock_shared(lock_space, hashtext(stream));
    ELSE
      PERFORM pg_advisory_xact_lock(lock_space, hashtext(stream));
    END IF;
    SELECT coalesce(max(e.stream_version), 0) INTO current_version FROM events e WHERE e.stream_id = stream;
    IF NOT expected_version_holds(expected, current_version) THEN
      RETURN version_conflict(request, stream, expected, current_version);
    END IF;
    WITH inserted AS (
      INSERT INTO events (event_id, stream_id, stream_version, event_type, data, metadata, schema_version)
      SELECT (e.value->>'id')::uuid, stream, current_version + e.ord, e.value->>'type', e.value->'data',
             coalesce(e.value->'metadata', '{}'::jsonb), coalesce((e.value->>'version')::integer, 1)
      FROM jsonb_array_elements(request->'events') WITH ORDINALITY AS e(value, ord)
      WHERE e.value->>'stream' = stream
      ORDER BY e.ord
      RETURNING global_position
    )
    SELECT coalesce(jsonb_agg(global_position::text ORDER BY global_position), '[]'::jsonb)
    INTO positions FROM inserted;
    IF jsonb_array_length(positions) <> event_count THEN
      RAISE EXCEPTION 'eventcore: an event names a stream that is not a participant of the append'
        USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object(
      'versions', jsonb_build_array(current_version + event_count),
      'positions', positions,
      'transaction', CASE WHEN event_count > 0 THEN pg_current_xact_id()::text END,
      'recordedAt', floor(extract(epoch FROM now()) * 1000));
  END IF;

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

    IF NOT expected_version_holds(participant.expected, current_version) THEN
      RETURN version_conflict(request, participant.stream_id, participant.expected, current_version);
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
--> statement-breakpoint
-- The append calls them as the owner: no one else needs to.
REVOKE EXECUTE ON FUNCTION expected_version_holds(jsonb, bigint) FROM PUBLIC;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION version_conflict(jsonb, text, jsonb, bigint) FROM PUBLIC;
