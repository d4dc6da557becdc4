/**
 * Every statement the SQL stores run on eventcore's tables, by the concern it
 * serves: the store's reads and append, the checkpoints of projections and
 * reactors, and the command line's view of the global log. The functions,
 * triggers and views they call are in docs/schema.sql, as the last migration
 * leaves them. Statements that ask the server rather than the tables, and
 * only of one driver (PostgreSQL's advisory locks, a standby's replay), live
 * beside that driver's code in src/postgres/.
 */

/** A schema name as an SQL identifier. */
export const quoted = (schema: string) => `"${schema.replaceAll('"', '""')}"`

/** The oldest transaction still running on the server, or the next to start if none is. */
const oldestRunning = "pg_snapshot_xmin(pg_current_snapshot())"

/**
 * The readable horizon, as a common table expression over the events table
 * `events`: `xmin`, the oldest transaction still running (or, if none, the
 * next to start). Every transaction below it has ended, so nothing can appear
 * below it any more; whatever a running transaction writes will be at or
 * above it. A reader reads only below it and never skips an event that
 * commits late. `head`: the newest transaction stored; events of
 * transactions from `xmin` to `head` have committed but wait for the
 * transactions before them to end (they are held back).
 */
const horizonOf = (events: string) => `horizon as materialized (
  select ${oldestRunning} as xmin,
         (select max(w.transaction_id) from ${events} w) as head
)`

/**
 * The columns of an event, in the order `eventAt` (rows.ts) reads them. A
 * read of the global log follows them with the horizon (see `horizonOf`) and
 * whether committed events wait beyond it.
 */
const logColumns = `e.transaction_id::text, e.global_position, e.event_id, e.stream_id, e.stream_version,
       e.event_type, e.data, e.metadata, e.recorded_at, e.schema_version`

/** The statements of the store in `schema`: its reads, its append, and what the global log's readers ask. */
export const storeStatements = (schema: string) => {
  const events = `${quoted(schema)}.events`
  const horizon = horizonOf(events)
  // Once per read, from one probe of the (transaction_id, global_position)
  // index: as a subquery per row it was planned as a scan of the whole table
  // for every event returned.
  const heldBack = `coalesce(h.head >= h.xmin, false) as held_back`
  /** Events after ($1 transaction, $2 position) in log order, walking the (transaction_id, global_position) index. */
  const after = `(e.transaction_id, e.global_position) > ($1::text::xid8, $2::bigint) and e.transaction_id < h.xmin`
  /** The version of the stream `id` names: its last event's, 0 when it has none (one probe of the stream's index). */
  const versionOf = (id: string) =>
    `(select coalesce(max(s.stream_version), 0) from ${events} s where s.stream_id = ${id})`
  /**
   * The stream `id` names as a row: its `version`, whether it is `archived`,
   * and the `first` version its reads return (after a truncation): one probe
   * of `stream_states`, which holds a row only for such streams.
   */
  const streamOf = (id: string) => `(
  select ${versionOf(id)} as version, t.archived_at is not null as archived, coalesce(t.truncated_before, 1) as first
  from (select) o left join ${quoted(schema)}.stream_states t on t.stream_id = ${id}
)`
  return {
    /** The append: one statement, one round trip (the function `append` in docs/schema.sql). */
    append: `select ${quoted(schema)}.append($1::text::jsonb) as reply`,
    /** The participants' current versions, for `diagnoseConflict`: the ids as one JSON array of strings. */
    conflict: `select p.id, ${versionOf("p.id")} from jsonb_array_elements_text($1::text::jsonb) as p(id)`,
    /** A stream's version alone, and whether it is archived: a read of no events (`maxCount: 0`). */
    version: `select v.version, v.archived from ${streamOf("$1")} v`,
    /**
     * A stream's version ($1), its last event's, and up to $3 of its events
     * from version $2 on, walked along the (stream_id, stream_version) index
     * so that a page costs the same at the start and at the end of a long
     * stream; a stream without (further) events is one row of nulls but the
     * version. The columns of `logColumns` follow the version.
     *
     * No ORDER BY outside the join: the rows come in the order of the join's
     * inner side (a lateral join is a nested loop over the one row of the
     * version), and sorting them again cost the server a sort of every page
     * (a tenth of a 1,000-event read). The store checks the order as it reads
     * the rows, and sorts them only if it ever finds them out of order.
     */
    readStream: `select v.version, v.archived, ${logColumns}
from ${streamOf("$1")} v
left join lateral (
  select * from ${events} e where e.stream_id = $1 and e.stream_version >= greatest($2, v.first)
  order by e.stream_version limit $3
) e on true`,
    /** Up to $3 events of the log after ($1, $2); one row of nulls but the horizon when there are none. */
    readLog: `with ${horizon}
select ${logColumns}, h.xmin::text, ${heldBack}
from horizon h left join lateral (
  select * from ${events} e where ${after} order by e.transaction_id, e.global_position limit $3
) e on true
order by e.transaction_id, e.global_position`,
    /**
     * Filtered: of the next $3 events of the log after ($1, $2), up to $4 of
     * those whose type is in the JSON array $5 (null: any) and whose stream id
     * starts with $6 (null: any). The scan is bounded so that a reader of a
     * rare type moves on page by page. `matched` streams through the bounded
     * scan and stops at its $4th match, so a common type costs no more than
     * an unfiltered read. Only when fewer than $4 match (the whole scan was
     * examined) does `last_scanned` walk the scan again, in the index alone,
     * for the last event scanned and how many were: how far the reader may
     * move past the events it skipped.
     */
    readLogFiltered: `with ${horizon},
matched as materialized (
  select e.* from (
    select e.* from ${events} e, horizon h where ${after} order by e.transaction_id, e.global_position limit $3
  ) e
  where ($5::text is null or $5::text::jsonb ? e.event_type) and ($6::text is null or starts_with(e.stream_id, $6::text))
  order by e.transaction_id, e.global_position limit $4
),
last_scanned as (
  select s.transaction_id, s.global_position, s.scanned from (
    select e.transaction_id, e.global_position, row_number() over (order by e.transaction_id, e.global_position) as scanned
    from (
      select e.transaction_id, e.global_position from ${events} e, horizon h where ${after}
      order by e.transaction_id, e.global_position limit $3
    ) e
  ) s order by s.scanned desc limit 1
)
select ${logColumns}, h.xmin::text, ${heldBack},
       l.scanned::int, l.transaction_id::text, l.global_position
from horizon h
left join lateral (select * from last_scanned where (select count(*) from matched) < $4) l on true
left join matched e on true
order by e.transaction_id, e.global_position`,
    /**
     * What holds the horizon back: the backend or prepared transaction with
     * the oldest transaction id (its state, query and age are visible only to
     * roles allowed to see other sessions; pid and database always are).
     */
    blockingTransaction: `select pid, database, state, age_seconds, application_name from (
  select a.pid, a.datname::text as database, a.state, extract(epoch from now() - a.xact_start)::float8 as age_seconds,
         a.application_name, age(a.backend_xid) as xid_age
  from pg_stat_activity a where a.backend_xid is not null
  union all
  select null, p.database::text, 'prepared transaction ' || p.gid, extract(epoch from now() - p.prepared)::float8,
         null, age(p.transaction)
  from pg_prepared_xacts p
) t order by xid_age desc limit 1`,
    /**
     * Every (event type, schema version) pair stored, by type in code point
     * order then version, with its count (as text: int8) and its first and
     * last global positions. No index leads with the type: one scan of the
     * table, in parallel on a server (0.27 s for 1,000,000 events on
     * PostgreSQL 15 here).
     */
    storedTypes: `select e.event_type, e.schema_version, count(*)::text, min(e.global_position)::text, max(e.global_position)::text
from ${events} e group by 1, 2 order by e.event_type collate "C", e.schema_version`,
    /** The events at the global positions of the array literal $1 (text), along the primary key. */
    eventsAt: `select ${logColumns} from ${events} e where e.global_position = any($1::text::bigint[]) order by e.global_position`,
    /** The oldest transaction whose events the log cannot read yet (see `horizonOf`). */
    horizon: `select ${oldestRunning}::text`,
    /**
     * The highest transaction id stored, and the next the server will assign:
     * a store restored into another cluster can be behind (see
     * `checkTransactionIds` in migrations.ts).
     */
    transactionIds: `select (select max(transaction_id) from ${events})::text as stored,
       pg_snapshot_xmax(pg_current_snapshot())::text as next`
  }
}

/** The statements of the checkpoints of projections and reactors in `schema` (see checkpoints.ts). */
export const checkpointStatements = (schema: string) => {
  const projections = `${quoted(schema)}.projections`
  return {
    /** A name's row, if it has none; the filter ($4 event types as a JSON array, $5 prefix) is replaced by its owner's. */
    ensure: `insert into ${projections} (name, kind, position, status, event_types, stream_prefix)
      values ($1, $2, $3, 'stopped', $4::text::jsonb, $5) on conflict (name) do nothing`,
    /** The instance $2 owns the name, with its filter, and stands by no longer. */
    start: `update ${projections} set status = 'running', owner = $2::text, event_types = $3::text::jsonb, stream_prefix = $4,
      standbys = standbys - $2::text, updated_at = now() where name = $1 returning position`,
    standbys: `select jsonb_object_keys(standbys) from ${projections} where name = $1`,
    /** Instance $2 stands by from now on; the entries of the JSON array $3 (instances that ended) go. */
    standBy: `update ${projections}
      set standbys = (standbys - array(select jsonb_array_elements_text($3::text::jsonb))) || jsonb_build_object($2::text, now())
      where name = $1`,
    leave: `update ${projections} set standbys = standbys - $2::text where name = $1`,
    checkpoint: `select position from ${projections} where name = $1`,
    /**
     * The compare-and-set: moves only from the position the batch started at.
     * It goes with the commit in one round trip (see `Session.transaction`),
     * so when the checkpoint is no longer there it fails, dividing by the
     * zero rows it moved (SQLSTATE 22012), and the commit becomes a rollback.
     */
    advance: `with moved as (update ${projections} set position = $3, status = 'running', owner = $4, error = null, updated_at = now()
      where name = $1 and position = $2 returning 1)
      select 1 / count(*)::int from moved`,
    deadLetter: `insert into ${quoted(schema)}.dead_letters (projection, event_id, position, event_type, error) values ($1, $2, $3, $4, $5)`,
    fail: `update ${projections} set status = 'failed', error = $2, updated_at = now() where name = $1`,
    stop: `update ${projections} set status = 'stopped', updated_at = now() where name = $1 and owner = $2 and status = 'running'`,
    /** A rebuild: back to the start; an instance running it fails its next compare-and-set and replays. */
    reset: `insert into ${projections} (name, kind, position, status, event_types, stream_prefix)
      values ($1, $2, $3, 'stopped', $4::text::jsonb, $5)
      on conflict (name) do update set position = excluded.position, error = null, updated_at = now()`,
    /**
     * Every name with its lag: the events after its checkpoint that its filter
     * matches. The filter and the standbys are read through the row as JSON, so
     * that a schema still without them (read by the command line before
     * migrating) reads as before: every event counts, no one stands by. The
     * checkpoint's transaction goes through numeric: xid8 reads its leading
     * zeros as octal.
     */
    statuses: `select p.name, p.kind, p.status, p.position, p.owner, p.updated_at, p.error,
      (select count(*) from ${quoted(schema)}.events e
        where (e.transaction_id, e.global_position) > (f.transaction, f.global_position)
        and (f.types is null or f.types ? e.event_type)
        and (f.prefix is null or starts_with(e.stream_id, f.prefix)))::int,
      f.standbys::text
      from ${projections} p,
        lateral (select split_part(p.position, '-', 1)::numeric::text::xid8 as transaction,
          split_part(p.position, '-', 2)::bigint as global_position,
          nullif(to_jsonb(p) -> 'event_types', 'null') as types, to_jsonb(p) ->> 'stream_prefix' as prefix,
          coalesce(to_jsonb(p) -> 'standbys', '{}') as standbys) f
      order by p.name`,
    deadLetters: `select event_id, position, event_type, error from ${quoted(schema)}.dead_letters where projection = $1 order by id`
  }
}

/** The statements of commands' snapshots in `schema` (see `snapshots` in schema.ts). */
export const snapshotStatements = (schema: string) => {
  const events = `${quoted(schema)}.events`
  const snapshots = `${quoted(schema)}.snapshots`
  return {
    /**
     * A command's first read of `streams` declared streams ($5, $6, ...: their
     * ids, in order), in one statement and so from one snapshot of the
     * database: the snapshot of ($1 command, $2 key) as JSON, if any, and each
     * declared stream's current version and events. Each stream a snapshot
     * with the state version $3 and event versions $4 covers is read after the
     * version it covers; the others from the start. Columns: the stream's
     * place, id, version, the version read after, the snapshot, then the
     * columns of `logColumns`; a stream without events to read is one row of
     * nulls after the snapshot. The snapshot is on one row only: the first of
     * the first stream (its events after `after` start at `after + 1`,
     * versions being gap-free).
     *
     * Planned to stay cheap: the streams are an array of as many parameters
     * as there are, which the planner counts even in a plan made once for
     * every call (a JSON array it guesses at 100 elements, an array parameter
     * at 10 in such a plan, and so planned again on every call, 0.4 ms). No
     * ORDER BY: the caller puts the rows in order. Sorting here made the cost
     * grow with the planner's guess of a stream's length (the table's events
     * over its streams); past `jit_above_cost` PostgreSQL compiled the
     * statement on every call, 300 ms instead of 0.3 ms where a few long
     * streams hold the events. The version range is bounded on both sides
     * for the same reason: the planner guesses a range's share of a stream at
     * 0.5%, a one-sided bound's at a third.
     */
    load: (streams: number) => `with found as materialized (
  select s.state_version, s.event_versions, s.streams, s.state from ${snapshots} s where s.command = $1 and s.key = $2
),
wanted as (
  select d.stream_id, d.place, greatest(coalesce((
    select (c.stream ->> 1)::int from found f, jsonb_array_elements(f.streams) as c(stream)
    where f.state_version = $3 and f.event_versions = $4 and c.stream ->> 0 = d.stream_id
  ), 0), coalesce((
    -- A truncated stream is read from its truncation point (which removed the snapshots covering it).
    select t.truncated_before::int - 1 from ${quoted(schema)}.stream_states t where t.stream_id = d.stream_id
  ), 0)) as after
  from unnest(array[${Array.from({ length: streams }, (_, i) => `$${i + 5}::text`).join(", ")}]::text[])
    with ordinality as d(stream_id, place)
)
select w.place, w.stream_id, v.version, w.after,
       case when w.place = 1 and (e.stream_version is null or e.stream_version = w.after + 1)
            then (select to_jsonb(f) from found f) end,
       ${logColumns}
from wanted w
cross join lateral (select coalesce(max(s.stream_version), 0) as version from ${events} s where s.stream_id = w.stream_id) v
left join lateral (
  select * from ${events} e
  where e.stream_id = w.stream_id and e.stream_version > w.after and e.stream_version <= w.after::bigint + 2147483647
) e on true`,
    /**
     * Stores a snapshot, unless the key's stored one has the same versions and
     * covers at least as many events: of two snapshots of the same streams,
     * the one covering more is the newer (streams only grow). A snapshot of
     * other versions is replaced whatever it covers: the application moved on.
     */
    save: `insert into ${snapshots} (command, key, state_version, event_versions, streams, covered, state)
values ($1, $2, $3, $4, $5::text::jsonb, $6, $7::text::jsonb)
on conflict (command, key) do update set state_version = excluded.state_version, event_versions = excluded.event_versions,
  streams = excluded.streams, covered = excluded.covered, state = excluded.state, updated_at = now()
where ${snapshots}.covered < excluded.covered
   or (${snapshots}.state_version, ${snapshots}.event_versions) <> (excluded.state_version, excluded.event_versions)
returning 1`,
    /** Removes the snapshots of command $1 (all when null), returning how many. */
    clear: `with removed as (delete from ${snapshots} where $1::text is null or command = $1 returning 1)
select count(*)::int from removed`,
    /**
     * What the command line lists: the snapshots by command, state version and
     * event versions, how many, and when the last was written (as ISO 8601
     * text: the drivers give timestamps in forms of their own).
     */
    list: `select command, state_version, event_versions, count(*)::int as count,
       to_char(max(updated_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_at
from ${snapshots}
group by command, state_version, event_versions
order by command collate "C", state_version, event_versions collate "C"`
  }
}

/**
 * What `eventcore status` reports of the global log, from one snapshot: the
 * horizon; the last event committed (the head) and the last one readable,
 * each as (transaction, position); how many committed events are held back;
 * how many migrations the schema's history holds. Every number as text:
 * postgres.js and PGlite give int8 and xid8 differently.
 */
export const logStatusStatement = (schema: string) => {
  const events = `${quoted(schema)}.events`
  return `with ${horizonOf(events)}
select h.xmin::text as horizon,
       head.transaction_id::text as head_transaction, head.global_position::text as head_position,
       readable.transaction_id::text as readable_transaction, readable.global_position::text as readable_position,
       (select count(*) from ${events} w where w.transaction_id >= h.xmin)::text as held_back,
       (select count(*) from ${quoted(schema)}.migrations)::text as applied
from horizon h
left join lateral (
  select e.transaction_id, e.global_position from ${events} e
  order by e.transaction_id desc, e.global_position desc limit 1
) head on true
left join lateral (
  select e.transaction_id, e.global_position from ${events} e where e.transaction_id < h.xmin
  order by e.transaction_id desc, e.global_position desc limit 1
) readable on true`
}
