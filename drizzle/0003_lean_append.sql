-- A leaner append, same request, reply, errors and guarantees as 0001's.
--
-- Measured on 0001's version (bench/profile/trigger-plan.ts, bench/results):
-- its set-wise joins of the request to eventcore_streams and eventcore_events
-- were planned per connection and cached by plpgsql. Planned while the tables
-- were small, they stayed hash joins and hashed subplans over sequential scans
-- of whole tables, so appends slowed down as the store grew (6 ms per append at
-- 27,000 events), and on a hot stream every writer held the stream's lock for
-- that long. Each stream row was also written twice per append (a locking
-- INSERT, then the trigger's UPDATE).
--
-- Here every lookup is by primary key or by the (stream_id, stream_version)
-- index, one participant at a time, whatever the statistics; a written
-- stream's row is locked, checked and advanced by one statement; and the
-- trigger only verifies streams that eventcore_append already advanced.

-- After every INSERT into the events table, whoever ran it: each stream's new
-- events must continue it without a gap, and its row in eventcore_streams must
-- end at the last of them. eventcore_append has already moved the rows of its
-- streams; for any other insert (a raw one) the row is moved here, from the
-- version before the new events. That UPDATE waits for a concurrent writer's
-- row lock and re-checks the old version afterwards, so two writers of the same
-- versions cannot both commit.
CREATE OR REPLACE FUNCTION eventcore_advance_streams() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  batch record;
BEGIN
  -- Scalar subqueries: index probes whatever the statistics (an EXISTS here
  -- could be planned as a hash over every event and cached so).
  FOR batch IN
    SELECT b.stream_id, b.first, b.last,
           b.last - b.first + 1 = b.n
             AND (b.first = 1 OR (SELECT e.stream_version FROM eventcore_events e
                                  WHERE e.stream_id = b.stream_id AND e.stream_version = b.first - 1) IS NOT NULL)
             AS continues,
           (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = b.stream_id) AS current_version
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
              HINT = 'Append through eventcore_append(), which assigns versions.';
    END IF;
    -- Already there: eventcore_append advanced it, holding its lock (a row at
    -- `last` not written by this transaction would have made the INSERT fail
    -- on the unique index, since its events exist).
    CONTINUE WHEN batch.current_version = batch.last;

    IF batch.current_version IS NULL AND batch.first = 1 THEN
      INSERT INTO eventcore_streams (stream_id, version) VALUES (batch.stream_id, batch.last)
      ON CONFLICT (stream_id) DO NOTHING;
    ELSE
      UPDATE eventcore_streams SET version = batch.last
      WHERE stream_id = batch.stream_id AND version = batch.first - 1;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'eventcore: inserted events do not continue their stream''s current version'
        USING ERRCODE = 'EC003',
              HINT = 'Append through eventcore_append(), which locks the streams and assigns versions.';
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- One atomic append, one round trip; the request and reply are 0001's:
--   {"streams": [{"id": text, "expected": <integer> | "any" | "no_stream" | "stream_exists"}, ...],
--    "events":  [{"stream": text, "id": uuid, "type": text, "data": jsonb, "metadata": jsonb}, ...]}
--   -> {"versions": [...], "positions": [...], "recordedAt": ms}
CREATE OR REPLACE FUNCTION eventcore_append(request jsonb) RETURNS jsonb
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
      SELECT s.version INTO before_version FROM eventcore_streams s
      WHERE s.stream_id = participant.stream_id FOR SHARE;
      IF NOT FOUND THEN
        -- A row at version 0 (a stream locked but never written) gives a
        -- missing stream something to lock: a writer creating it must wait.
        INSERT INTO eventcore_streams (stream_id, version) VALUES (participant.stream_id, 0)
        ON CONFLICT (stream_id) DO NOTHING;
        SELECT s.version INTO before_version FROM eventcore_streams s
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
      INSERT INTO eventcore_streams AS s (stream_id, version) VALUES (participant.stream_id, participant.n)
      ON CONFLICT (stream_id) DO UPDATE SET version = participant.n WHERE s.version = 0
      RETURNING 0 INTO before_version;
    ELSIF jsonb_typeof(participant.expected) = 'number' THEN
      -- Waits for a concurrent writer's lock, then re-checks the version it committed.
      UPDATE eventcore_streams SET version = version + participant.n
      WHERE stream_id = participant.stream_id AND version = (participant.expected)::bigint
      RETURNING version - participant.n INTO before_version;
    ELSE
      INSERT INTO eventcore_streams AS s (stream_id, version) VALUES (participant.stream_id, participant.n)
      ON CONFLICT (stream_id) DO UPDATE SET version = s.version + participant.n
      RETURNING s.version - participant.n INTO before_version;
      IF participant.expected = '"stream_exists"' AND before_version = 0 THEN
        actual := 0;
      END IF;
    END IF;

    IF before_version IS NULL AND actual IS NULL THEN
      SELECT coalesce((SELECT s.version FROM eventcore_streams s WHERE s.stream_id = participant.stream_id), 0)
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
    INSERT INTO eventcore_events (event_id, stream_id, stream_version, event_type, data, metadata)
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
-- owner with a fixed search_path again, as 0002 set them (EXECUTE grants stay).
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION eventcore_append(jsonb) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION eventcore_advance_streams() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$$;
