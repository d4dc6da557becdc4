/**
 * Given / when / then for an application's commands: given events on named
 * streams, when the command runs through the real `execute` with an input,
 * then the events it appended per stream, the error it failed with, or
 * nothing. Each run of a spec builds its own store: in memory unless a layer
 * says otherwise, so the same spec runs on PGlite or PostgreSQL.
 *
 * ```ts
 * it.effect("a transfer moves money between two open accounts", () =>
 *   CommandSpec.make(Transfer)
 *     .given({ "account-alice": [AccountOpened.make({ owner: "Alice" }), MoneyDeposited.make({ amount: 50_00 })] })
 *     .given({ "account-bob": [AccountOpened.make({ owner: "Bob" })] })
 *     .when({ from: "alice", to: "bob", amount: 30_00 })
 *     .thenAppended({
 *       "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })],
 *       "account-bob": [TransferReceived.make({ from: "alice", amount: 30_00 })]
 *     }))
 * ```
 */
import { Cause, Effect, Exit, type Layer, Option, Schedule } from "effect"
import * as fc from "fast-check"
import { assert, expect } from "vitest"
import type * as Command from "../Command.js"
import type { RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import type { VersionConflict } from "../errors.js"
import { type ExecuteError, type ExecutionResult, execute } from "../execute.js"
import * as InMemoryEventStore from "../InMemoryEventStore.js"
import type { StreamId } from "../StreamId.js"
import {
  appendDecided,
  atCallSite,
  callSite,
  decisionsOf,
  describeCause,
  describeError,
  type EventsSchema,
  type Given,
  listed,
  onLiveClock,
  plain,
  type StoredEvent,
  type Streams,
  storeGiven,
  todaysEvents
} from "./given.js"

export type { StoredEvent, Streams }

export interface Options {
  /**
   * The store, built afresh for each run of the spec (default
   * `InMemoryEventStore.layer`): `TestStore.pglite()` runs it on PGlite,
   * `TestStore.postgres(url)` on a database of its own on a PostgreSQL server.
   */
  readonly layer?: Layer.Layer<EventStore.EventStore, unknown>
}

export interface WhenOptions<Event> {
  /**
   * Events another writer appends after the command's first read and before
   * its append: the first attempt then fails with a `VersionConflict` (when
   * it read one of their streams) and the command runs again, reading them.
   */
  readonly concurrently?: Streams<Event>
  /**
   * When to run again after a conflict. Default: 4 more times at once (the
   * count of `execute`'s default, without its delays, so that a spec on
   * Effect's `TestClock` never waits for a clock no one moves).
   */
  readonly retry?: Schedule.Schedule<unknown, VersionConflict>
  readonly metadata?: Record<string, unknown>
  readonly causedBy?: RecordedEvent
}

/** How a spec's execution went, for assertions of your own. */
export interface Outcome<Event, DomainError> {
  /** What `execute` returned, or how it failed. */
  readonly exit: Exit.Exit<ExecutionResult, ExecuteError<DomainError>>
  /** The events the command appended, read back from the store as today's events, by stream. */
  readonly appended: Streams<Event>
  /** How many times `decide` ran: 2 after one conflict. */
  readonly decided: number
  /** The given events, as stored. */
  readonly given: ReadonlyArray<RecordedEvent>
}

export interface Then<Event, DomainError, R> {
  /**
   * The command succeeded and appended exactly these events (as today's
   * events read back from the store), by stream. With `decided`, `decide`
   * ran that many times (2: it ran again after one conflict).
   */
  readonly thenAppended: (
    expected: Streams<Event>,
    options?: { readonly decided?: number }
  ) => Effect.Effect<void, never, R>
  /**
   * The command failed with this error (compared field by field), or with an
   * error of this tag, and appended nothing.
   */
  readonly thenFails: (expected: ExecuteError<DomainError> | string) => Effect.Effect<void, never, R>
  /** The command succeeded and appended nothing. */
  readonly thenNothingAppended: (options?: { readonly decided?: number }) => Effect.Effect<void, never, R>
  /** The spec's outcome, for assertions of your own. */
  readonly outcome: Effect.Effect<Outcome<Event, DomainError>, never, R>
}

export interface CommandSpec<Input, Event, DomainError, R> {
  /** Events on named streams before the command runs, encoded as `execute` encodes them: one append per call. */
  readonly given: (streams: Streams<Event>) => CommandSpec<Input, Event, DomainError, R>
  /**
   * Events as the store keeps them (type, schema version, JSON), as an older
   * release wrote them: today's schema upcasts them when the command reads.
   */
  readonly givenStored: (streams: Streams<StoredEvent>) => CommandSpec<Input, Event, DomainError, R>
  /** Runs the command with `input` through `execute`, on a store holding the given events. */
  readonly when: (input: Input, options?: WhenOptions<Event>) => Then<Event, DomainError, R>
}

/** A spec of `command`, on a store of its own for each run (in memory unless `options.layer` says otherwise). */
export const make = <Input, State, Event extends { readonly _tag: string }, EventEncoded, DomainError, R>(
  command: Command.Command<Input, State, Event, EventEncoded, DomainError, R>,
  options: Options = {}
): CommandSpec<Input, Event, DomainError, Exclude<R, EventStore.EventStore>> => {
  const layer = options.layer ?? InMemoryEventStore.layer
  const spec = (
    givens: ReadonlyArray<Given>
  ): CommandSpec<Input, Event, DomainError, Exclude<R, EventStore.EventStore>> => ({
    given: (streams) =>
      spec([...givens, { _tag: "Events", schema: command.event as unknown as EventsSchema, streams }]),
    givenStored: (streams) => spec([...givens, { _tag: "Stored", streams }]),
    when: (input, whenOptions = {}) => then(command, layer, givens, input, whenOptions)
  })
  return spec([])
}

const then = <Input, State, Event extends { readonly _tag: string }, EventEncoded, DomainError, R>(
  command: Command.Command<Input, State, Event, EventEncoded, DomainError, R>,
  layer: Layer.Layer<EventStore.EventStore, unknown>,
  givens: ReadonlyArray<Given>,
  input: Input,
  options: WhenOptions<Event>
): Then<Event, DomainError, Exclude<R, EventStore.EventStore>> => {
  const call = `${command.name}(${fc.stringify(input)})`

  const outcome = Effect.gen(function* () {
    // The command runs on the spec's clock (a TestClock under it.effect); the store and the spec's own steps on the real one.
    const clock = yield* Effect.clock
    return yield* onLiveClock(
      Effect.gen(function* () {
        const given = yield* storeGiven(command.name, givens)
        let decided = 0
        const concurrently = options.concurrently
        const running: Command.Command<Input, State, Event, EventEncoded, DomainError, R | EventStore.EventStore> = {
          ...command,
          decide: (state, input) =>
            Effect.suspend(() => {
              decided += 1
              return decided === 1 && concurrently !== undefined
                ? Effect.zipRight(
                    appendDecided(command.event, `${command.name} (concurrently)`, decisionsOf(concurrently)).pipe(
                      Effect.orDieWith(
                        (error) =>
                          new Error(`${call}: the concurrent events could not be stored: ${describeError(error)}`)
                      )
                    ),
                    command.decide(state, input)
                  )
                : command.decide(state, input)
            })
        }
        const exit = yield* Effect.exit(
          Effect.withClock(
            execute(running, input, {
              retry: options.retry ?? Schedule.recurs(4),
              ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
              ...(options.causedBy === undefined ? {} : { causedBy: options.causedBy })
            }),
            clock
          )
        )
        const appended = Exit.isSuccess(exit) ? yield* readBack(command.event, exit.value.events) : {}
        return { exit, appended, decided, given } satisfies Outcome<Event, DomainError>
      }).pipe(
        Effect.provide(layer),
        Effect.orDieWith((error) => new Error(`${call}: ${describeError(error)}`))
      )
    )
  }) as Effect.Effect<Outcome<Event, DomainError>, never, Exclude<R, EventStore.EventStore>>

  const succeeded = (site: Error, check: (outcome: Outcome<Event, DomainError>) => void, expected: string) =>
    Effect.flatMap(outcome, (outcome) =>
      Effect.sync(() =>
        atCallSite(site, () => {
          if (Exit.isFailure(outcome.exit)) {
            assert.fail(`${call} failed with ${describeCause(outcome.exit.cause)}; expected it to ${expected}`)
          }
          check(outcome)
        })
      )
    )
  const decidedTimes = (outcome: Outcome<Event, DomainError>, decided: number | undefined) => {
    if (decided !== undefined) expect(outcome.decided, `${call} ran decide another number of times`).toBe(decided)
  }

  return {
    outcome,
    thenAppended: (expected, thenOptions) => {
      const nonEmpty = Object.fromEntries(Object.entries(expected).filter(([, events]) => events.length > 0))
      return succeeded(
        callSite(),
        (outcome) => {
          expect(outcome.appended, `${call} appended other events than expected`).toEqual(nonEmpty)
          decidedTimes(outcome, thenOptions?.decided)
        },
        `append:\n${listed(nonEmpty)}`
      )
    },
    thenNothingAppended: (thenOptions) =>
      succeeded(
        callSite(),
        (outcome) => {
          expect(outcome.appended, `${call} appended events where it was expected to append nothing`).toEqual({})
          decidedTimes(outcome, thenOptions?.decided)
        },
        "succeed and append nothing"
      ),
    thenFails: (expected) => {
      const site = callSite()
      return Effect.flatMap(outcome, (outcome) =>
        Effect.sync(() =>
          atCallSite(site, () => {
            const wanted = typeof expected === "string" ? expected : describeError(expected)
            if (Exit.isSuccess(outcome.exit)) {
              assert.fail(
                `${call} succeeded; expected it to fail with ${wanted}. It appended:\n${listed(outcome.appended)}`
              )
            }
            const failure = Cause.failureOption(outcome.exit.cause)
            if (Option.isNone(failure)) {
              assert.fail(
                `${call} died where it was expected to fail with ${wanted}:\n${Cause.pretty(outcome.exit.cause)}`
              )
            }
            if (typeof expected === "string") {
              const tag = (failure.value as { readonly _tag?: unknown })._tag
              expect(tag, `${call} failed with another error: ${describeError(failure.value)}`).toBe(expected)
            } else {
              expect(plain(failure.value), `${call} failed with another error`).toEqual(plain(expected))
            }
          })
        )
      )
    }
  }
}

/** The events an execution appended, read back from the store (through its storage), as today's events by stream. */
const readBack = <Event extends { readonly _tag: string }, EventEncoded>(
  schema: Command.Command<unknown, unknown, Event, EventEncoded, unknown, unknown>["event"],
  events: ReadonlyArray<RecordedEvent>
) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    // Each stream's appended events are consecutive versions: from its first, as many as it got.
    const ranges = new Map<StreamId, { readonly fromVersion: number; readonly maxCount: number }>()
    for (const { streamId, streamVersion } of events) {
      const range = ranges.get(streamId)
      ranges.set(streamId, {
        fromVersion: Math.min(range?.fromVersion ?? streamVersion, streamVersion),
        maxCount: (range?.maxCount ?? 0) + 1
      })
    }
    const reads = yield* Effect.forEach(ranges, ([streamId, range]) => store.readStream(streamId, range), {
      concurrency: "unbounded"
    })
    return yield* todaysEvents(
      schema,
      reads.flatMap((read) => read.events)
    )
  })
