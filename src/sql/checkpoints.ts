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
import { Effect } from "effect"
import { instanceName, standbyPoll, statusRows } from "../internal/checkpoints.js"
import {
  CheckpointMoved,
  type CheckpointStore,
  type DeadLetter,
  type LogFilter,
  type Ownership,
  type ProjectionKind,
  type ProjectionStatus,
  type ReadModelDatabase,
  type Standby,
  WriteAtCommitFailed
} from "../internal/storeContract.js"
import * as LogPosition from "../LogPosition.js"
import { ClosingFailed, type RunStatement, type Sessions } from "./driver.js"
import { driverError, SqlState, storeError } from "./errors.js"
import { toDate } from "./rows.js"
import { checkpointStatements } from "./statements.js"

/** The lock of a name, per schema: projections and reactors share one namespace (their checkpoint table's). */
export const nameLock = (schema: string, name: string) => `eventcore:${schema}:${name}`

/** The lock an instance standing by holds while it lives: instance names are unique. */
const standbyLock = (schema: string, instance: string) => `eventcore-standby:${schema}:${instance}`

/** A log filter's columns: its event types as a JSON array, its stream prefix; null for every type, every stream. */
const filterColumns = (filter: LogFilter) => [
  filter.eventTypes === undefined ? null : JSON.stringify(filter.eventTypes),
  filter.streamPrefix ?? null
]

/**
 * The checkpoints of the store in `schema`: instances run on `sessions` of
 * their own; `runOnPool` answers what anyone may ask (status, checkpoints,
 * dead letters) on the store's pool.
 */
export const make = (schema: string, sessions: Sessions, runOnPool: RunStatement): CheckpointStore => {
  const statements = checkpointStatements(schema)
  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) })

  const own = (name: string, kind: ProjectionKind, filter: LogFilter) =>
    Effect.gen(function* () {
      const owner = instanceName()
      const session = yield* sessions.open
      const run = (statement: string, params: ReadonlyArray<unknown>) =>
        attempt("projection", () => session.run(statement, params))
      yield* run(statements.ensure, [name, kind, LogPosition.start, ...filterColumns(filter)])
      if (!(yield* sessions.tryLock(session, nameLock(schema, name)))) {
        // Stand by until no other instance owns the name, saying so.
        yield* sessions.tryLock(session, standbyLock(schema, owner))
        const entries = (yield* run(statements.standbys, [name])).map((row) => row[0] as string)
        const live = yield* sessions.isLocked(entries.map((instance) => standbyLock(schema, instance)))
        const ended = entries.filter((_, i) => live[i] !== true)
        yield* run(statements.standBy, [name, owner, JSON.stringify(ended)])
        yield* Effect.gen(function* () {
          while (!(yield* sessions.tryLock(session, nameLock(schema, name)))) yield* Effect.sleep(standbyPoll)
        }).pipe(Effect.onError(() => Effect.ignore(run(statements.leave, [name, owner]))))
      }
      yield* run(statements.start, [name, owner, ...filterColumns(filter)])
      yield* Effect.addFinalizer(() => Effect.ignore(run(statements.stop, [name, owner])))

      const ownership: Ownership = {
        checkpoint: Effect.map(run(statements.checkpoint, [name]), (rows) => rows[0]?.[0] as LogPosition.LogPosition),
        commit: (from, to, body, deadLetter) => {
          // How many closing statements are the batch's own: they come first.
          let written = 0
          return session
            .transaction(body, (statementsOfBatch) => {
              written = statementsOfBatch?.length ?? 0
              return [
                ...(statementsOfBatch ?? []),
                ...(deadLetter === undefined
                  ? []
                  : [
                      [
                        statements.deadLetter,
                        [name, deadLetter.eventId, deadLetter.position, deadLetter.eventType, deadLetter.error]
                      ] as const
                    ]),
                [statements.advance, [name, from, to, owner]] as const
              ]
            })
            .pipe(
              Effect.asVoid,
              Effect.mapError((error) => {
                if (!(error instanceof ClosingFailed)) return error
                if (error.index < written) return new WriteAtCommitFailed(error.cause)
                // Of eventcore's own, the compare-and-set fails on purpose: the checkpoint moved.
                return driverError(error.cause).code === SqlState.divisionByZero
                  ? new CheckpointMoved({ name })
                  : storeError("projection", error.cause)
              })
            )
        },
        fail: (error) => Effect.asVoid(run(statements.fail, [name, error]))
      }
      return ownership
    })

  const reset = <E, R>(
    name: string,
    kind: ProjectionKind,
    filter: LogFilter,
    body: (db: ReadModelDatabase | undefined) => Effect.Effect<void, E, R>
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
    const rows = yield* attempt("projection", () => runOnPool(statements.statuses, []))
    const standbys = rows.map((row) =>
      Object.entries(JSON.parse(row[8] as string) as Record<string, string>).map(
        ([instance, since]): Standby => ({ instance, since: new Date(since) })
      )
    )
    const live = yield* sessions.isLocked([
      ...rows.map((row) => nameLock(schema, row[0] as string)),
      ...standbys.flat().map(({ instance }) => standbyLock(schema, instance))
    ])
    // The standbys' locks follow the names' in `live`, in the same order.
    let nextStandby = rows.length
    return rows.flatMap(([name, kind, status, position, owner, updatedAt, error, lag], i) => {
      const running = live[i] === true
      const row: ProjectionStatus = {
        name: name as string,
        kind: kind as ProjectionKind,
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
        (standbys[i] ?? []).filter(() => live[nextStandby++] === true)
      )
    })
  })

  return {
    transactional: true,
    own,
    checkpointOf: (name) =>
      Effect.map(
        attempt("projection", () => runOnPool(statements.checkpoint, [name])),
        (rows) => rows[0]?.[0] as LogPosition.LogPosition | undefined
      ),
    reset,
    statuses,
    deadLetters: (name) =>
      Effect.map(
        attempt("projection", () => runOnPool(statements.deadLetters, [name])),
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
