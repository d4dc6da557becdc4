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
  type StatusRow,
  standbyPoll
} from "../internal/projections.js"
import * as LogPosition from "../LogPosition.js"
import { ReadModelStore } from "../Projection.js"
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
    ensure: `insert into ${projections} (name, kind, position, status) values ($1, $2, $3, 'stopped') on conflict (name) do nothing`,
    start: `update ${projections} set status = 'running', owner = $2, updated_at = now() where name = $1 returning position`,
    checkpoint: `select position from ${projections} where name = $1`,
    /** The compare-and-set: moves only from the position the batch started at. */
    advance: `update ${projections} set position = $3, status = 'running', owner = $4, error = null, updated_at = now()
      where name = $1 and position = $2 returning 1`,
    deadLetter: `insert into ${quoted(schema)}.dead_letters (projection, event_id, position, event_type, error) values ($1, $2, $3, $4, $5)`,
    fail: `update ${projections} set status = 'failed', error = $2, updated_at = now() where name = $1`,
    stop: `update ${projections} set status = 'stopped', updated_at = now() where name = $1 and owner = $2 and status = 'running'`,
    /** A rebuild: back to the start; an instance running it fails its next compare-and-set and replays. */
    reset: `insert into ${projections} (name, kind, position, status) values ($1, $2, $3, 'stopped')
      on conflict (name) do update set position = excluded.position, error = null, updated_at = now()`,
    statuses: `select name, kind, status, position, owner, updated_at, error from ${projections} order by name`,
    lag: `select count(*)::int from ${quoted(schema)}.events where (transaction_id, global_position) > ($1::text::xid8, $2::bigint)`,
    deadLetters: `select event_id, position, event_type, error from ${quoted(schema)}.dead_letters where projection = $1 order by id`
  }
}

/** The lock of a name, per schema: projections and reactors share one namespace (their checkpoint table's). */
export const lockKey = (schema: string, name: string) => `eventcore:${schema}:${name}`

const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string))

export const make = (schema: string, sessions: Sessions, countRun: Run): ProjectionBackend => {
  const statements = statementsIn(schema)
  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) })

  const own = (name: string, kind: Kind) =>
    Effect.gen(function* () {
      const owner = instanceName()
      const session = yield* sessions.open
      const run = (statement: string, params: ReadonlyArray<unknown>) =>
        attempt("projection", () => session.run(statement, params))
      yield* run(statements.ensure, [name, kind, LogPosition.start])
      // Stand by until no other instance owns the name.
      while (!(yield* sessions.tryLock(session, lockKey(schema, name)))) yield* Effect.sleep(standbyPoll)
      yield* run(statements.start, [name, owner])
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

  const reset = <E, R>(name: string, kind: Kind, body: (db: Database | undefined) => Effect.Effect<void, E, R>) =>
    Effect.scoped(
      Effect.flatMap(sessions.open, (session) =>
        session.transaction((db, run) =>
          // The checkpoint's row lock first: a batch in flight commits before, or fails after.
          Effect.zipRight(
            attempt("projection", () => run(statements.reset, [name, kind, LogPosition.start])),
            body(db)
          )
        )
      )
    )

  const statuses = Effect.gen(function* () {
    const rows = yield* attempt("projection", () => countRun(statements.statuses, []))
    const live = yield* sessions.isLocked(rows.map((row) => lockKey(schema, row[0] as string)))
    return rows.map(([name, kind, status, position, owner, updatedAt, error], i): StatusRow => {
      const running = live[i] === true
      return {
        name: name as string,
        kind: kind as Kind,
        // A row left "running" by an instance that died says so no longer.
        status: running ? "running" : status === "failed" ? "failed" : "stopped",
        position: position as LogPosition.LogPosition,
        ...(running && owner !== null ? { owner: owner as string } : {}),
        updatedAt: toDate(updatedAt),
        ...(error === null ? {} : { error: error as string })
      }
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
    lag: (position) => {
      const { transaction, position: global } = LogPosition.parts(position)
      return Effect.map(
        attempt("projection", () => countRun(statements.lag, [transaction.toString(), global.toString()])),
        (rows) => Number(rows[0]?.[0] ?? 0)
      )
    },
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
