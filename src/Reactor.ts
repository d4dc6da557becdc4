/**
 * Reactors: side effects outside the database (email, HTTP, other systems,
 * commands) run for each event of the global log, at least once.
 *
 * A reactor's handler runs first and its checkpoint moves after it succeeded:
 * a crash in between runs the handler again for the same event, so handlers
 * must tolerate a repeat (an idempotency key such as `recorded.eventId`). It
 * shares the projections' ownership (one active instance per name), retries
 * and failure rules. A reactor that runs commands passes `causedBy: recorded`
 * to `execute`, so its events carry the correlation and causation ids.
 */
import { Effect, type Schema } from "effect"
import type { RecordedEvent } from "./Event.js"
import * as EventStore from "./EventStore.js"
import type { ProjectionFailed, StoreError } from "./errors.js"
import * as Runner from "./internal/runner.js"

export interface Reactor<E, I, Err, R> {
  readonly _tag: "Reactor"
  readonly name: string
  readonly event: Schema.Schema<E, I>
  readonly filter?: { readonly streamPrefix?: string }
  readonly handle: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R>
}

/** A reactor named `name` (unique among the store's projections and reactors) for the events of `event`. */
export const make = <E extends { readonly _tag: string }, I, Err = never, R = never>(options: {
  readonly name: string
  readonly event: Schema.Schema<E, I>
  readonly filter?: { readonly streamPrefix?: string }
  readonly handle: (event: E, recorded: RecordedEvent) => Effect.Effect<void, Err, R>
}): Reactor<E, I, Err, R> => {
  Runner.checkDeclared("Reactor", options)
  return { _tag: "Reactor", ...options }
}

export type RunOptions = Runner.RunOptions

/**
 * Follows the global log from the reactor's checkpoint until interrupted,
 * handling each event and then moving the checkpoint past it; one instance per
 * name is active across processes, the others stand by.
 */
export const run = <E, I, Err, R>(
  reactor: Reactor<E, I, Err, R>,
  options?: RunOptions
): Effect.Effect<never, ProjectionFailed | StoreError, EventStore.EventStore | R> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const checkpoints = yield* Runner.checkpointsOf(store)
    return yield* Runner.run(
      {
        ...Runner.declaredHandler("reactor", reactor),
        handleBatch: Runner.eachEvent((event, recorded) => reactor.handle(event, recorded))
      },
      checkpoints,
      store,
      options
    )
  })
