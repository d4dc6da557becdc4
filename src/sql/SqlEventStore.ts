/**
 * The event store on PostgreSQL's SQL, shared line for line by the PostgreSQL
 * and PGlite stores: only the driver differs (src/sql/driver.ts). The
 * statements are in statements.ts, the append's request and reply in
 * append.ts, row mapping in rows.ts, the replica's retries in replica.ts.
 */
import { Clock, Context, Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import type { StoreError } from "../errors.js"
import { fromOperations } from "../internal/eventStore.js"
import {
  type AppendError,
  type AppendResult,
  checkpointsKey,
  type LogFilter,
  type LogPage,
  type StoredEventType,
  type StoreExtras
} from "../internal/storeContract.js"
import { uuidv7 } from "../internal/uuid.js"
import type { KeyStore } from "../KeyStore.js"
import * as LogPosition from "../LogPosition.js"
import { ReadModelStore } from "../ReadModel.js"
import type { StreamId } from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import { appendOutcome, appendRequest, conflictOf, type Participants, parseReply } from "./append.js"
import * as Checkpoints from "./checkpoints.js"
import { type Gate, type RunStatement, type Sessions, ungated } from "./driver.js"
import { isRacedWrite, parseDuplicateEventId, parseVersionConflict, storeError } from "./errors.js"
import * as Lifecycle from "./lifecycle.js"
import * as PersonalData from "./personalData.js"
import { type Replica, retryOnReplica } from "./replica.js"
import { blockingTransactionOf, eventAt, eventColumnCount, inVersionOrder, toBigInt } from "./rows.js"
import * as Snapshots from "./snapshots.js"
import { storeStatements } from "./statements.js"

/**
 * A filtered read of the global log examines at least this many events, and
 * at most this many more than it returns: a reader of a rare event type moves
 * through a long log in pages of this size instead of in one scan.
 */
const filteredScan = 10_000

export interface SqlStoreOptions {
  /** The PostgreSQL schema holding eventcore's tables and functions. */
  readonly schema: string
  readonly run: RunStatement
  readonly gate?: Gate
  /** Sessions of their own for projections and reactors (see checkpoints.ts). */
  readonly sessions?: Sessions
  /** Where the global log is read, if not on the primary. */
  readonly replica?: Replica
  /** Where the keys of data subjects live, when not in the store's own table (`KeyStore.layer`). */
  readonly keys?: KeyStore
}

export const make = (options: SqlStoreOptions): EventStore.EventStore & StoreExtras => {
  const gate = options.gate ?? ungated
  const statements = storeStatements(options.schema)

  /**
   * `run`'s answer, then `onSuccess` or `onFailure` of it. With a permit free
   * (the common case) this is one step of the runtime: the permit is taken,
   * the statement sent and its answer handed on in one `Effect.async`; else
   * the call waits at the gate like any other.
   */
  const queryThen = <A, B, E>(
    operation: string,
    run: () => Promise<A>,
    onSuccess: (a: A) => Effect.Effect<B, E>,
    onFailure: (error: StoreError) => Effect.Effect<B, E>
  ): Effect.Effect<B, E> => {
    const gated = () =>
      gate(operation, Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) })).pipe(
        Effect.matchEffect({ onSuccess, onFailure })
      )
    const { tryEnter, leave } = gate
    if (tryEnter === undefined || leave === undefined) return Effect.suspend(gated)
    return Effect.async<B, E>((resume) => {
      if (!tryEnter()) return resume(gated())
      // What follows the answer, run here: a throw would be lost in the promise and leave the fiber
      // waiting, so it is a defect.
      const handOn = <X>(next: (x: X) => Effect.Effect<B, E>, x: X) => {
        leave()
        try {
          resume(next(x))
        } catch (defect) {
          resume(Effect.die(defect))
        }
      }
      let answer: Promise<A>
      try {
        answer = run()
      } catch (error) {
        return handOn(onFailure, storeError(operation, error))
      }
      answer.then(
        (a) => handOn(onSuccess, a),
        (error) => handOn(onFailure, storeError(operation, error))
      )
    })
  }

  const query = <A>(operation: string, run: () => Promise<A>) => queryThen(operation, run, Effect.succeed, Effect.fail)

  /** A read on the replica, if the store has one, run again after a recovery conflict; else on the primary. */
  const replica = options.replica
  const readQuery = <A = ReadonlyArray<ReadonlyArray<unknown>>>(
    operation: string,
    statement: string,
    params: ReadonlyArray<unknown>,
    onReplica = replica !== undefined,
    rowsTo: (rows: ReadonlyArray<ReadonlyArray<unknown>>) => A = (rows) => rows as A
  ): Effect.Effect<A, StoreError> => {
    if (replica === undefined || !onReplica) {
      return queryThen(
        operation,
        () => options.run(statement, params),
        (rows) => Effect.succeed(rowsTo(rows)),
        Effect.fail
      )
    }
    return (replica.gate ?? ungated)(
      operation,
      Effect.tryPromise({
        try: () => replica.run(statement, params),
        catch: (error) => storeError(operation, error)
      })
    ).pipe(retryOnReplica, Effect.map(rowsTo))
  }

  const read = (streamId: StreamId, fromVersion: number, limit: number) =>
    limit === 0
      ? readQuery("read_stream", statements.version, [streamId], replica?.streams === true, (rows) => ({
          version: (rows[0]?.[0] as number | undefined) ?? 0,
          archived: rows[0]?.[1] === true,
          events: []
        }))
      : readQuery(
          "read_stream",
          statements.readStream,
          [streamId, fromVersion, limit],
          replica?.streams === true,
          (rows) => {
            // Columns in the order selected above; a stream without (further) events is one row of nulls
            // but its version and whether it is archived.
            const version = (rows[0]?.[0] as number | undefined) ?? 0
            const recorded: Array<RecordedEvent> = []
            for (const row of rows) if (row[4] !== null) recorded.push(eventAt(row, 2))
            // The statement leaves the order to its join (see `readStream` in statements.ts).
            return { version, archived: rows[0]?.[1] === true, events: inVersionOrder(recorded) }
          }
        )

  /**
   * After a raced write, the current versions tell which participant conflicted.
   * The ids go as one JSON text parameter, not as an array: postgres.js
   * serializes an array only for the array types it fetched from the server's
   * catalog, and the PostgreSQL store's pool fetches none (`fetch_types: false`).
   */
  const diagnoseConflict = (participants: Participants) =>
    query("append", () => options.run(statements.conflict, [JSON.stringify(participants.map(([id]) => id))])).pipe(
      Effect.map((rows) => conflictOf(participants, rows))
    )

  /** A failed append: a conflict or duplicate the database raised, a raced write to diagnose, or a store error. */
  const appendFailed = (error: StoreError, participants: Participants): Effect.Effect<never, AppendError> => {
    const failure = parseVersionConflict(error.cause) ?? parseDuplicateEventId(error.cause)
    if (failure !== undefined) return Effect.fail(failure)
    if (isRacedWrite(error.cause)) return Effect.flatMap(diagnoseConflict(participants), Effect.fail)
    return Effect.fail(error)
  }

  // No Effect.gen here: this is the hottest path of the store, and each step
  // of a generator is an Effect the runtime interprets. The clock is the
  // fiber's (a TestClock's in tests), read without a step of its own.
  const append = (writes: StreamWrites.StreamWrites) =>
    Effect.withFiberRuntime<AppendResult, AppendError>((fiber) => {
      const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
      const participants = StreamWrites.participants(writes)
      const events = StreamWrites.events(writes)
      const eventIds = events.map((event) => event.eventId?.toLowerCase() ?? uuidv7(now))
      const request = appendRequest(participants, events, eventIds)
      return queryThen(
        "append",
        () => options.run(statements.append, [request]),
        (rows): Effect.Effect<AppendResult, AppendError> => {
          const outcome = appendOutcome(parseReply(rows[0]?.[0]), participants, events, eventIds)
          return "streamVersions" in outcome ? Effect.succeed(outcome) : Effect.fail(outcome)
        },
        (error) => appendFailed(error, participants)
      )
    })

  /** Where a reader stands once it has read everything below the horizon (`horizonOf` in statements.ts). */
  const belowHorizon = (after: LogPosition.LogPosition, horizon: unknown) =>
    LogPosition.max(after, LogPosition.afterTransaction(BigInt(horizon as string) - 1n))

  const readLog = (
    after: LogPosition.LogPosition,
    limit: number,
    filter: LogFilter
  ): Effect.Effect<LogPage, StoreError> => {
    const { transaction, position } = LogPosition.parts(after)
    const from = [transaction.toString(), position.toString()]
    if (filter.eventTypes === undefined && filter.streamPrefix === undefined) {
      return readQuery("read_all", statements.readLog, [...from, limit]).pipe(
        Effect.map((rows) => {
          const events = rows.filter((row) => row[2] !== null).map((row) => eventAt(row))
          const [horizon, heldBack] = (rows[0] as ReadonlyArray<unknown>).slice(eventColumnCount)
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
        const events = rows.filter((row) => row[2] !== null).map((row) => eventAt(row))
        const first = rows[0] as ReadonlyArray<unknown>
        const [horizon, heldBack, scanned, lastTransaction, lastPosition] = first.slice(eventColumnCount)
        const last = events.at(-1)
        const page = (position: LogPosition.LogPosition, caughtUp: boolean): LogPage => ({
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

  const blockingTransaction = query("read_all", () => options.run(statements.blockingTransaction, [])).pipe(
    Effect.map((rows) => (rows[0] === undefined ? undefined : blockingTransactionOf(rows[0])))
  )

  const horizon = Effect.map(readQuery("read_all", statements.horizon, []), (rows) => BigInt(rows[0]?.[0] as string))

  // Two statements: the pairs from one scan of the table, then only their
  // samples read whole. Events are never removed, so every sample the first
  // found is there for the second.
  const storedTypes = Effect.flatMap(readQuery("stored_types", statements.storedTypes, []), (pairs) => {
    if (pairs.length === 0) return Effect.succeed([])
    const positionsOf = ([, , , oldest, newest]: ReadonlyArray<unknown>) =>
      oldest === newest ? [oldest as string] : [oldest as string, newest as string]
    return Effect.map(
      readQuery("stored_types", statements.eventsAt, [`{${pairs.flatMap(positionsOf).join(",")}}`]),
      (rows) => {
        const samples = new Map(rows.map((row) => [String(row[1]), eventAt(row)]))
        return pairs.map(
          (pair): StoredEventType => ({
            eventType: pair[0] as string,
            schemaVersion: pair[1] as number,
            count: Number(pair[2]),
            samples: positionsOf(pair).map((position) => samples.get(position) as RecordedEvent)
          })
        )
      }
    )
  })

  // On the primary, as the append: a command's read must see what its append will check.
  const onPrimary = (operation: string, statement: string, params: ReadonlyArray<unknown>) =>
    query(operation, () => options.run(statement, params))

  return fromOperations({
    snapshots: Snapshots.make(options.schema, onPrimary),
    keys: options.keys ?? PersonalData.keyStore(options.schema, onPrimary),
    erase: PersonalData.erase(options.schema, onPrimary),
    lifecycle: Lifecycle.make(options.schema, onPrimary),
    attributes: { "db.system": "postgresql" },
    read,
    append,
    readLog,
    blockingTransaction,
    horizon,
    storedTypes,
    ...(options.sessions === undefined
      ? {}
      : { checkpoints: Checkpoints.make(options.schema, options.sessions, options.run) }),
    polling: { min: "20 millis", max: "200 millis" }
  })
}

/** What a SQL store's layer provides: the store and, for projections that write read models, its `ReadModelStore`. */
export const layerContext = (
  store: EventStore.EventStore & StoreExtras
): Context.Context<EventStore.EventStore | ReadModelStore> => {
  const checkpoints = store[checkpointsKey]
  // A defect of eventcore's own: both drivers give their stores sessions.
  if (checkpoints === undefined) throw new Error("eventcore: a SQL store's layer needs sessions for its checkpoints")
  return Context.make(EventStore.EventStore, store).pipe(Context.add(ReadModelStore, checkpoints))
}
