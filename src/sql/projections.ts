/**
 * Projections and reactors on the SQL stores: checkpoints in
 * `<schema>.projections`, dead letters in `<schema>.dead_letters`, one active
 * instance per name.
 *
 * An instance owns a name by holding a session-level advisory lock on a
 * connection of its own (PostgreSQL), and runs every batch on that same
 * connection: losing the connection loses the lock and the right to commit at
 * once, and another instance takes over. The checkpoint moves by
 * compare-and-set in the transaction of the batch, so even two instances that
 * both believed they owned the name could never commit one batch twice. PGlite
 * has one session, shared by everyone in the process (and one process per data
 * directory): there, ownership is kept in process.
 *
 * An instance standing by says so in the checkpoint's row (`standbys`), and
 * holds a lock of its own for as long as it lives: status reports an entry
 * only while its lock is held, so an instance that died standing by is not
 * reported, wherever status is asked.
 */
import { Context, Deferred, Effect, Exit, type Scope } from "effect"
import * as EventStore from "../EventStore.js"
import type { StoreError } from "../errors.js"
import {
  type DeadLetter,
  Deposed,
  instanceName,
  type Kind,
  type Owned,
  type ProjectionBackend,
  type Standby,
  standbyPoll,
  statusRows
} from "../internal/projections.js"
import * as LogPosition from "../LogPosition.js"
import { type ProjectionStatus, ReadModelStore } from "../Projection.js"
import { storeError } from "./errors.js"
import type { Database } from "./SqlEventStore.js"

/** A SQL store's layer context: the store and, for projections that write read models, its `ReadModelStore`. */
export const storeContext = (store: EventStore.EventStore) =>
  Context.make(EventStore.EventStore, store).pipe(
    Context.add(ReadModelStore, store[EventStore.projectionBackend] as ProjectionBackend)
  )

/** Runs a statement on a session, returning rows as arrays. */
export type Run = (statement: string, params: ReadonlyArray<unknown>) => Promise<ReadonlyArray<ReadonlyArray<unknown>>>

/** A database session of an instance's own. */
export interface Session {
  readonly run: Run
  /** Runs `body` in a transaction of the session: committed if it succeeds, rolled back otherwise. */
  readonly transaction: <A, E, R>(
    body: (db: Database, run: Run) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | StoreError, R>
}

export interface Sessions {
  /** A session for the scope: PostgreSQL reserves a pool connection, PGlite shares its only one. */
  readonly open: Effect.Effect<Session, StoreError, Scope.Scope>
  /**
   * Takes the name's lock on `session`, if free: an advisory lock on
   * PostgreSQL (freed with the session), a registry of the process on PGlite.
   */
  readonly tryLock: (session: Session, key: string) => Effect.Effect<boolean, StoreError, Scope.Scope>
  /** Whether `key`'s lock is held, by any instance: SQL text yielding a boolean for key `$1`, or a registry check. */
  readonly isLocked: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<boolean>, StoreError>
}

const quoted = (schema: string) => `"${schema.replaceAll('"', '""')}"`

const statementsIn = (schema: string) => {
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
    /** The compare-and-set: moves only from the position the batch started at. */
    advance: `update ${projections} set position = $3, status = 'running', owner = $4, error = null, updated_at = now()
      where name = $1 and position = $2 returning 1`,
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

/** The lock of a name, per schema: projections and reactors share one namespace (their checkpoint table's). */
export const lockKey = (schema: string, name: string) => `eventcore:${schema}:${name}`

/** The lock an instance standing by holds while it lives: instance names are unique. */
const standbyKey = (schema: string, instance: string) => `eventcore-standby:${schema}:${instance}`

/** A log filter's columns: its event types as a JSON array, its stream prefix; null for every type, every stream. */
const filterColumns = (filter: EventStore.LogFilter) => [
  filter.eventTypes === undefined ? null : JSON.stringify(filter.eventTypes),
  filter.streamPrefix ?? null
]

const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string))

export const make = (schema: string, sessions: Sessions, countRun: Run): ProjectionBackend => {
  const statements = statementsIn(schema)
  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) })

  const own = (name: string, kind: Kind, filter: EventStore.LogFilter) =>
    Effect.gen(function* () {
      const owner = instanceName()
      const session = yield* sessions.open
      const run = (statement: string, params: ReadonlyArray<unknown>) =>
        attempt("projection", () => session.run(statement, params))
      yield* run(statements.ensure, [name, kind, LogPosition.start, ...filterColumns(filter)])
      if (!(yield* sessions.tryLock(session, lockKey(schema, name)))) {
        // Stand by until no other instance owns the name, saying so.
        yield* sessions.tryLock(session, standbyKey(schema, owner))
        const entries = (yield* run(statements.standbys, [name])).map((row) => row[0] as string)
        const live = yield* sessions.isLocked(entries.map((instance) => standbyKey(schema, instance)))
        const ended = entries.filter((_, i) => live[i] !== true)
        yield* run(statements.standBy, [name, owner, JSON.stringify(ended)])
        yield* Effect.gen(function* () {
          while (!(yield* sessions.tryLock(session, lockKey(schema, name)))) yield* Effect.sleep(standbyPoll)
        }).pipe(Effect.onError(() => Effect.ignore(run(statements.leave, [name, owner]))))
      }
      yield* run(statements.start, [name, owner, ...filterColumns(filter)])
      yield* Effect.addFinalizer(() => Effect.ignore(run(statements.stop, [name, owner])))

      const owned: Owned = {
        checkpoint: Effect.map(run(statements.checkpoint, [name]), (rows) => rows[0]?.[0] as LogPosition.LogPosition),
        commit: <A, E, R>(
          from: LogPosition.LogPosition,
          to: LogPosition.LogPosition,
          body: (db: Database | undefined) => Effect.Effect<A, E, R>,
          deadLetter?: DeadLetter
        ) =>
          session.transaction((db, inTransaction) =>
            Effect.gen(function* () {
              const result = yield* body(db)
              const sql = (statement: string, params: ReadonlyArray<unknown>) =>
                attempt("projection", () => inTransaction(statement, params))
              if (deadLetter !== undefined) {
                yield* sql(statements.deadLetter, [
                  name,
                  deadLetter.eventId,
                  deadLetter.position,
                  deadLetter.eventType,
                  deadLetter.error
                ])
              }
              const moved = yield* sql(statements.advance, [name, from, to, owner])
              if (moved.length === 0) return yield* new Deposed({ name })
              return result
            })
          ),
        fail: (error) => Effect.asVoid(run(statements.fail, [name, error]))
      }
      return owned
    })

  const reset = <E, R>(
    name: string,
    kind: Kind,
    filter: EventStore.LogFilter,
    body: (db: Database | undefined) => Effect.Effect<void, E, R>
  ) =>
    Effect.scoped(
      Effect.flatMap(sessions.open, (session) =>
        session.transaction((db, run) =>
          // The checkpoint's row lock first: a batch in flight commits before, or fails after.
          Effect.zipRight(
            attempt("projection", () =>
              run(statements.reset, [name, kind, LogPosition.start, ...filterColumns(filter)])
            ),
            body(db)
          )
        )
      )
    )

  const statuses = Effect.gen(function* () {
    const rows = yield* attempt("projection", () => countRun(statements.statuses, []))
    const standbys = rows.map((row) =>
      Object.entries(JSON.parse(row[8] as string) as Record<string, string>).map(
        ([instance, since]): Standby => ({ instance, since: new Date(since) })
      )
    )
    const live = yield* sessions.isLocked([
      ...rows.map((row) => lockKey(schema, row[0] as string)),
      ...standbys.flat().map(({ instance }) => standbyKey(schema, instance))
    ])
    // The standbys' locks follow the names' in `live`, in the same order.
    let standbyLock = rows.length
    return rows.flatMap(([name, kind, status, position, owner, updatedAt, error, lag], i) => {
      const running = live[i] === true
      const row: ProjectionStatus = {
        name: name as string,
        kind: kind as Kind,
        // A row left "running" by an instance that died says so no longer.
        status: running ? "running" : status === "failed" ? "failed" : "stopped",
        position: position as LogPosition.LogPosition,
        lag: Number(lag),
        ...(running && owner !== null ? { owner: owner as string } : {}),
        updatedAt: toDate(updatedAt),
        ...(error === null ? {} : { error: error as string })
      }
      // Entries left by instances that ended are not reported.
      return statusRows(
        row,
        (standbys[i] ?? []).filter(() => live[standbyLock++] === true)
      )
    })
  })

  return {
    transactional: true,
    own,
    checkpointOf: (name) =>
      Effect.map(
        attempt("projection", () => countRun(statements.checkpoint, [name])),
        (rows) => rows[0]?.[0] as LogPosition.LogPosition | undefined
      ),
    reset,
    statuses,
    deadLetters: (name) =>
      Effect.map(
        attempt("projection", () => countRun(statements.deadLetters, [name])),
        (rows) =>
          rows.map(
            ([eventId, position, eventType, error]): DeadLetter => ({
              eventId: eventId as string,
              position: position as LogPosition.LogPosition,
              eventType: eventType as string,
              error: error as string
            })
          )
      )
  }
}

/**
 * A transaction as an Effect, for drivers that only offer one as a callback
 * (PGlite's `transaction`): the callback hands its transaction over, waits for
 * the body's outcome, and commits or rolls back with it.
 */
export const bridgeTransaction = <Tx, A, E, R>(
  open: (callback: (tx: Tx) => Promise<void>) => Promise<void>,
  body: (tx: Tx) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | StoreError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const ready = yield* Deferred.make<Tx, StoreError>()
      const outcome = yield* Deferred.make<boolean>()
      const finished = open(async (tx) => {
        Deferred.unsafeDone(ready, Exit.succeed(tx))
        const commit = await Effect.runPromise(Deferred.await(outcome))
        // Rejecting rolls the transaction back.
        if (!commit) throw rollback
      })
      // A transaction that could not begin rejects before handing itself over.
      finished.catch((error) => Deferred.unsafeDone(ready, Exit.fail(storeError("projection", error))))
      const settled = Effect.tryPromise({ try: () => finished, catch: (error) => error })
      const tx = yield* Deferred.await(ready)
      const exit = yield* Effect.exit(restore(body(tx)))
      yield* Deferred.succeed(outcome, Exit.isSuccess(exit))
      const ended = yield* Effect.either(settled)
      if (ended._tag === "Left" && ended.left !== rollback) {
        return yield* Effect.fail(storeError("projection", ended.left))
      }
      return yield* exit
    })
  )

const rollback = new Error("eventcore: rolled back")
