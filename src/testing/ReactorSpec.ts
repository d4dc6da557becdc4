/**
 * Given / then for an application's reactors: given events in the log, the
 * reactor runs (`Reactor.run`, as in production) until its checkpoint passed
 * them, then the events the commands it ran appended are what the spec says,
 * or a check of your own holds (an email service of the test's, say).
 *
 * ```ts
 * it.effect("a large deposit opens a review", () =>
 *   ReactorSpec.make(Reviews)
 *     .given({ "account-alice": [MoneyDeposited.make({ amount: 20_000_00 })] })
 *     .thenAppended(ReviewEvent, { "review-alice": [ReviewOpened.make({ amount: 20_000_00 })] }))
 * ```
 */
import { type Duration, Effect, type Layer, type Schema } from "effect"
import { expect } from "vitest"
import type { RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import * as InMemoryEventStore from "../InMemoryEventStore.js"
import * as Reactor from "../Reactor.js"
import { handledUpTo, runOptions } from "./follow.js"
import {
  atCallSite,
  callSite,
  describeError,
  type EventsSchema,
  type Given,
  headOf,
  onLiveClock,
  type StoredEvent,
  type Streams,
  storeGiven,
  todaysEvents
} from "./given.js"
import type { Database } from "./TestStore.js"

export interface Options {
  /** The store, built afresh for each run of the spec (default `InMemoryEventStore.layer`). */
  readonly layer?: Layer.Layer<EventStore.EventStore, unknown>
  /** How long to wait for the reactor to handle the given events (default 10 seconds). */
  readonly timeout?: Duration.DurationInput
  /**
   * How the reactor runs (`Reactor.run`'s options). By default a failing event is
   * tried twice more at once, not five times over 3 seconds as in production:
   * the spec reports a failing handler at once.
   */
  readonly run?: Reactor.RunOptions
}

export interface ReactorSpec<E, R> {
  /** Events on named streams, encoded as `execute` encodes them, appended in one append per call, in order. */
  readonly given: (streams: Streams<E>) => ReactorSpec<E, R>
  /** Events as the store keeps them (type, schema version, JSON), as an older release wrote them. */
  readonly givenStored: (streams: Streams<StoredEvent>) => ReactorSpec<E, R>
  /**
   * Runs the reactor until it handled the given events, then compares what
   * it appended (the events of the commands it ran, read as `schema`'s
   * today's events) with `expected`, by stream.
   */
  readonly thenAppended: <X extends { readonly _tag: string }, XI>(
    schema: Schema.Schema<X, XI>,
    expected: Streams<X>
  ) => Effect.Effect<void, never, R>
  /** Runs the reactor until it handled the given events, then `check` (with the spec's `EventStore`). */
  readonly thenExpect: <A, X, R2>(
    check: Effect.Effect<A, X, R2>
  ) => Effect.Effect<A, never, R | Exclude<R2, EventStore.EventStore | Database>>
}

/** A spec of `reactor`, on a store of its own for each run (in memory unless `options.layer` says otherwise). */
export const make = <E extends { readonly _tag: string }, I, Err, R>(
  reactor: Reactor.Reactor<E, I, Err, R>,
  options: Options = {}
): ReactorSpec<E, Exclude<R, EventStore.EventStore>> => {
  const layer = options.layer ?? InMemoryEventStore.layer
  const label = `the reactor ${reactor.name}`

  /** Runs the reactor over the given events, then `check` with what it appended. */
  const settled = <A, X, R2>(
    givens: ReadonlyArray<Given>,
    check: (appended: ReadonlyArray<RecordedEvent>) => Effect.Effect<A, X, R2>
  ) =>
    onLiveClock(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const appended: Array<RecordedEvent> = []
          // What the reactor's commands append passes through the store it is given: recorded there.
          const recording: EventStore.EventStore = {
            ...store,
            append: (writes) =>
              Effect.tap(store.append(writes), (result) => Effect.sync(() => appended.push(...result.events)))
          }
          const runner = yield* Effect.forkScoped(
            Effect.provideService(Reactor.run(reactor, runOptions(options.run)), EventStore.EventStore, recording)
          )
          const head = headOf(yield* storeGiven(label, givens))
          yield* handledUpTo(reactor, head, runner, options.timeout ?? "10 seconds")
          return yield* check(appended)
        })
      ).pipe(
        Effect.provide(layer),
        Effect.orDieWith((error) => new Error(`${label}: ${describeError(error)}`))
      )
    ) as Effect.Effect<A, never, Exclude<R, EventStore.EventStore> | Exclude<R2, EventStore.EventStore | Database>>

  const spec = (givens: ReadonlyArray<Given>): ReactorSpec<E, Exclude<R, EventStore.EventStore>> => ({
    given: (streams) =>
      spec([...givens, { _tag: "Events", schema: reactor.event as unknown as EventsSchema, streams }]),
    givenStored: (streams) => spec([...givens, { _tag: "Stored", streams }]),
    thenAppended: (schema, expected) => {
      const site = callSite()
      const nonEmpty = Object.fromEntries(Object.entries(expected).filter(([, events]) => events.length > 0))
      return settled(givens, (appended) =>
        Effect.flatMap(todaysEvents(schema, appended), (actual) =>
          Effect.sync(() =>
            atCallSite(site, () => expect(actual, `${label} appended other events than expected`).toEqual(nonEmpty))
          )
        )
      )
    },
    thenExpect: (check) => settled(givens, () => check)
  })
  return spec([])
}
