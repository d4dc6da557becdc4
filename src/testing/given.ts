/**
 * What the specs of the testing kit share: the events a spec starts from (its
 * "given"), stored as the application's own code would store them, and the
 * events read back, as today's events per stream, for messages and diffs.
 */
import { Cause, Clock, Effect, Either, Exit, Option, type Schema, TestContext } from "effect"
import * as fc from "fast-check"
import type * as Command from "../Command.js"
import type { RecordedEvent } from "../Event.js"
import * as EventSchema from "../EventSchema.js"
import * as EventStore from "../EventStore.js"
import { execute } from "../execute.js"
import * as LogPosition from "../LogPosition.js"
import * as StreamId from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import { writesOf } from "./helpers.js"

/** Events by stream id, in stream order: `{ "account-alice": [AccountOpened.make({ owner: "Alice" })] }`. */
export type Streams<Event> = Readonly<Record<string, ReadonlyArray<Event>>>

/**
 * An event as the store keeps it: its type, the schema version it was written
 * with (1 when absent) and its stored JSON (without `_tag`). For a spec
 * starting from events an older release wrote.
 */
export interface StoredEvent {
  readonly eventType: string
  readonly schemaVersion?: number
  readonly data: unknown
  readonly metadata?: Record<string, unknown>
}

/** The schema of a given's events, whatever its own types. */
export type EventsSchema = Schema.Schema<{ readonly _tag: string }, unknown>

/** One call of `given` or `givenStored`: one atomic append. */
export type Given =
  | { readonly _tag: "Events"; readonly schema: EventsSchema; readonly streams: Streams<{ readonly _tag: string }> }
  | { readonly _tag: "Stored"; readonly streams: Streams<StoredEvent> }

const streamIdOf = (key: string): StreamId.StreamId =>
  Either.getOrThrowWith(
    StreamId.validate(key),
    (error) =>
      new TypeError(`a spec names the stream ${JSON.stringify(key)}, which is not a stream id: ${error.message}`)
  )

/** Stores `decisions` as `execute` writes a command's decisions (its encoding, versions and metadata), in one append. */
export const appendDecided = <Event extends { readonly _tag: string }, EventEncoded>(
  schema: Schema.Schema<Event, EventEncoded>,
  name: string,
  decisions: ReadonlyArray<Command.Decision<Event>>
) =>
  decisions.length === 0
    ? Effect.succeed<ReadonlyArray<RecordedEvent>>([])
    : Effect.map(
        execute(
          {
            name,
            event: schema,
            streams: () => decisions.map((decision) => decision.streamId),
            initialState: undefined,
            apply: () => undefined,
            decide: () => Effect.succeed(decisions)
          },
          undefined
        ),
        (result) => result.events
      )

/** Events by stream as decisions, in order, their stream ids checked. */
export const decisionsOf = <Event>(streams: Streams<Event>): ReadonlyArray<Command.Decision<Event>> =>
  Object.entries(streams).flatMap(([key, events]) => events.map((event) => ({ streamId: streamIdOf(key), event })))

/**
 * Stores each given in its own append, in order, after checking that none of
 * their streams holds an event yet: a spec that starts from a store others
 * wrote to would test something else than it says. Returns the events stored.
 */
export const storeGiven = (spec: string, givens: ReadonlyArray<Given>) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const named = [...new Set(givens.flatMap((given) => Object.keys(given.streams)).map(streamIdOf))]
    const versions = yield* Effect.forEach(
      named,
      (streamId) =>
        store.readStream(streamId, { maxCount: 1 }).pipe(
          Effect.map((read) => read.version),
          Effect.catchTag("StreamNotFound", () => Effect.succeed(0))
        ),
      { concurrency: "unbounded" }
    )
    const written = versions.findIndex((version) => version > 0)
    if (written >= 0) {
      return yield* Effect.die(
        new Error(
          `${spec}: the stream ${named[written]} already holds ${versions[written]} events before the spec's given: run each spec on a store of its own (a layer that builds an empty store each time, such as InMemoryEventStore.layer or TestStore.pglite())`
        )
      )
    }
    const stored: Array<RecordedEvent> = []
    for (const given of givens) {
      if (given._tag === "Events") {
        stored.push(...(yield* appendDecided(given.schema, `${spec} (given)`, decisionsOf(given.streams))))
      } else {
        const writes = writesOf(
          ...Object.entries(given.streams).map(([key, events]) => ({
            streamId: streamIdOf(key),
            expected: "any" as const,
            events
          }))
        )
        if (StreamWrites.events(writes).length > 0) stored.push(...(yield* store.append(writes)).events)
      }
    }
    return stored
  }).pipe(
    Effect.orDieWith((error) => new Error(`${spec}: the given events could not be stored: ${describeError(error)}`))
  )

/** Where the log stands after `events`: their last position, or the start of the log. */
export const headOf = (events: ReadonlyArray<RecordedEvent>): LogPosition.LogPosition =>
  events.reduce((head, event) => LogPosition.max(head, event.position), LogPosition.start)

/** Today's events of stored ones, by stream, in the order given. */
export const todaysEvents = <Event extends { readonly _tag: string }, EventEncoded>(
  schema: Schema.Schema<Event, EventEncoded>,
  events: ReadonlyArray<RecordedEvent>
) =>
  Effect.gen(function* () {
    const byStream: Record<string, Array<Event>> = {}
    for (const recorded of events) {
      const decoded = yield* EventSchema.decode(schema)(recorded)
      byStream[recorded.streamId] ??= []
      byStream[recorded.streamId]?.push(...decoded)
    }
    return byStream as Streams<Event>
  })

/** Streams of events as lines of a message: `  account-alice: TransferSent {"to":"bob","amount":3000}`. */
export const listed = (streams: Streams<unknown>): string => {
  const lines = Object.entries(streams).flatMap(([streamId, events]) =>
    events.map((event) => `  ${streamId}: ${describeEvent(event)}`)
  )
  return lines.length === 0 ? "  (nothing)" : lines.join("\n")
}

const describeEvent = (event: unknown): string => {
  if (typeof event !== "object" || event === null || !("_tag" in event)) return fc.stringify(event)
  const { _tag, ...fields } = event as { readonly _tag: unknown }
  return `${String(_tag)} ${fc.stringify(fields)}`
}

/** An error as a message names it: its tag and its fields, or its message. */
export const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const { _tag, ...fields } = plain(error) as { readonly _tag: unknown }
    return Object.keys(fields).length === 0 ? String(_tag) : `${String(_tag)} ${fc.stringify(fields)}`
  }
  return error instanceof Error ? error.message : fc.stringify(error)
}

/** An error's own fields (a `Data.TaggedError` keeps its data and `_tag` there), for a diff of facts. */
export const plain = (error: unknown): unknown => (typeof error === "object" && error !== null ? { ...error } : error)

/** How an Effect ended, for a message: its failure, or its defect's message. */
export const describeCause = <E>(cause: Cause.Cause<E>): string =>
  Option.match(Cause.failureOption(cause), {
    onSome: describeError,
    onNone: () => Cause.pretty(cause)
  })

/** Runs `effect` on the real clock, whatever clock the spec runs on (`TestClock` under `it.effect`). */
export const onLiveClock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withClock(effect, Clock.make())

/**
 * Runs a spec (any Effect) as `it.effect` from `@effect/vitest` does, for a
 * plain vitest `it`: `it("...", () => runSpec(spec))`. With Effect's test
 * services (the `TestClock` starts at 0 and moves only when told), and the
 * failure thrown as it is, so vitest shows an assertion's difference.
 */
export const runSpec = async <A, E>(spec: Effect.Effect<A, E, never>): Promise<A> => {
  const exit = await Effect.runPromiseExit(Effect.provide(spec, TestContext.TestContext))
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

/** Where a spec's `then…` was called: its assertions' failures point there, at the test, not into the kit. */
export const callSite = (): Error => new Error("call site")

/** Runs an assertion; a failure of it is reported with the stack of `site`. */
export const atCallSite = (site: Error, assertion: () => void): void => {
  try {
    assertion()
  } catch (error) {
    // The first three lines of the site's stack are its message, callSite and the kit's own then… function.
    if (error instanceof Error && site.stack !== undefined) {
      error.stack = `${error.name}: ${error.message}\n${site.stack.split("\n").slice(3).join("\n")}`
    }
    throw error
  }
}
