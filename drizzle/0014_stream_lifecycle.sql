-- The life of a stream after its last append: archive, truncate, purge (see below).
CREATE TABLE "stream_states" (
	"stream_id" text PRIMARY KEY NOT NULL,
	"archived_at" timestamp with time zone,
	"truncated_before" bigint DEFAULT 1 NOT NULL,
	CONSTRAINT "eventcore_stream_states_truncated_before" CHECK ("stream_states"."truncated_before" >= 1)
);

--> statement-breakpoint
-- The life of a stream after its last append (docs/erasure.md): archived
-- streams are no longer read or appended to (their events stay in the global
-- log, the history every projection was built from); truncated streams are
-- read from a version on, and purge_truncated removes the events before it.
-- SQLSTATEs raised here:
--   EC005  the stream is archived (DETAIL: {"stream_id"})
--   EC006  not a stream, or not a version of it, to archive or truncate
--
-- An archived participant: the reply's refusal when the request asks for
-- conflicts in the reply, else the exception, with the same facts.
CREATE FUNCTION stream_archived(request jsonb, stream_id text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  IF request->>'conflict' = 'reply' THEN
    RETURN jsonb_build_object('archived', jsonb_build_object('stream_id', stream_id));
  END IF;
  RAISE EXCEPTION 'eventcore: stream % is archived: nothing more is appended to it', quote_literal(stream_id)
    USING ERRCODE = 'EC005',
          DETAIL = json_build_object('stream_id', stream_id)::text;
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
    -- Under the lock archive_stream takes too: an append either commits before
    -- the archive or sees it.
    IF EXISTS (SELECT 1 FROM stream_states s WHERE s.stream_id = stream AND s.archived_at IS NOT NULL) THEN
      RETURN stream_archived(request, stream);
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
    IF EXISTS (SELECT 1 FROM stream_states s WHERE s.stream_id = participant.stream_id AND s.archived_at IS NOT NULL) THEN
      RETURN stream_archived(request, participant.stream_id);
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
-- Archives a stream: from now on reads and appends of it are refused. It
-- takes the stream's append lock, so an append running now either commits
-- first or sees the archive. Archiving again changes nothing.
CREATE FUNCTION archive_stream(stream text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  current_version bigint;
  archived timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('eventcore.append:' || current_schema()), hashtext(stream));
  SELECT coalesce(max(e.stream_version), 0) INTO current_version FROM events e WHERE e.stream_id = stream;
  IF current_version = 0 THEN
    RAISE EXCEPTION 'eventcore: stream % has no events to archive', quote_literal(stream)
      USING ERRCODE = 'EC006', DETAIL = json_build_object('stream_id', stream, 'version', 0)::text;
  END IF;
  INSERT INTO stream_states AS s (stream_id, archived_at) VALUES (stream, now())
  ON CONFLICT (stream_id) DO UPDATE SET archived_at = coalesce(s.archived_at, excluded.archived_at)
  RETURNING s.archived_at INTO archived;
  RETURN jsonb_build_object('version', current_version, 'archivedAt', floor(extract(epoch FROM archived) * 1000),
                            'already', archived < now());
END
$$;
--> statement-breakpoint
-- Truncates a stream before a version: reads of it start there (commands fold
-- from there), its version stays what it is, and its last event is always kept (`before` is at most
-- the stream's version: a stream never goes back to version 0). A point
-- never moves back: truncating before an earlier version changes nothing.
CREATE FUNCTION truncate_stream(stream text, before bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  current_version bigint;
  truncated bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('eventcore.append:' || current_schema()), hashtext(stream));
  SELECT coalesce(max(e.stream_version), 0) INTO current_version FROM events e WHERE e.stream_id = stream;
  IF before IS NULL OR before < 1 OR before > current_version THEN
    RAISE EXCEPTION 'eventcore: cannot truncate stream % before version % (its version is %: truncate before 1 to %)',
      quote_literal(stream), before, current_version, current_version
      USING ERRCODE = 'EC006', DETAIL = json_build_object('stream_id', stream, 'version', current_version)::text;
  END IF;
  INSERT INTO stream_states AS s (stream_id, truncated_before) VALUES (stream, before)
  ON CONFLICT (stream_id) DO UPDATE SET truncated_before = greatest(s.truncated_before, excluded.truncated_before)
  RETURNING s.truncated_before INTO truncated;
  -- A snapshot covering the stream folded the events now hidden: commands
  -- fold from the truncation point instead, as they would without it.
  DELETE FROM snapshots n WHERE n.streams @> jsonb_build_array(jsonb_build_array(stream));
  RETURN jsonb_build_object('version', current_version, 'truncatedBefore', truncated);
END
$$;
--> statement-breakpoint
-- Removes the events truncation hid, for good; how many. The one way past
-- the append-only rule: refuse_change lets a DELETE through while
-- eventcore.purging is 'on', which this function turns on with SET LOCAL
-- (set_config(..., true)) for its DELETE alone and off again after it; if
-- the DELETE fails, the transaction's end (or its savepoint's) undoes the
-- setting with it. Nothing is set for the session, so a pooled connection
-- keeps no bypass. (A SET clause on the function would scope it more neatly,
-- but PostgreSQL lets only superusers attach an unregistered setting such as
-- this one to a function.) The setting only matters to a role with DELETE on
-- the events, which is the owner's alone.
CREATE FUNCTION purge_truncated() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  removed bigint;
BEGIN
  PERFORM set_config('eventcore.purging', 'on', true);
  DELETE FROM events e USING stream_states s
  WHERE e.stream_id = s.stream_id AND e.stream_version < s.truncated_before;
  GET DIAGNOSTICS removed = ROW_COUNT;
  PERFORM set_config('eventcore.purging', '', true);
  RETURN removed;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('eventcore.purging', true) = 'on' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'eventcore: % on %.% is refused: the event log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'EC002',
          HINT = 'Append a compensating event instead of changing or removing stored ones.';
END
$$;
--> statement-breakpoint
-- CREATE OR REPLACE resets a function's security and settings: the append
-- runs as the owner with the schema fixed as the search path again (EXECUTE
-- grants stay); so do the three maintenance functions, which only the owner
-- may call unless it grants them (docs/erasure.md).
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION append(jsonb) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION archive_stream(text) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION truncate_stream(text, bigint) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION purge_truncated() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$$;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION stream_archived(jsonb, text) FROM PUBLIC;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION archive_stream(text) FROM PUBLIC;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION truncate_stream(text, bigint) FROM PUBLIC;
--> statement-breakpoint
REVOKE EXECUTE ON FUNCTION purge_truncated() FROM PUBLIC;
--> statement-breakpoint
-- Every read of a stream reads its state: whoever may use eventcore's schema
-- may read stream_states (ids, times and versions, nothing of the events'),
-- so every role that reads streams keeps reading them without a new grant. A
-- role without USAGE on the schema still reaches none of it.
GRANT SELECT ON stream_states TO PUBLIC;
