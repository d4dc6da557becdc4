-- A proposed eventcore_append, for measurement only: bench/profile/sql.ts installs
-- it as eventcore_append_proposed in a scratch database, and `npm run bench --
-- --proposed-append` replaces the shipped function with it in the bench's own
-- database. The shipped function is in drizzle/0001_append_and_guards.sql; this
-- is the same function (same request, reply, locks, lock order and errors) with
-- two changes, and the trigger function with a third:
--
--  1. Participants' rows are read by primary key, always. The shipped function
--     joins jsonb_array_elements(...) to eventcore_streams in three statements
--     (the check, the insert, the reply). PostgreSQL estimates any set-returning
--     function at 100 rows, so until eventcore_streams is large enough (around
--     50,000 rows here) it plans a hash join over a sequential scan of the whole
--     table: each append reads every stream's row, three times. Here each
--     participant's version is a correlated scalar subquery, which is always an
--     index probe whatever the estimates, and the insert joins the events to the
--     request's participants rather than to the table.
--  2. Fail fast: versions only grow, so a participant whose committed version
--     is already past a numeric (or "no_stream") expectation conflicts for sure.
--     That is checked before any lock is taken, so a stale writer on a hot
--     stream does not queue behind the lock holder's commit to learn it lost.
CREATE OR REPLACE FUNCTION eventcore_append_proposed(request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  conflict record;
  event_count bigint;
  positions jsonb;
BEGIN
  -- 0. Fail fast, without locks, on a version already past the expected one.
  SELECT q.stream_id, q.expected, q.actual INTO conflict
  FROM (
    SELECT p.value->>'id' AS stream_id, p.value->'expected' AS expected,
           (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = p.value->>'id') AS actual
    FROM jsonb_array_elements(request->'streams') AS p(value)
  ) q
  WHERE (jsonb_typeof(q.expected) = 'number' AND q.actual > (q.expected)::bigint)
     OR (q.expected = '"no_stream"' AND q.actual > 0)
  ORDER BY q.stream_id COLLATE "C"
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
        quote_literal(conflict.stream_id), conflict.expected, conflict.actual
      USING ERRCODE = 'EC001',
            DETAIL = json_build_object(
              'stream_id', conflict.stream_id, 'expected', conflict.expected, 'actual', conflict.actual)::text;
  END IF;

  -- 1. Lock every participant's row, in one fixed order (unchanged).
  INSERT INTO eventcore_streams AS s (stream_id, version)
  SELECT p.value->>'id', 0
  FROM jsonb_array_elements(request->'streams') AS p(value)
  ORDER BY p.value->>'id' COLLATE "C"
  ON CONFLICT (stream_id) DO UPDATE SET version = s.version WHERE false;

  -- 2. Check every participant against its locked, latest committed version,
  --    read by primary key.
  SELECT q.stream_id, q.expected, q.actual INTO conflict
  FROM (
    SELECT p.value->>'id' AS stream_id, p.value->'expected' AS expected,
           (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = p.value->>'id') AS actual
    FROM jsonb_array_elements(request->'streams') AS p(value)
  ) q
  WHERE NOT CASE q.expected
    WHEN '"any"' THEN true
    WHEN '"no_stream"' THEN q.actual = 0
    WHEN '"stream_exists"' THEN q.actual > 0
    ELSE q.actual = (q.expected)::bigint
  END
  ORDER BY q.stream_id COLLATE "C"
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'eventcore: version conflict on stream %: expected %, actual %',
        quote_literal(conflict.stream_id), conflict.expected, conflict.actual
      USING ERRCODE = 'EC001',
            DETAIL = json_build_object(
              'stream_id', conflict.stream_id, 'expected', conflict.expected, 'actual', conflict.actual)::text;
  END IF;

  -- 3. Insert all events in one statement, numbering each stream's events on
  --    from its current version (by primary key); only participants' events.
  WITH inserted AS (
    INSERT INTO eventcore_events (event_id, stream_id, stream_version, event_type, data, metadata)
    SELECT (e.value->>'id')::uuid,
           e.value->>'stream',
           (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = e.value->>'stream')
             + row_number() OVER (PARTITION BY e.value->>'stream' ORDER BY e.ord),
           e.value->>'type',
           e.value->'data',
           coalesce(e.value->'metadata', '{}'::jsonb)
    FROM jsonb_array_elements(request->'events') WITH ORDINALITY AS e(value, ord)
    WHERE e.value->>'stream' IN (SELECT p.value->>'id' FROM jsonb_array_elements(request->'streams') AS p(value))
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
      SELECT coalesce(jsonb_agg(
               (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = p.value->>'id') ORDER BY p.ord),
             '[]'::jsonb)
      FROM jsonb_array_elements(request->'streams') WITH ORDINALITY AS p(value, ord)),
    'positions', positions,
    'recordedAt', floor(extract(epoch FROM now()) * 1000));
END
$$;

-- 3. The trigger (shared by every append, shipped or proposed): its gap check
--    was `NOT EXISTS (SELECT 1 FROM eventcore_events e WHERE e.stream_id = ...
--    AND e.stream_version = b.first - 1)`. PostgreSQL may run such an EXISTS as a
--    *hashed* subplan: a hash table built from a sequential scan of the whole
--    events table. plpgsql caches the plan per connection; planned while the
--    table is small (a new database, stale statistics), every later append to an
--    existing stream scans all events until the plan is invalidated (measured:
--    6 ms per append at 27,000 events; see trigger-plan.ts). A scalar subquery
--    cannot be hashed: it is an index probe per stream, whatever the statistics.
--    (The `created` branch's NOT EXISTS on eventcore_streams, same treatment.)
CREATE OR REPLACE FUNCTION eventcore_advance_streams() RETURNS trigger
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
     OR (b.first > 1 AND (
           SELECT e.stream_version FROM eventcore_events e
           WHERE e.stream_id = b.stream_id AND e.stream_version = b.first - 1) IS NULL)
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
    WHERE b.first = 1 AND (SELECT s.version FROM eventcore_streams s WHERE s.stream_id = b.stream_id) IS NULL
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
