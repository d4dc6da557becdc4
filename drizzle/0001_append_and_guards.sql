-- eventcore's rules, enforced by the database itself so that no client, second
-- process or raw INSERT can break them. SQLSTATEs raised here:
--   EC001  version conflict (DETAIL: {"stream_id", "expected", "actual"})
--   EC002  events are append-only (UPDATE, DELETE, TRUNCATE refused)
--   EC003  inserted versions do not continue their stream (gap, duplicate, or stream not advanced)

-- Events are facts: nothing rewrites or removes them.
CREATE FUNCTION eventcore_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'eventcore: % on % is refused: the event log is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'EC002',
          HINT = 'Append a compensating event instead of changing or removing stored ones.';
END
$$;
--> statement-breakpoint
CREATE TRIGGER eventcore_events_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON eventcore_events
FOR EACH STATEMENT EXECUTE FUNCTION eventcore_refuse_change();
--> statement-breakpoint
-- A stream's row may advance (see below) but never disappear: its version is
-- what later appends are numbered and checked against.
CREATE TRIGGER eventcore_streams_keep_rows
BEFORE DELETE OR TRUNCATE ON eventcore_streams
FOR EACH STATEMENT EXECUTE FUNCTION eventcore_refuse_change();
--> statement-breakpoint
-- After every INSERT into the events table, whoever ran it: each stream's new
-- events must continue it without a gap, and its row in eventcore_streams moves
-- from the version before them to the last of them. That UPDATE waits for a
-- concurrent writer's row lock and re-checks the old version afterwards, so two
-- writers of the same versions cannot both commit.
CREATE FUNCTION eventcore_advance_streams() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  broken record;
  stream_count bigint;
  advanced_count bigint;
BEGIN
  SELECT b.stream_id, b.first, b.last INTO broken
  FROM (
    SELECT stream_id, min(stream_version) AS first, max(stream_version) AS last, count(*) AS n
    FROM inserted GROUP BY stream_id
  ) b
  WHERE b.last - b.first + 1 <> b.n
     OR (b.first > 1 AND NOT EXISTS (
           SELECT 1 FROM eventcore_events e WHERE e.stream_id = b.stream_id AND e.stream_version = b.first - 1))
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'eventcore: versions % to % of stream % do not continue it without a gap',
        broken.first, broken.last, quote_literal(broken.stream_id)
      USING ERRCODE = 'EC003',
            DETAIL = json_build_object('stream_id', broken.stream_id, 'first', broken.first, 'last', broken.last)::text,
            HINT = 'Append through eventcore_append(), which assigns versions.';
  END IF;

  WITH batch AS (
    SELECT stream_id, min(stream_version) AS first, max(stream_version) AS last
    FROM inserted GROUP BY stream_id
  ), advanced AS (
    UPDATE eventcore_streams s SET version = b.last
    FROM batch b
    WHERE s.stream_id = b.stream_id AND s.version = b.first - 1
    RETURNING 1
  ), created AS (
    INSERT INTO eventcore_streams (stream_id, version)
    SELECT b.stream_id, b.last FROM batch b
    WHERE b.first = 1 AND NOT EXISTS (SELECT 1 FROM eventcore_streams s WHERE s.stream_id = b.stream_id)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM advanced) + (SELECT count(*) FROM created)
  INTO stream_count, advanced_count;
  IF advanced_count <> stream_count THEN
    RAISE EXCEPTION 'eventcore: inserted events do not continue their stream''s current version'
      USING ERRCODE = 'EC003',
            HINT = 'Append through eventcore_append(), which locks the streams and assigns versions.';
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER eventcore_events_advance_streams
AFTER INSERT ON eventcore_events
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION eventcore_advance_streams();
--> statement-breakpoint
-- One atomic append, one round trip. The request is JSON:
--   {"streams": [{"id": text, "expected": <integer> | "any" | "no_stream" | "stream_exists"}, ...],
--    "events":  [{"stream": text, "id": uuid, "type": text, "data": jsonb, "metadata": jsonb}, ...]}
-- Every event's stream is one of "streams"; a stream without events is a
-- read-only participant, checked like the others. Returns
--   {"versions": [every participant's version after the append, in request order],
--    "positions": [each event's global position as text, in request order],
--    "recordedAt": milliseconds since the epoch}
CREATE FUNCTION eventcore_append(request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  conflict record;
  event_count bigint;
  positions jsonb;
BEGIN
  -- 1. Lock every participant's row, in one fixed order (the ids' byte order),
  --    creating rows at version 0 for streams not seen before. Writers that
  --    share streams queue on these locks instead of deadlocking, and a
  --    read-only participant stays locked, so its checked version holds until
  --    commit. (DO UPDATE ... WHERE false locks a conflicting row without
  --    writing it.)
  INSERT INTO eventcore_streams AS s (stream_id, version)
  SELECT p.value->>'id', 0
  FROM jsonb_array_elements(request->'streams') AS p(value)
  ORDER BY p.value->>'id' COLLATE "C"
  ON CONFLICT (stream_id) DO UPDATE SET version = s.version WHERE false;

  -- 2. Check every participant against its locked, latest committed version.
  SELECT p.value->>'id' AS stream_id, p.value->'expected' AS expected, s.version AS actual INTO conflict
  FROM jsonb_array_elements(request->'streams') AS p(value)
  JOIN eventcore_streams s ON s.stream_id = p.value->>'id'
  WHERE NOT CASE p.value->'expected'
    WHEN '"any"' THEN true
    WHEN '"no_stream"' THEN s.version = 0
    WHEN '"stream_exists"' THEN s.version > 0
    ELSE s.version = (p.value->'expected')::bigint
  END
  ORDER BY p.value->>'id' COLLATE "C"
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
        quote_literal(conflict.stream_id), conflict.expected, conflict.actual
      USING ERRCODE = 'EC001',
            DETAIL = json_build_object(
              'stream_id', conflict.stream_id, 'expected', conflict.expected, 'actual', conflict.actual)::text;
  END IF;

  -- 3. Insert all events in one statement, numbering each stream's events on
  --    from its current version; positions follow the request's order.
  WITH inserted AS (
    INSERT INTO eventcore_events (event_id, stream_id, stream_version, event_type, data, metadata)
    SELECT (e.value->>'id')::uuid,
           e.value->>'stream',
           s.version + row_number() OVER (PARTITION BY s.stream_id ORDER BY e.ord),
           e.value->>'type',
           e.value->'data',
           coalesce(e.value->'metadata', '{}'::jsonb)
    FROM jsonb_array_elements(request->'events') WITH ORDINALITY AS e(value, ord)
    JOIN eventcore_streams s ON s.stream_id = e.value->>'stream'
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

  -- 4. Every participant's version now (the trigger advanced the written ones).
  RETURN jsonb_build_object(
    'versions', (
      SELECT coalesce(jsonb_agg(s.version ORDER BY p.ord), '[]'::jsonb)
      FROM jsonb_array_elements(request->'streams') WITH ORDINALITY AS p(value, ord)
      JOIN eventcore_streams s ON s.stream_id = p.value->>'id'),
    'positions', positions,
    'recordedAt', floor(extract(epoch FROM now()) * 1000));
END
$$;
