/**
 * A model-based property: random sequences of appends run against a store and
 * against a few lines of pure model; every outcome must agree. A follower
 * reads the global log after each append, in small pages from where it
 * stopped, and must have seen exactly the model's events, in append order.
 */
import { Effect, Either } from "effect"
import * as fc from "fast-check"
import { expect } from "vitest"
import type { RecordedEvent } from "../Event.js"
import type * as EventStore from "../EventStore.js"
import * as ExpectedVersion from "../ExpectedVersion.js"
import * as LogPosition from "../LogPosition.js"
import * as StreamId from "../StreamId.js"
import { type Participant, writesOf } from "./helpers.js"

type Expectation =
  | { readonly kind: "any" | "no_stream" | "stream_exists" }
  /** The model's current version plus an offset: 0 is current, -1 stale, +1 ahead. */
  | { readonly kind: "relative"; readonly offset: -1 | 0 | 1 }
  | { readonly kind: "exact"; readonly value: number }

interface ModelParticipant {
  readonly stream: number
  readonly expectation: Expectation
  readonly events: number
}

const streamCount = 4

const expectationArbitrary: fc.Arbitrary<Expectation> = fc.oneof(
  fc.constantFrom<Expectation>({ kind: "any" }, { kind: "no_stream" }, { kind: "stream_exists" }),
  fc.constantFrom(-1 as const, 0 as const, 1 as const).map((offset): Expectation => ({ kind: "relative", offset })),
  fc.integer({ min: 0, max: 4 }).map((value): Expectation => ({ kind: "exact", value }))
)

/** One append: up to three distinct participants, each getting 0..3 events (0 = read-only). */
export const operationArbitrary: fc.Arbitrary<ReadonlyArray<ModelParticipant>> = fc.uniqueArray(
  fc.record({
    stream: fc.integer({ min: 0, max: streamCount - 1 }),
    expectation: expectationArbitrary,
    events: fc.integer({ min: 0, max: 3 })
  }),
  { minLength: 1, maxLength: 3, selector: (p) => p.stream }
)

export const scenarioArbitrary = fc.array(operationArbitrary, { minLength: 1, maxLength: 12 })

const resolve = (expectation: Expectation, current: number): ExpectedVersion.ExpectedVersion => {
  switch (expectation.kind) {
    case "relative":
      return Math.max(0, current + expectation.offset)
    case "exact":
      return expectation.value
    default:
      return expectation.kind
  }
}

const runScenario = (store: EventStore.EventStore, scenario: ReadonlyArray<ReadonlyArray<ModelParticipant>>) =>
  Effect.gen(function* () {
    // A fresh prefix per run keeps runs apart inside one store.
    const prefix = `model-${crypto.randomUUID()}-`
    const ids = Array.from({ length: streamCount }, (_, i) => StreamId.unsafeMake(`${prefix}${i}`))
    const model: Array<Array<unknown>> = ids.map(() => [])
    let sequence = 0
    let lastPosition = -1n
    /** Every event written, in append order, as the follower must see them. */
    const log: Array<{ readonly streamId: StreamId.StreamId; readonly data: unknown; readonly position: string }> = []
    const followed: Array<{ readonly streamId: StreamId.StreamId; readonly data: unknown; readonly position: string }> =
      []
    // The follower starts at an event written now, outside the run's streams: all the run writes follows it.
    const mark = yield* store.append(
      writesOf({
        streamId: StreamId.unsafeMake(`mark-${prefix}`),
        expected: "no_stream",
        events: [{ eventType: "Mark", data: {} }]
      })
    )
    let checkpoint = (mark.events[0] as RecordedEvent).position

    for (const operation of scenario) {
      const participants = operation.map((p) => {
        const streamId = ids[p.stream] as StreamId.StreamId
        const current = (model[p.stream] as Array<unknown>).length
        return {
          index: p.stream,
          current,
          participant: {
            streamId,
            expected: resolve(p.expectation, current),
            events: Array.from({ length: p.events }, () => ({ eventType: "Modelled", data: { seq: sequence++ } }))
          } satisfies Participant
        }
      })
      const conflicting = participants.filter((p) => !ExpectedVersion.isSatisfiedBy(p.participant.expected, p.current))
      const outcome = yield* Effect.either(store.append(writesOf(...participants.map((p) => p.participant))))

      if (conflicting.length > 0) {
        // Any conflicting participant may be the one reported, but it must be reported truthfully.
        expect(Either.isLeft(outcome)).toBe(true)
        const error = Either.isLeft(outcome) ? outcome.left : undefined
        expect(error?._tag).toBe("VersionConflict")
        const reported = conflicting.find(
          (p) => error?._tag === "VersionConflict" && p.participant.streamId === error.streamId
        )
        expect(reported).toBeDefined()
        expect(error).toMatchObject({ expected: reported?.participant.expected, actual: reported?.current })
      } else {
        expect(Either.isRight(outcome)).toBe(true)
        if (Either.isLeft(outcome)) return
        const expectedEvents = participants.flatMap((p) =>
          p.participant.events.map((event, i) => ({
            streamId: p.participant.streamId,
            streamVersion: p.current + i + 1,
            eventType: event.eventType,
            data: event.data
          }))
        )
        for (const p of participants)
          (model[p.index] as Array<unknown>).push(...p.participant.events.map((e) => e.data))
        expect(outcome.right.streamVersions).toEqual(
          new Map(participants.map((p) => [p.participant.streamId, (model[p.index] as Array<unknown>).length]))
        )
        expect(
          outcome.right.events.map(({ streamId, streamVersion, eventType, data }) => ({
            streamId,
            streamVersion,
            eventType,
            data
          }))
        ).toEqual(expectedEvents)
        for (const event of outcome.right.events) {
          expect(event.globalPosition > lastPosition).toBe(true)
          lastPosition = event.globalPosition
          log.push({ streamId: event.streamId, data: event.data, position: event.position })
        }
      }

      // Follow the log from the last checkpoint, two events at a time, until
      // caught up past the last event written (on a server, a transaction
      // running elsewhere may hold the readable head back for a moment).
      const target = log.at(-1)?.position ?? LogPosition.start
      for (;;) {
        const page = yield* store.readAll({ after: checkpoint, maxCount: 2, filter: { streamPrefix: prefix } })
        expect(page.position >= checkpoint).toBe(true)
        for (const event of page.events) {
          expect(event.position > (followed.at(-1)?.position ?? checkpoint)).toBe(true)
          followed.push({ streamId: event.streamId, data: event.data, position: event.position })
        }
        checkpoint = page.position
        if (page.caughtUp && checkpoint >= target) break
        if (page.caughtUp) yield* Effect.sleep("10 millis")
      }
      expect(followed).toEqual(log)

      for (const [i, streamId] of ids.entries()) {
        const expected = model[i] as Array<unknown>
        const read = yield* Effect.either(store.readStream(streamId))
        if (expected.length === 0) {
          expect(Either.isLeft(read) && read.left._tag).toBe("StreamNotFound")
        } else {
          expect(Either.isRight(read)).toBe(true)
          if (Either.isRight(read)) {
            expect(read.right.version).toBe(expected.length)
            expect(read.right.events.map((e) => e.data)).toEqual(expected)
          }
        }
      }
    }
  })

export const runModelProperty = (store: EventStore.EventStore, options: { readonly numRuns: number }) =>
  Effect.promise(() =>
    fc.assert(
      fc.asyncProperty(scenarioArbitrary, (scenario) => Effect.runPromise(runScenario(store, scenario))),
      { numRuns: options.numRuns }
    )
  )
