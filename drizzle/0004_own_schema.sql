-- eventcore's tables, functions and migration history live in a schema of
-- their own (`eventcore` unless the store names another), so an application's
-- drizzle-kit, which looks at `public`, never mistakes them for its own tables
-- to rename or drop. The migrator applies every migration with that schema
-- first on the search path; a database migrated before this one had its
-- objects moved there by the migrator just before (see src/sql/migrations.ts).
-- Here they take the short names the schema allows. Renaming keeps every
-- grant, trigger, index and constraint; the check constraints are not
-- rebuilt (drizzle-kit only saw their text change with the table name).
ALTER TABLE "eventcore_events" RENAME TO "events";--> statement-breakpoint
ALTER TABLE "eventcore_streams" RENAME TO "streams";--> statement-breakpoint
ALTER FUNCTION eventcore_refuse_change() RENAME TO refuse_change;--> statement-breakpoint
ALTER FUNCTION eventcore_advance_streams() RENAME TO advance_streams;--> statement-breakpoint
ALTER FUNCTION eventcore_append(jsonb) RENAME TO append;--> statement-breakpoint
-- Refusals name the table with its schema.
CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'eventcore: % on %.% is refused: the event log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'EC002',
          HINT = 'Append a compensating event instead of changing or removing stored ones.';
END
$$;
--> statement-breakpoint
-- The bodies of 0003 with the new table names (plpgsql resolves names when it
-- runs, so the renamed functions would otherwise look for the old tables).
CREATE OR REPLACE FUNCTION advance_streams() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  batch record;
BEGIN
  -- Scalar subqueries: index probes whatever the statistics (an EXISTS here
  -- could be planned as a hash over every event and cached so).
  FOR batch IN
    SELECT b.stream_id, b.first, b.last,
           b.last - b.first + 1 = b.n
             AND (b.first = 1 OR (SELECT e.stream_version FROM events e
                                  WHERE e.stream_id = b.stream_id AND e.stream_version = b.first - 1) IS NOT NULL)
             AS continues,
           (SELECT s.version FROM streams s WHERE s.stream_id = b.stream_id) AS current_version
    FROM (
      SELECT stream_id, min(stream_version) AS first, max(stream_version) AS last, count(*) AS n
      FROM inserted GROUP BY stream_id
    ) b
  LOOP
    IF NOT batch.continues THEN
      RAISE EXCEPTION 'eventcore: versions % to % of stream % do not continue it without a gap',
          batch.first, batch.last, quote_literal(batch.stream_id)
        USING ERRCODE = 'EC003',
              DETAIL = json_build_object('stream_id', batch.stream_id, 'first', batch.first, 'last', batch.last)::text,
              HINT = 'Append through this schema''s append(), which assigns versions.';
    END IF;
    -- Already there: append advanced it, holding its lock (a row at
    -- `last` not written by this transaction would have made the INSERT fail
    -- on the unique index, since its events exist).
    CONTINUE WHEN batch.current_version = batch.last;

    IF batch.current_version IS NULL AND batch.first = 1 THEN
      INSERT INTO streams (stream_id, version) VALUES (batch.stream_id, batch.last)
      ON CONFLICT (stream_id) DO NOTHING;
    ELSE
      UPDATE streams SET version = batch.last
      WHERE stream_id = batch.stream_id AND version = batch.first - 1;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'eventcore: inserted events do not continue their stream''s current version'
        USING ERRCODE = 'EC003',
              HINT = 'Append through this schema''s append(), which locks the streams and assigns versions.';
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- One atomic append, one round trip; the request and reply are 0003's:
--   {"streams": [{"id": text, "expected": <integer> | "any" | "no_stream" | "stream_exists"}, ...],
--    "events":  [{"stream": text, "id": uuid, "type": text, "data": jsonb, "metadata": jsonb}, ...]}
--   -> {"versions": [...], "positions": [...], "recordedAt": ms}
CREATE OR REPLACE FUNCTION append(request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  participant record;
  before_version bigint;
  actual bigint;
  -- {stream id: version before this append}, and the versions after it in request order
  versions_before jsonb := '{}';
  versions_after bigint[] := '{}';
  event_count bigint;
  positions jsonb;
BEGIN
  -- Lock every participant's row in one fixed order (the ids' byte order), so
  -- writers that share streams queue instead of deadlocking, and check it
  -- against its latest committed version. A written stream's row is advanced
  -- in the same statement; a read-only participant's is share-locked, so its
  -- checked version holds until commit while other readers pass.
  FOR participant IN
    SELECT p.value->>'id' AS stream_id, p.value->'expected' AS expected, p.ord, coalesce(c.n, 0) AS n
    FROM jsonb_array_elements(request->'streams') WITH ORDINALITY AS p(value, ord)
    LEFT JOIN (
      SELECT e.value->>'stream' AS stream_id, count(*) AS n
      FROM jsonb_array_elements(request->'events') AS e(value) GROUP BY 1
    ) c ON c.stream_id = p.value->>'id'
    ORDER BY p.value->>'id' COLLATE "C"
  LOOP
    before_version := NULL;
    actual := NULL;
    IF participant.n = 0 THEN
      SELECT s.version INTO before_version FROM streams s
      WHERE s.stream_id = participant.stream_id FOR SHARE;
      IF NOT FOUND THEN
        -- A row at version 0 (a stream locked but never written) gives a
        -- missing stream something to lock: a writer creating it must wait.
        INSERT INTO streams (stream_id, version) VALUES (participant.stream_id, 0)
        ON CONFLICT (stream_id) DO NOTHING;
        SELECT s.version INTO before_version FROM streams s
        WHERE s.stream_id = participant.stream_id FOR SHARE;
      END IF;
      IF NOT (CASE participant.expected
        WHEN '"any"' THEN true
        WHEN '"no_stream"' THEN before_version = 0
        WHEN '"stream_exists"' THEN before_version > 0
        ELSE before_version = (participant.expected)::bigint
      END) THEN
        actual := before_version;
      END IF;
    ELSIF participant.expected IN ('"no_stream"', '0') THEN
      INSERT INTO streams AS s (stream_id, version) VALUES (participant.stream_id, participant.n)
      ON CONFLICT (stream_id) DO UPDATE SET version = participant.n WHERE s.version = 0
      RETURNING 0 INTO before_version;
    ELSIF jsonb_typeof(participant.expected) = 'number' THEN
      -- Waits for a concurrent writer's lock, then re-checks the version it committed.
      UPDATE streams SET version = version + participant.n
      WHERE stream_id = participant.stream_id AND version = (participant.expected)::bigint
      RETURNING version - participant.n INTO before_version;
    ELSE
      INSERT INTO streams AS s (stream_id, version) VALUES (participant.stream_id, participant.n)
      ON CONFLICT (stream_id) DO UPDATE SET version = s.version + participant.n
      RETURNING s.version - participant.n INTO before_version;
      IF participant.expected = '"stream_exists"' AND before_version = 0 THEN
        actual := 0;
      END IF;
    END IF;

    IF before_version IS NULL AND actual IS NULL THEN
      SELECT coalesce((SELECT s.version FROM streams s WHERE s.stream_id = participant.stream_id), 0)
      INTO actual;
    END IF;
    IF actual IS NOT NULL THEN
      RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
          quote_literal(participant.stream_id), participant.expected, actual
        USING ERRCODE = 'EC001',
              DETAIL = json_build_object(
                'stream_id', participant.stream_id, 'expected', participant.expected, 'actual', actual)::text;
    END IF;
    versions_before := versions_before || jsonb_build_object(participant.stream_id, before_version);
    versions_after[participant.ord] := before_version + participant.n;
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
    'recordedAt', floor(extract(epoch FROM now()) * 1000));
END
$$;
--> statement-breakpoint
-- CREATE OR REPLACE resets a function's security and settings: run as the
-- owner with the schema fixed as the search path again (EXECUTE grants stay).
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION append(jsonb) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION advance_streams() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$$;
