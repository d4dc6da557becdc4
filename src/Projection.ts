/**
 * Projections: read models in the application's own Drizzle tables, updated
 * from the global log exactly once.
 *
 * A projection handles the events of its schema in batches; what its handler
 * writes through `ReadModel` (a Drizzle database bound to the batch's
 * transaction) commits together with the projection's checkpoint, or not at
 * all. One instance per name runs at a time, across processes; the others
 * stand by and take over when it ends. See docs/projections.md.
 */

import type { PgTable } from "drizzle-orm/pg-core"
import { type Duration, Effect, Schedule, type Schema } from "effect"
import type { RecordedEvent } from "./Event.js"
import * as EventStore from "./EventStore.js"
import { type ProjectionFailed, ProjectionTimeout, type StoreError } from "./errors.js"
import * as RowProjection from "./internal/rowProjection.js"
import * as Runner from "./internal/runner.js"
import type { DeadLetter, ProjectionStatus, ReadModelDatabase } from "./internal/storeContract.js"
import type { LogPosition } from "./LogPosition.js"
import { ReadModel, ReadModelStore } from "./ReadModel.js"

export type { DeadLetter, ProjectionStatus }
export { ReadModel, ReadModelStore }

/** An event of a batch: today's event, and the stored event it came from. */
export interface BatchEvent<E> {
  readonly event: E
  readonly recorded: RecordedEvent
}

export interface Projection<E, I, Err, R> {
  readonly _tag: "Projection"
  readonly name: string
  readonly event: Schema.Schema<E, I>
  readonly filter?: { readonly streamPrefix?: string }
  /** Applies one event (a projection has `handle` or `handleBatch`). */
  readonly handle?: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R>
  /** Applies a batch's events at once, in log order. */
  readonly handleBatch?: (events: ReadonlyArray<BatchEvent<E>>) => Effect.Effect<void, Err, R>
  readonly reset?: Effect.Effect<void, Err, R>
}

/**
 * A projection named `name` (unique among the store's projections and
 * reactors) of the events of the `event` schema (a union of tagged structs;
 * only their types are read from the log). `handle` applies each event, or
 * `handleBatch` a batch's events at once (for batched SQL of your own; a
 * failure of it is found by splitting the batch); `reset` empties the read
 * model for a rebuild. For a table of one row per key, `rows` is both simpler
 * and faster.
 */
export function make<E extends { readonly _tag: string }, I, Err = never, R = never>(
  options: Definition<E, I, Err, R> & {
    readonly handle: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R>
    readonly handleBatch?: never
  }
): Projection<E, I, Err, R> & { readonly handle: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R> }
export function make<E extends { readonly _tag: string }, I, Err = never, R = never>(
  options: Definition<E, I, Err, R> & {
    readonly handleBatch: (events: ReadonlyArray<BatchEvent<E>>) => Effect.Effect<void, Err, R>
    readonly handle?: never
  }
): Projection<E, I, Err, R>
export function make<E extends { readonly _tag: string }, I, Err, R>(
  options: Definition<E, I, Err, R> & {
    readonly handle?: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R>
    readonly handleBatch?: (events: ReadonlyArray<BatchEvent<E>>) => Effect.Effect<void, Err, R>
  }
): Projection<E, I, Err, R> {
  Runner.checkDeclared("Projection", options)
  if ((options.handle === undefined) === (options.handleBatch === undefined)) {
    throw new TypeError(`Projection ${JSON.stringify(options.name)}: give it either handle or handleBatch`)
  }
  return { _tag: "Projection", ...options }
}

/** What every projection declares: its name, its events, and how to empty its read model. */
interface Definition<E, I, Err, R> {
  readonly name: string
  readonly event: Schema.Schema<E, I>
  readonly filter?: { readonly streamPrefix?: string }
  readonly reset?: Effect.Effect<void, Err, R>
}

/**
 * A projection into one table of the application's, one row per key: `key`
 * names the row an event changes (the value of the table's one-column primary
 * key; undefined: no row), `evolve` returns that row after the event (from
 * undefined for a row not there yet; undefined deletes it). Both must be pure
 * and synchronous. Per batch, eventcore loads every row the events touch in
 * one query, folds the events into them in memory, and writes every change in
 * one statement with the checkpoint; a rebuild deletes every row of the
 * table. Throws a `TypeError` for a table without a one-column primary key.
 *
 * ```ts
 * const Balances = Projection.rows({
 *   name: "balances",
 *   event: AccountEvent,
 *   table: balances,
 *   key: (_, recorded) => recorded.streamId,
 *   evolve: (row, event, recorded) => ({ account: recorded.streamId, cents: (row?.cents ?? 0) + change(event) })
 * })
 * ```
 */
export const rows = <E extends { readonly _tag: string }, I, T extends PgTable, K>(
  options: RowProjection.RowFold<E, T, K> & {
    readonly event: Schema.Schema<E, I>
    readonly filter?: { readonly streamPrefix?: string }
  }
): Projection<E, I, StoreError, ReadModel> => {
  Runner.checkDeclared("Projection", options)
  const fold = RowProjection.make(options)
  const withDb = <A, Err>(f: (db: ReadModelDatabase) => Effect.Effect<A, Err>) =>
    Effect.flatMap(ReadModel, ({ db }) => f(db))
  return {
    _tag: "Projection",
    name: options.name,
    event: options.event,
    ...(options.filter === undefined ? {} : { filter: options.filter }),
    // An evolve that throws fails with the runner's EventFailure, naming its event: the runner
    // splits the batch there and never reports the wrapper itself.
    handleBatch: (events) => withDb((db) => fold.handleBatch(events, db) as Effect.Effect<void, StoreError>),
    reset: withDb(fold.reset).pipe(Effect.asVoid),
    [RowProjection.writesAtCommitKey]: fold.writesAtCommit
  } as Projection<E, I, StoreError, ReadModel>
}

export type RunOptions = Runner.RunOptions

/** A ReadModel projection needs a SQL store; one without needs only an `EventStore`. */
export type StoreOf<R> = [Extract<R, ReadModel>] extends [never] ? never : ReadModelStore

const handlerOf = <E, I, Err, R>(
  projection: Projection<E, I, Err, R>
): Runner.Handler<E, Err, Exclude<R, ReadModel>> => {
  const withReadModel = <A, X>(effect: Effect.Effect<A, X, R>, db: ReadModelDatabase | undefined) =>
    (db === undefined ? effect : Effect.provideService(effect, ReadModel, { db })) as Effect.Effect<
      A,
      X,
      Exclude<R, ReadModel>
    >
  const { handle, handleBatch } = projection
  const writesAtCommit = (
    projection as { readonly [RowProjection.writesAtCommitKey]?: Runner.Handler<E, Err, never>["handleBatch"] }
  )[RowProjection.writesAtCommitKey]
  return {
    ...Runner.declaredHandler("projection", projection),
    ...(writesAtCommit !== undefined
      ? { handleBatch: writesAtCommit, batchSize: Runner.batchHandlerSize }
      : handleBatch !== undefined
        ? {
            // Whatever the application's Effect returns (TypeScript lets an Effect<number> be an
            // Effect<void>) is not statements for the commit: only a row projection leaves those.
            handleBatch: (events, db) => Effect.asVoid(withReadModel(handleBatch(events), db)),
            batchSize: Runner.batchHandlerSize
          }
        : {
            handleBatch: Runner.eachEvent((event, recorded, db) =>
              withReadModel((handle as NonNullable<typeof handle>)(event, recorded), db)
            )
          })
  }
}

/**
 * Follows the global log from the projection's checkpoint, one transaction per
 * batch, until interrupted; only one instance per name is active across
 * processes, the others stand by. Fails with `ProjectionFailed` when an
 * event's handling keeps failing (`onError: "stop"`, the default).
 */
export const run = <E, I, Err, R>(
  projection: Projection<E, I, Err, R>,
  options?: RunOptions
): Effect.Effect<never, ProjectionFailed | StoreError, EventStore.EventStore | Exclude<R, ReadModel> | StoreOf<R>> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const checkpoints = yield* Runner.checkpointsOf(store)
    return yield* Runner.run(handlerOf(projection), checkpoints, store, options)
  })

/**
 * Starts the projection over: in one transaction, moves its checkpoint back to
 * the start of the log and runs `reset`; an instance running it sees its
 * checkpoint moved and replays from the start.
 */
export const rebuild = <E, I, Err, R>(
  projection: Projection<E, I, Err, R>
): Effect.Effect<void, Err | StoreError, EventStore.EventStore | Exclude<R, ReadModel> | StoreOf<R>> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const checkpoints = yield* Runner.checkpointsOf(store)
    yield* checkpoints.reset(projection.name, "projection", Runner.logFilterOf(projection), (db) => {
      const reset = projection.reset ?? Effect.void
      return (db === undefined ? reset : Effect.provideService(reset, ReadModel, { db })) as Effect.Effect<
        void,
        Err,
        Exclude<R, ReadModel>
      >
    })
    // An instance of this process running it replays at once; others within a second.
    yield* Runner.committed.notify
  })

/**
 * Completes once the projection (or reactor) has handled every event of its
 * own up to `position`, e.g. the position of the last event `execute` wrote,
 * or a head `readAll` returned: read your writes. That is when its checkpoint
 * has passed `position`, or when no event it handles lies between its
 * checkpoint and `position` and the log is readable that far (a projection
 * does not write a checkpoint for every stretch of the log without its
 * events). Given only a name, every event counts as its own. Fails with
 * `ProjectionTimeout` after `timeout` (default 10 seconds).
 */
export const waitFor = (
  projection: {
    readonly name: string
    readonly event?: Schema.Schema.AnyNoContext
    readonly filter?: { readonly streamPrefix?: string }
  },
  position: LogPosition,
  options: { readonly timeout?: Duration.DurationInput } = {}
): Effect.Effect<void, ProjectionTimeout | StoreError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const checkpoints = yield* Runner.checkpointsOf(store)
    const filter = Runner.logFilterOf(projection)
    const handledUpTo = Effect.gen(function* () {
      const checkpoint = yield* checkpoints.checkpointOf(projection.name)
      if (checkpoint === undefined) return false
      if (checkpoint >= position) return true
      let after = checkpoint
      for (;;) {
        const next = yield* store.readAll({ after, maxCount: 1, filter })
        const first = next.events[0]
        if (first !== undefined) return first.position > position
        if (next.caughtUp || next.position >= position) return next.position >= position
        after = next.position
      }
    })
    yield* Runner.waitUntil(
      handledUpTo.pipe(
        Effect.catchTag("InvalidReadOptions", (error) => Effect.die(error)),
        // A look on a pooled connection the server has closed since its last use fails once and opens a
        // fresh one: look again rather than fail the whole wait. A server that stays away still fails it.
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 3 })
      ),
      options.timeout ?? "10 seconds",
      () => new ProjectionTimeout({ projection: projection.name, position })
    )
  })

/**
 * Every projection and reactor the store has a checkpoint for, by name, each
 * followed by a `standby` row for every instance standing by to take it over
 * (in any process). Needs no definitions: what it reports is in the store.
 */
export const status: Effect.Effect<ReadonlyArray<ProjectionStatus>, StoreError, EventStore.EventStore> = Effect.flatMap(
  Effect.flatMap(EventStore.EventStore, Runner.checkpointsOf),
  (checkpoints) => checkpoints.statuses
)

/** The events a projection or reactor skipped (`onError: "skip"`), with their errors, oldest first. */
export const deadLetters = (projection: {
  readonly name: string
}): Effect.Effect<ReadonlyArray<DeadLetter>, StoreError, EventStore.EventStore> =>
  Effect.flatMap(Effect.flatMap(EventStore.EventStore, Runner.checkpointsOf), (checkpoints) =>
    checkpoints.deadLetters(projection.name)
  )
