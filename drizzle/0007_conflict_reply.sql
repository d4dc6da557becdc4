-- A version conflict found before the append has written anything (the usual
-- case: a single stream, or the first participants in the ids' order) can
-- come back in the reply instead of as an error, when the request asks for it
-- with "conflict": "reply". On a hot stream most attempts conflict, and each
-- error costs the server an aborted statement and four lines of its log
-- (ERROR, DETAIL, CONTEXT, STATEMENT), and the client an error path.
-- A conflict found after a participant's row was written still raises, so that
-- the write is rolled back; a request without the flag (raw SQL written for
-- 0005) gets the error as before.
--   {"streams": [...], "events": [...], "conflict": "reply"}
--   -> {"conflict": {"stream_id": text, "expected": <as requested>, "actual": bigint}}
-- Nothing of the append is then committed but the version-0 rows of streams it
-- found missing, as a read-only participant leaves them anyway.
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
  -- Whether a participant's row has been advanced: a conflict after that must roll it back.
  wrote boolean := false;
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
      -- The upsert has written whatever it found: a conflict here must roll it back.
      wrote := true;
      IF participant.expected = '"stream_exists"' AND before_version = 0 THEN
        actual := 0;
      END IF;
    END IF;

    IF before_version IS NULL AND actual IS NULL THEN
      SELECT coalesce((SELECT s.version FROM streams s WHERE s.stream_id = participant.stream_id), 0)
      INTO actual;
    END IF;
    IF actual IS NOT NULL THEN
      IF NOT wrote AND request->>'conflict' = 'reply' THEN
        RETURN jsonb_build_object('conflict', jsonb_build_object(
          'stream_id', participant.stream_id, 'expected', participant.expected, 'actual', actual));
      END IF;
      RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
          quote_literal(participant.stream_id), participant.expected, actual
        USING ERRCODE = 'EC001',
              DETAIL = json_build_object(
                'stream_id', participant.stream_id, 'expected', participant.expected, 'actual', actual)::text;
    END IF;
    wrote := wrote OR participant.n > 0;
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
