/**
 * The event store over the Drizzle schema, shared line for line by the
 * PostgreSQL and PGlite stores: only the database handle differs.
 */
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core"
import { Clock, Effect, Metric, Schedule } from "effect"
import type { NewEvent, RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import * as ExpectedVersion from "../ExpectedVersion.js"
import type { DuplicateEventId, StoreError } from "../errors.js"
import { VersionConflict } from "../errors.js"
import type { Holdup } from "../internal/follow.js"
import { uuidv7 } from "../internal/uuid.js"
import * as LogPosition from "../LogPosition.js"
import type { StreamId } from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import {
  type ConflictFacts,
  isConnectionLost,
  isRacedWrite,
  isRecoveryConflict,
  parseDuplicateEventId,
  parseVersionConflict,
  storeError,
  versionConflictOf
} from "./errors.js"
import * as Projections from "./projections.js"

// biome-ignore lint/suspicious/noExplicitAny: any Drizzle PostgreSQL database, whatever its driver and schema
export type Database = PgDatabase<PgQueryResultHKT, any>

/**
 * Wraps every database call: the PostgreSQL store bounds how many run at once
 * (its pool), the PGlite store gives the event loop a turn after each.
 */
export type Gate = <A>(operation: string, run: Effect.Effect<A, StoreError>) => Effect.Effect<A, StoreError>

const ungated: Gate = (_, run) => run

/** Rows of a raw `execute`: postgres.js returns an array, PGlite `{ rows }`. */
export const rowsOf = (result: unknown): ReadonlyArray<Record<string, unknown>> =>
  Array.isArray(result) ? result : (result as { rows: ReadonlyArray<Record<string, unknown>> }).rows

interface AppendReply {
  readonly versions: ReadonlyArray<number>
  readonly positions: ReadonlyArray<string>
  /** The writing transaction's id; null when the append wrote no events. */
  readonly transaction: string | null
  readonly recordedAt: number
}

/** The reply to a request that asked for conflicts in the reply, when a participant is not at its expected version. */
interface ConflictReply {
  readonly conflict: ConflictFacts
}

/** A schema name as an SQL identifier. */
const quoted = (schema: string) => `"${schema.replaceAll('"', '""')}"`

/**
 * The columns of an event read from the global log, in order, then the
 * horizon (see `statementsIn`) and whether committed events wait beyond it.
 */
const logColumns = `e.transaction_id::text, e.global_position, e.event_id, e.stream_id, e.stream_version,
       e.event_type, e.data, e.metadata, e.recorded_at`

/** The statements of a store in `schema` that are not built from its Drizzle tables. */
export const statementsIn = (schema: string) => {
  const events = `${quoted(schema)}.events`
  /**
   * The readable horizon: the oldest transaction still running (or, if none,
   * the next to start). Every transaction below it has ended, so nothing can
   * appear below it any more; whatever a running transaction writes will be
   * at or above it. A reader reads only below it and never skips an event
   * that commits late. `held_back`: events already committed at or above it,
   * readable once the transactions before them end.
   */
  const horizon = `horizon as materialized (
  select pg_snapshot_xmin(pg_current_snapshot()) as xmin,
         (select max(w.transaction_id) from ${events} w) as head
)`
  // Once per read, from one probe of the (transaction_id, global_position)
  // index: as a subquery per row it was planned as a scan of the whole table
  // for every event returned.
  const heldBack = `coalesce(h.head >= h.xmin, false) as held_back`
  /** Events after ($1 transaction, $2 position) in log order, walking the (transaction_id, global_position) index. */
  const after = `(e.transaction_id, e.global_position) > ($1::text::xid8, $2::bigint) and e.transaction_id < h.xmin`
  /** The version of the stream `id` names: its last event's, 0 when it has none (one probe of the stream's index). */
  const versionOf = (id: string) =>
    `(select coalesce(max(s.stream_version), 0) from ${events} s where s.stream_id = ${id})`
  return {
    /** The append: one statement, one round trip (see drizzle/0005_log_positions.sql). */
    append: `select ${quoted(schema)}.append($1::text::jsonb) as reply`,
    /** The participants' current versions, for `diagnoseConflict`: the ids as one JSON array of strings. */
    conflict: `select p.id, ${versionOf("p.id")} from jsonb_array_elements_text($1::text::jsonb) as p(id)`,
    /** A stream's version alone: a read of no events (`maxCount: 0`), as a command registering a stream does. */
    version: `select ${versionOf("$1")}`,
    /**
     * A stream's version ($1), its last event's, and up to $3 of its events
     * from version $2 on, walked along the (stream_id, stream_version) index
     * so that a page costs the same at the start and at the end of a long
     * stream; a stream without (further) events is one row of nulls but the
     * version. The columns of `logColumns` follow the version.
     */
    readStream: `select v.version, ${logColumns}
from (select ${versionOf("$1")} as version) v
left join lateral (
  select * from ${events} e where e.stream_id = $1 and e.stream_version >= $2 order by e.stream_version limit $3
) e on true
order by e.stream_version`,
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
    holdup: `select pid, database, state, age_seconds, application_name from (
  select a.pid, a.datname::text as database, a.state, extract(epoch from now() - a.xact_start)::float8 as age_seconds,
         a.application_name, age(a.backend_xid) as xid_age
  from pg_stat_activity a where a.backend_xid is not null
  union all
  select null, p.database::text, 'prepared transaction ' || p.gid, extract(epoch from now() - p.prepared)::float8,
         null, age(p.transaction)
  from pg_prepared_xacts p
) t order by xid_age desc limit 1`,
    /** The oldest transaction whose events the log cannot read yet (see `horizon` above). */
    horizon: `select pg_snapshot_xmin(pg_current_snapshot())::text`,
    /**
     * The highest transaction id stored, and the next the server will assign:
     * a store restored into another cluster can be behind (see
     * `checkTransactionIds`).
     */
    transactionIds: `select (select max(transaction_id) from ${events})::text,
       pg_snapshot_xmax(pg_current_snapshot())::text`
  }
}

/**
 * Runs one of the store's two hot statements (the append, and the read built
 * below), or the conflict diagnosis, as the driver's own prepared statement,
 * returning rows as arrays of the driver's values. Through drizzle's `execute`
 * the append would be described anew on every call (a second round trip on
 * postgres.js), and drizzle's row mapping costs as much CPU as the rest of a
 * read.
 */
export type RunPrepared = (
  statement: string,
  params: ReadonlyArray<unknown>
) => Promise<ReadonlyArray<ReadonlyArray<unknown>>>

/**
 * A filtered read of the global log examines at least this many events, and
 * at most this many more than it returns: a reader of a rare event type moves
 * through a long log in pages of this size instead of in one scan.
 */
const filteredScan = 10_000

/**
 * `LogPosition.make` from the decimal digits of a transaction and a position
 * as the database returns them (an `xid8` and a `bigint`, in range by their
 * types), in its form of 20 digits, '-', 19 digits. A page of the log builds
 * one per event, and parsing both into BigInts to print them again was a
 * third of the CPU of building its events (bench/profile/node-overhead.ts).
 */
const positionOf = (transaction: string, position: string): LogPosition.LogPosition =>
  `${transaction.padStart(20, "0")}-${position.padStart(19, "0")}` as LogPosition.LogPosition

/** postgres.js gives int8 as text, PGlite as bigint; timestamptz as text under drizzle's parsers, or a Date. */
const toBigInt = (value: unknown): bigint => BigInt(value as string | bigint)
const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string))

/**
 * A hot standby of the store's server. The global log is read there; appends,
 * checkpoints, read models and the stall diagnosis stay on the primary.
 * Nothing run there may write or call what a standby refuses
 * (`pg_current_xact_id()`, LISTEN): the log's reads only take a snapshot.
 */
export interface Replica {
  readonly runPrepared: RunPrepared
  readonly gate?: Gate
  /** Whether stream reads (`readStream`, `streamEvents`: what commands read) run there too. */
  readonly streams: boolean
}

/** Reads on a replica run again: cancelled by a recovery conflict, or their session lost (one may end it). */
export const replicaRetryCounter = Metric.counter("eventcore_replica_read_retries", {
  description:
    "reads on a replica run again after a conflict with recovery (e.g. VACUUM replayed from the primary) cancelled them or ended their session",
  incremental: true
})

/**
 * A standby cancels a read whose snapshot still needs rows that replayed
 * cleanup removes (after `max_standby_streaming_delay`): running it again, on
 * a fresh snapshot, succeeds. Bounded, so that a standby configured to cancel
 * everything surfaces as a `StoreError` (which subscriptions retry in turn).
 */
const recoveryRetry = Schedule.exponential("10 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.intersect(Schedule.recurs(20))
)

/**
 * A read on a replica, run again when the standby cancelled it for a recovery
 * conflict, or ended its session (a conflict that reaches a session between
 * two messages of a query terminates it instead: the next query on that
 * connection finds it closed). Each time is counted in `replicaRetryCounter`.
 */
export const retryOnReplica = <A>(read: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError> =>
  read.pipe(
    Effect.tapError((error) =>
      isRecoveryConflict(error.cause) || isConnectionLost(error.cause)
        ? Metric.increment(replicaRetryCounter)
        : Effect.void
    ),
    Effect.retry({ schedule: recoveryRetry, while: (error) => isRecoveryConflict(error.cause) }),
    Effect.retry({ times: 2, while: (error) => isConnectionLost(error.cause) })
  )

export interface SqlStoreOptions {
  /** The PostgreSQL schema holding eventcore's tables and functions. */
  readonly schema: string
  readonly runPrepared: RunPrepared
  readonly gate?: Gate
  /** Sessions of their own for projections and reactors (see src/sql/projections.ts). */
  readonly sessions?: Projections.Sessions
  /** Where the global log is read, if not on the primary. */
  readonly replica?: Replica
}

export const make = (options: SqlStoreOptions): EventStore.EventStore => {
  const gate = options.gate ?? ungated
  const statements = statementsIn(options.schema)

  const query = <A>(operation: string, run: () => Promise<A>) =>
    gate(operation, Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) }))

  /** A read on the replica, if the store has one, run again after a recovery conflict; else on the primary. */
  const replica = options.replica
  const readQuery = (
    operation: string,
    statement: string,
    params: ReadonlyArray<unknown>,
    onReplica = replica !== undefined
  ) => {
    if (replica === undefined || !onReplica) return query(operation, () => options.runPrepared(statement, params))
    return (replica.gate ?? ungated)(
      operation,
      Effect.tryPromise({
        try: () => replica.runPrepared(statement, params),
        catch: (error) => storeError(operation, error)
      })
    ).pipe(retryOnReplica)
  }

  /** The event in the columns of `logColumns`, from column `from` of a row on. */
  const logEvent = (row: ReadonlyArray<unknown>, from = 0): RecordedEvent => {
    const position = row[from + 1] as string | bigint
    return {
      eventId: row[from + 2] as string,
      streamId: row[from + 3] as StreamId,
      streamVersion: row[from + 4] as number,
      globalPosition: BigInt(position),
      position: positionOf(row[from] as string, String(position)),
      eventType: row[from + 5] as string,
      data: row[from + 6],
      metadata: row[from + 7] as Record<string, unknown>,
      recordedAt: toDate(row[from + 8])
    }
  }

  const read = (streamId: StreamId, fromVersion: number, limit: number) =>
    limit === 0
      ? readQuery("read_stream", statements.version, [streamId], replica?.streams === true).pipe(
          Effect.map((rows) => ({ version: (rows[0]?.[0] as number | undefined) ?? 0, events: [] }))
        )
      : readQuery("read_stream", statements.readStream, [streamId, fromVersion, limit], replica?.streams === true).pipe(
          Effect.map((rows) => {
            // Columns in the order selected above; a stream without (further) events is one row of nulls but its version.
            const version = (rows[0]?.[0] as number | undefined) ?? 0
            const recorded: Array<RecordedEvent> = []
            for (const row of rows) if (row[3] !== null) recorded.push(logEvent(row, 1))
            return { version, events: recorded }
          })
        )

  /**
   * After a raced write, the current versions tell which participant conflicted.
   * The ids go as one JSON text parameter, not as an array: postgres.js
   * serializes an array only for the array types it fetched from the server's
   * catalog, and the PostgreSQL store's pool fetches none (`fetch_types: false`).
   */
  const diagnoseConflict = (participants: ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>) =>
    query("append", () =>
      options.runPrepared(statements.conflict, [JSON.stringify(participants.map(([id]) => id))])
    ).pipe(
      Effect.map((rows) => {
        const current = new Map(rows.map(([streamId, version]) => [streamId as string, version as number]))
        const sorted = [...participants].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
        const [streamId, expected] =
          sorted.find(([id, exp]) => !ExpectedVersion.isSatisfiedBy(exp, current.get(id) ?? 0)) ??
          (sorted[0] as readonly [StreamId, ExpectedVersion.ExpectedVersion])
        return new VersionConflict({ streamId, expected, actual: current.get(streamId) ?? 0 })
      })
    )

  /** The store's answer to an append whose request reached the database. */
  const appended = (
    reply: AppendReply | ConflictReply,
    participants: ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>,
    newEvents: ReadonlyArray<NewEvent>,
    eventIds: ReadonlyArray<string>
  ): Effect.Effect<EventStore.AppendResult, VersionConflict> => {
    if ("conflict" in reply) return Effect.fail(versionConflictOf(reply.conflict))
    const streamVersions = new Map<StreamId, number>()
    for (let i = 0; i < participants.length; i++) {
      streamVersions.set((participants[i] as readonly [StreamId, unknown])[0], reply.versions[i] as number)
    }
    // Each stream's events end at its new version: number them back from there.
    const remaining = new Map<StreamId, number>()
    for (const event of newEvents) remaining.set(event.streamId, (remaining.get(event.streamId) ?? 0) + 1)
    const recordedAt = new Date(reply.recordedAt)
    const transaction = reply.transaction ?? "0"
    const recorded = newEvents.map((event, i): RecordedEvent => {
      const left = remaining.get(event.streamId) as number
      remaining.set(event.streamId, left - 1)
      const position = reply.positions[i] as string
      return {
        eventId: eventIds[i] as string,
        streamId: event.streamId,
        streamVersion: (streamVersions.get(event.streamId) as number) - left + 1,
        globalPosition: BigInt(position),
        position: positionOf(transaction, position),
        eventType: event.eventType,
        data: event.data,
        metadata: event.metadata ?? {},
        recordedAt
      }
    })
    return Effect.succeed({ streamVersions, events: recorded })
  }

  /** A failed append: a conflict or duplicate the database raised, a raced write to diagnose, or a store error. */
  const appendFailed = (
    error: StoreError,
    participants: ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>
  ): Effect.Effect<never, VersionConflict | DuplicateEventId | StoreError> => {
    const failure = parseVersionConflict(error.cause) ?? parseDuplicateEventId(error.cause)
    if (failure !== undefined) return Effect.fail(failure)
    if (isRacedWrite(error.cause)) return Effect.flatMap(diagnoseConflict(participants), Effect.fail)
    return Effect.fail(error)
  }

  // No Effect.gen here: this is the hottest path of the store, and each step
  // of a generator is an Effect the runtime interprets.
  const append = (writes: StreamWrites.StreamWrites) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const participants = StreamWrites.participants(writes)
      const newEvents = StreamWrites.events(writes)
      const eventIds = newEvents.map((event) => event.eventId?.toLowerCase() ?? uuidv7(now))
      const request = JSON.stringify({
        // A conflict comes back in the reply, not as an error (drizzle/0007; since 0008 every conflict is found before any write).
        conflict: "reply",
        streams: participants.map(([id, expected]) => ({ id, expected })),
        events: newEvents.map((event, i) => ({
          stream: event.streamId,
          id: eventIds[i],
          type: event.eventType,
          data: event.data,
          metadata: event.metadata ?? {}
        }))
      })
      return Effect.matchEffect(
        query("append", () => options.runPrepared(statements.append, [request])),
        {
          onFailure: (error) => appendFailed(error, participants),
          onSuccess: (rows) => {
            const raw = rows[0]?.[0]
            const reply = (typeof raw === "string" ? JSON.parse(raw) : raw) as AppendReply | ConflictReply
            return appended(reply, participants, newEvents, eventIds)
          }
        }
      )
    })

  /** Where a reader stands once it has read everything below the horizon (`statementsIn`). */
  const belowHorizon = (after: LogPosition.LogPosition, horizon: unknown) =>
    LogPosition.max(after, LogPosition.afterTransaction(BigInt(horizon as string) - 1n))

  const readLog = (
    after: LogPosition.LogPosition,
    limit: number,
    filter: EventStore.LogFilter
  ): Effect.Effect<EventStore.LogPage, StoreError> => {
    const { transaction, position } = LogPosition.parts(after)
    const from = [transaction.toString(), position.toString()]
    if (filter.eventTypes === undefined && filter.streamPrefix === undefined) {
      return readQuery("read_all", statements.readLog, [...from, limit]).pipe(
        Effect.map((rows) => {
          const events = rows.filter((row) => row[2] !== null).map((row) => logEvent(row))
          const [horizon, heldBack] = (rows[0] as ReadonlyArray<unknown>).slice(9)
          const last = events.at(-1)
          return events.length === limit && last !== undefined
            ? { events, position: last.position, caughtUp: false, heldBack: heldBack === true }
            : { events, position: belowHorizon(after, horizon), caughtUp: true, heldBack: heldBack === true }
        })
      )
    }
    const scan = Math.max(limit, filteredScan)
    const types = filter.eventTypes === undefined ? null : JSON.stringify(filter.eventTypes)
    return readQuery("read_all", statements.readLogFiltered, [
      ...from,
      scan,
      limit,
      types,
      filter.streamPrefix ?? null
    ]).pipe(
      Effect.map((rows) => {
        const events = rows.filter((row) => row[2] !== null).map((row) => logEvent(row))
        const [horizon, heldBack, scanned, lastTransaction, lastPosition] = (rows[0] as ReadonlyArray<unknown>).slice(9)
        const last = events.at(-1)
        const page = (position: LogPosition.LogPosition, caughtUp: boolean): EventStore.LogPage => ({
          events,
          position,
          caughtUp,
          heldBack: heldBack === true
        })
        if (events.length === limit && last !== undefined) return page(last.position, false)
        if (scanned === scan) {
          // Every scanned event was examined: the reader moves past those the filter skipped.
          return page(LogPosition.make(BigInt(lastTransaction as string), toBigInt(lastPosition)), false)
        }
        return page(belowHorizon(after, horizon), true)
      })
    )
  }

  const holdup = query("read_all", () => options.runPrepared(statements.holdup, [])).pipe(
    Effect.map((rows): Holdup | undefined => {
      const row = rows[0]
      if (row === undefined) return undefined
      const [pid, database, state, ageSeconds, applicationName] = row
      return {
        ...(pid === null ? {} : { pid: Number(pid) }),
        ...(database === null ? {} : { database: database as string }),
        ...(state === null ? {} : { state: state as string }),
        ...(ageSeconds === null ? {} : { ageSeconds: Number(ageSeconds) }),
        ...(applicationName === null || applicationName === "" ? {} : { applicationName: applicationName as string })
      }
    })
  )

  const horizon = Effect.map(readQuery("read_all", statements.horizon, []), (rows) => BigInt(rows[0]?.[0] as string))

  return EventStore.make({
    attributes: { "db.system": "postgresql" },
    read,
    append,
    readLog,
    holdup,
    horizon,
    ...(options.sessions === undefined
      ? {}
      : { projections: Projections.make(options.schema, options.sessions, options.runPrepared) }),
    polling: { min: "20 millis", max: "200 millis" }
  })
}
