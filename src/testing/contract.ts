/**
 * The public contract every `EventStore` must satisfy. Register it for a store
 * with `runEventStoreContract(name, makeLayer)` inside a vitest test file.
 *
 * Every test keeps to streams of a prefix of its own (and, where it filters by
 * type, event types of its own), and reads the global log from a mark it
 * writes first, filtering by its prefix or keeping its own events of what it
 * read: the suite passes against a store that already holds events and that
 * others write to while it runs, one database for every test.
 */
import { Cause, Chunk, Effect, Either, Exit, Fiber, type Layer, Queue, Stream } from "effect"
import { describe, expect, it } from "vitest"
import type { RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import type { ExpectedVersion } from "../ExpectedVersion.js"
import type * as LogMessage from "../LogMessage.js"
import * as LogPosition from "../LogPosition.js"
import * as StreamId from "../StreamId.js"
import { type Participant, testEvents, writesOf } from "./helpers.js"
import { asJson, awkwardPayloads, runFuzzProperty } from "./hostile.js"
import { runModelProperty } from "./model.js"

export interface ContractOptions {
  /** Runs of the model-based property test (default 40). */
  readonly propertyRuns?: number
  /** Per-test timeout in milliseconds (default 60 000). */
  readonly timeout?: number
}

const store = EventStore.EventStore

const versionOf = (streamId: StreamId.StreamId) =>
  store.pipe(
    Effect.flatMap((s) => s.readStream(streamId)),
    Effect.map((read) => read.version),
    Effect.catchTag("StreamNotFound", () => Effect.succeed(0))
  )

const dataOf = (streamId: StreamId.StreamId) =>
  store.pipe(
    Effect.flatMap((s) => s.readStream(streamId)),
    Effect.map((read) => read.events.map((e) => e.data)),
    Effect.catchTag("StreamNotFound", () => Effect.succeed([]))
  )

const appendOf = (...participants: ReadonlyArray<Participant>) =>
  Effect.flatMap(store, (s) => s.append(writesOf(...participants)))

/** What a test may write to and read back of a store it may share. */
interface Own {
  /** Its prefix: every stream it writes starts with it. */
  readonly prefix: string
  /** A stream of its own, named `name` under its prefix. */
  readonly id: (name: string) => StreamId.StreamId
  /** Whether `event` is one of its own. */
  readonly own: (event: RecordedEvent) => boolean
  /** The filter of its own streams. */
  readonly filter: EventStore.LogFilter
  /**
   * The position of an event written now to a stream outside its prefix:
   * every event it writes after this follows it in the log.
   */
  readonly mark: Effect.Effect<LogPosition.LogPosition, EventStore.AppendError, EventStore.EventStore>
}

const ownOf = (): Own => {
  // No pattern characters (`_`, `%`): the literal-prefix test adds its own.
  const prefix = `t${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}-`
  return {
    prefix,
    id: (name) => StreamId.unsafeMake(`${prefix}${name}`),
    own: (event) => event.streamId.startsWith(prefix),
    filter: { streamPrefix: prefix },
    mark: Effect.map(
      appendOf({
        streamId: StreamId.unsafeMake(`mark-${prefix}`),
        expected: "no_stream",
        events: [{ eventType: "Mark", data: {} }]
      }),
      (result) => (result.events[0] as RecordedEvent).position
    )
  }
}

/**
 * Waits until the global log is readable up to `target`: on a PostgreSQL
 * server, a transaction still running anywhere on it holds readers back (they
 * never skip past it), so an event committed a moment ago may not be readable
 * yet. Reading from `target` moves past it exactly when it is.
 */
const readableUpTo = (target: LogPosition.LogPosition) =>
  Effect.gen(function* () {
    const s = yield* store
    for (;;) {
      const read = yield* s.readAll({ after: target, maxCount: 1 })
      if (read.events.length > 0 || read.position > target) return
      yield* Effect.sleep("10 millis")
    }
  })

/** The log after `after` as `streamAll` reads it in pages, until the readable head. */
const logAfter = (after: LogPosition.LogPosition, filter?: EventStore.LogFilter) =>
  Effect.flatMap(store, (s) =>
    Stream.runCollect(s.streamAll({ after, ...(filter === undefined ? {} : { filter }) }))
  ).pipe(Effect.map(Chunk.toArray))

/**
 * Every event `readAll` returns after `after`, read on from each position it
 * returns until caught up, and where it ended: a filtered read may stop short
 * of the head (it examines a bounded stretch of the log), so one read may not
 * be all.
 */
const readToHead = (after: LogPosition.LogPosition, filter?: EventStore.LogFilter) =>
  Effect.gen(function* () {
    const s = yield* store
    const events: Array<RecordedEvent> = []
    let position = after
    for (;;) {
      const read = yield* s.readAll({ after: position, ...(filter === undefined ? {} : { filter }) })
      expect(read.position >= position).toBe(true)
      events.push(...read.events)
      position = read.position
      if (read.caughtUp) return { events, position }
    }
  })

const positionsIncrease = (events: ReadonlyArray<RecordedEvent>) =>
  events.every((event, i) => i === 0 || (events[i - 1] as RecordedEvent).position < event.position)

/** Takes messages from a subscription's queue until `done` says so, failing after `within`. */
const takeUntil = (
  queue: Queue.Queue<LogMessage.LogMessage>,
  done: (taken: ReadonlyArray<LogMessage.LogMessage>) => boolean,
  within: number
) =>
  Effect.gen(function* () {
    const taken: Array<LogMessage.LogMessage> = []
    while (!done(taken)) taken.push(yield* Queue.take(queue))
    return taken
  }).pipe(
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`the subscription delivered too little within ${within} ms`)
    })
  )

const eventsOf = (messages: ReadonlyArray<LogMessage.LogMessage>) =>
  messages.flatMap((message) => (message._tag === "Event" ? [message.event] : []))

/**
 * Runs a test's Effect on the live clock and services (plain vitest: no Effect
 * test plugin needed), failing the test with the whole cause, pretty-printed.
 */
const runTest = async <A, E>(effect: Effect.Effect<A, E>): Promise<void> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isFailure(exit)) throw new Error(Cause.pretty(exit.cause))
}

/**
 * Registers the contract suite for a store. `makeLayer` is called for each
 * test; its stores may share one database, holding events of others and
 * written to by others while the suite runs (see the module's comment).
 */
export const runEventStoreContract = (
  name: string,
  makeLayer: () => Layer.Layer<EventStore.EventStore, unknown>,
  options: ContractOptions = {}
): void => {
  const timeout = options.timeout ?? 60_000
  const test = <A, E>(title: string, body: (own: Own) => Effect.Effect<A, E, EventStore.EventStore>) =>
    it(
      title,
      () =>
        runTest(
          Effect.provide(
            Effect.suspend(() => body(ownOf())),
            makeLayer()
          )
        ),
      timeout
    )

  describe(`EventStore contract: ${name}`, () => {
    describe("reading and writing", () => {
      test("an append is read back with versions, positions and payloads", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("order-1")
          const result = yield* s.append(
            writesOf({
              streamId: stream,
              expected: "no_stream",
              events: [
                { eventType: "Placed", data: { total: 12.5, items: ["a", "b"] } },
                { eventType: "Paid", data: { method: "card" } }
              ]
            })
          )
          expect(result.streamVersions.get(stream)).toBe(2)
          expect(result.events.map((e) => [e.streamVersion, e.eventType])).toEqual([
            [1, "Placed"],
            [2, "Paid"]
          ])
          const read = yield* s.readStream(stream)
          expect(read.streamId).toBe(stream)
          expect(read.version).toBe(2)
          expect(read.events).toEqual(result.events)
          expect(read.events[0]?.data).toEqual({ total: 12.5, items: ["a", "b"] })
          expect(read.events[0]?.metadata).toEqual({})
          expect(read.events[0]?.recordedAt).toBeInstanceOf(Date)
          const [first, second] = read.events
          expect(typeof first?.globalPosition).toBe("bigint")
          expect((second?.globalPosition ?? 0n) > (first?.globalPosition ?? 0n)).toBe(true)
        }))

      test("streams are isolated from each other", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          yield* appendOf({ streamId: id("a"), expected: "no_stream", events: testEvents(2) })
          yield* appendOf({ streamId: id("b"), expected: "no_stream", events: testEvents(3, 10) })
          const a = yield* s.readStream(id("a"))
          const b = yield* s.readStream(id("b"))
          expect(a.version).toBe(2)
          expect(a.events.map((e) => e.data)).toEqual([{ n: 1 }, { n: 2 }])
          expect(b.version).toBe(3)
          expect(b.events.map((e) => [e.streamId, e.streamVersion])).toEqual([
            [id("b"), 1],
            [id("b"), 2],
            [id("b"), 3]
          ])
        }))

      test("a stream with no events is StreamNotFound for readStream and streamEvents", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const missing = id("never-written")
          const read = yield* Effect.flip(s.readStream(missing))
          expect(read._tag).toBe("StreamNotFound")
          expect(read).toMatchObject({ streamId: missing })
          const streamed = yield* Effect.flip(Stream.runCollect(s.streamEvents(missing)))
          expect(streamed._tag).toBe("StreamNotFound")
          const empty = yield* Effect.flip(Stream.runCollect(s.streamEvents(missing, { maxCount: 0 })))
          expect(empty._tag).toBe("StreamNotFound")
        }))

      test("global positions increase in commit order across streams", ({ id }) =>
        Effect.gen(function* () {
          const first = yield* appendOf({ streamId: id("p-1"), expected: "any", events: testEvents(2) })
          const second = yield* appendOf({ streamId: id("p-2"), expected: "any", events: testEvents(1) })
          const third = yield* appendOf({ streamId: id("p-1"), expected: "any", events: testEvents(1) })
          const positions = [...first.events, ...second.events, ...third.events].map((e) => e.globalPosition)
          expect(positions.every((p, i) => i === 0 || p > (positions[i - 1] as bigint))).toBe(true)
        }))

      test("metadata and a given eventId round-trip; missing ids are generated as unique UUIDv7", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("with-metadata")
          const eventId = crypto.randomUUID()
          yield* appendOf({
            streamId: stream,
            expected: "no_stream",
            events: [
              {
                eventType: "Tagged",
                data: { ok: true },
                metadata: { correlationId: "c-1", nested: { depth: [1, 2] } },
                eventId
              },
              { eventType: "Untagged", data: null },
              { eventType: "Untagged", data: [1, "two", false] }
            ]
          })
          const read = yield* s.readStream(stream)
          const [tagged, nullData, arrayData] = read.events
          expect(tagged?.eventId).toBe(eventId)
          expect(tagged?.metadata).toEqual({ correlationId: "c-1", nested: { depth: [1, 2] } })
          expect(nullData?.data).toBeNull()
          expect(arrayData?.data).toEqual([1, "two", false])
          const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
          expect(nullData?.eventId).toMatch(uuidv7)
          expect(arrayData?.eventId).toMatch(uuidv7)
          expect(nullData?.eventId).not.toBe(arrayData?.eventId)
        }))

      test("an event's schema version round-trips, 1 when not given: appended, read by stream, from the log and live", ({
        id,
        own,
        filter,
        mark
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          const stream = id("schema-versions")
          const { events } = yield* appendOf({
            streamId: stream,
            expected: "no_stream",
            events: [
              { eventType: "Unversioned", data: {} },
              { eventType: "Versioned", data: {}, schemaVersion: 3 },
              { eventType: "Versioned", data: {}, schemaVersion: 2_147_483_647 }
            ]
          })
          expect(events.map((e) => e.schemaVersion)).toEqual([1, 3, 2_147_483_647])
          expect((yield* s.readStream(stream)).events).toEqual(events)
          const last = events.at(-1) as RecordedEvent
          yield* readableUpTo(last.position)
          expect((yield* readToHead(from)).events.filter(own)).toEqual(events)
          expect((yield* readToHead(from, { eventTypes: ["Versioned"], ...filter })).events).toEqual(events.slice(1))
          const live = yield* Stream.runCollect(
            s
              .subscribe({ after: from, filter })
              .pipe(Stream.takeUntil((message) => message._tag === "CaughtUp" && message.position >= last.position))
          ).pipe(Effect.timeout("30 seconds"))
          expect(eventsOf(Chunk.toArray(live))).toEqual(events)
        }))

      test("an eventId given in upper case is recorded, returned and read back in lower case", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("upper-case-id")
          const lower = crypto.randomUUID()
          const appended = yield* appendOf({
            streamId: stream,
            expected: "no_stream",
            events: [{ eventType: "E", data: {}, eventId: lower.toUpperCase() }]
          })
          expect(appended.events.map((e) => e.eventId)).toEqual([lower])
          expect((yield* s.readStream(stream)).events.map((e) => e.eventId)).toEqual([lower])
        }))

      test("a duplicate eventId fails with DuplicateEventId and writes nothing", ({ id }) =>
        Effect.gen(function* () {
          const eventId = crypto.randomUUID()
          yield* appendOf({
            streamId: id("dup-1"),
            expected: "no_stream",
            events: [{ eventType: "E", data: {}, eventId }]
          })
          const error = yield* Effect.flip(
            appendOf(
              { streamId: id("dup-2"), expected: "no_stream", events: testEvents(1) },
              { streamId: id("dup-3"), expected: "no_stream", events: [{ eventType: "E", data: {}, eventId }] }
            )
          )
          expect(error).toMatchObject({ _tag: "DuplicateEventId", eventId })
          expect(yield* versionOf(id("dup-2"))).toBe(0)
          expect(yield* versionOf(id("dup-3"))).toBe(0)
          expect(yield* versionOf(id("dup-1"))).toBe(1)
        }))

      test("unusual stream ids round-trip exactly", ({ id, prefix }) =>
        Effect.gen(function* () {
          const s = yield* store
          // The longest ones are 255 characters (code points) with the prefix.
          const longest = StreamId.maxLength - prefix.length
          const ids = [
            `it's "quoted"`,
            "100%_done",
            "back\\slash",
            "LIKE%pattern_",
            "ünïcödé-流-🚀",
            "'; DROP TABLE eventcore.events; --",
            "x".repeat(longest),
            "🚀".repeat(longest)
          ].map(id)
          for (const [i, streamId] of ids.entries()) {
            yield* appendOf({ streamId, expected: "no_stream", events: testEvents(1, i) })
          }
          for (const [i, streamId] of ids.entries()) {
            const read = yield* s.readStream(streamId)
            expect(read.events.map((e) => [e.streamId, e.data])).toEqual([[streamId, { n: i }]])
          }
          // Wildcard-looking ids are matched exactly, never as patterns.
          expect(yield* versionOf(id("100%_don"))).toBe(0)
        }))
    })

    describe("expected versions", () => {
      test("a stale expected version conflicts and says stream, expected and actual", ({ id }) =>
        Effect.gen(function* () {
          const stream = id("stale")
          yield* appendOf({ streamId: stream, expected: "no_stream", events: testEvents(3) })
          const error = yield* Effect.flip(appendOf({ streamId: stream, expected: 2, events: testEvents(1) }))
          expect(error).toMatchObject({ _tag: "VersionConflict", streamId: stream, expected: 2, actual: 3 })
          expect(yield* versionOf(stream)).toBe(3)
        }))

      test("every expected-version kind", ({ id }) =>
        Effect.gen(function* () {
          const stream = id("kinds")
          const attempt = (expected: ExpectedVersion) =>
            Effect.either(appendOf({ streamId: stream, expected, events: testEvents(1) }))
          const conflict = (expected: ExpectedVersion, actual: number) =>
            Either.left(expect.objectContaining({ _tag: "VersionConflict", streamId: stream, expected, actual }))

          expect(yield* attempt("stream_exists")).toEqual(conflict("stream_exists", 0))
          expect(yield* attempt(1)).toEqual(conflict(1, 0))
          expect(Either.isRight(yield* attempt("no_stream"))).toBe(true) // -> 1
          expect(yield* attempt("no_stream")).toEqual(conflict("no_stream", 1))
          expect(yield* attempt(0)).toEqual(conflict(0, 1))
          expect(Either.isRight(yield* attempt("stream_exists"))).toBe(true) // -> 2
          expect(Either.isRight(yield* attempt(2))).toBe(true) // -> 3
          expect(yield* attempt(2)).toEqual(conflict(2, 3))
          expect(yield* attempt(4)).toEqual(conflict(4, 3))
          expect(Either.isRight(yield* attempt("any"))).toBe(true) // -> 4
          expect(yield* versionOf(stream)).toBe(4)

          const fresh = id("kinds-zero")
          expect(
            Either.isRight(yield* Effect.either(appendOf({ streamId: fresh, expected: 0, events: testEvents(1) })))
          ).toBe(true)
          const anyNew = id("kinds-any")
          expect(
            Either.isRight(yield* Effect.either(appendOf({ streamId: anyNew, expected: "any", events: testEvents(1) })))
          ).toBe(true)
          expect(yield* versionOf(fresh)).toBe(1)
          expect(yield* versionOf(anyNew)).toBe(1)
        }))

      test("an append with no events only checks versions", ({ id }) =>
        Effect.gen(function* () {
          const a = id("check-a")
          const missing = id("check-missing")
          yield* appendOf({ streamId: a, expected: "no_stream", events: testEvents(2) })
          const ok = yield* appendOf({ streamId: a, expected: 2 }, { streamId: missing, expected: "no_stream" })
          expect(ok.events).toEqual([])
          expect(ok.streamVersions).toEqual(
            new Map([
              [a, 2],
              [missing, 0]
            ])
          )
          const stale = yield* Effect.flip(appendOf({ streamId: a, expected: 1 }))
          expect(stale).toMatchObject({ _tag: "VersionConflict", streamId: a, expected: 1, actual: 2 })
          expect(yield* versionOf(a)).toBe(2)
          expect(yield* versionOf(missing)).toBe(0)
        }))
    })

    describe("atomicity across streams", () => {
      test("a conflict on one stream writes nothing to the others", ({ id }) =>
        Effect.gen(function* () {
          const from = id("acct-from")
          const to = id("acct-to")
          const other = id("acct-other")
          yield* appendOf({ streamId: to, expected: "no_stream", events: testEvents(1) })
          const error = yield* Effect.flip(
            appendOf(
              { streamId: from, expected: "no_stream", events: testEvents(2) },
              { streamId: to, expected: "no_stream", events: testEvents(1) },
              { streamId: other, expected: "any", events: testEvents(1) }
            )
          )
          expect(error).toMatchObject({ _tag: "VersionConflict", streamId: to, expected: "no_stream", actual: 1 })
          expect(yield* versionOf(from)).toBe(0)
          expect(yield* versionOf(other)).toBe(0)
          expect(yield* dataOf(to)).toEqual([{ n: 1 }])
        }))

      test("a stale read-only participant fails the whole append and writes nothing", ({ id }) =>
        Effect.gen(function* () {
          const written = id("ro-written")
          const readOnly = id("ro-guard")
          yield* appendOf({ streamId: readOnly, expected: "no_stream", events: testEvents(2) })
          const error = yield* Effect.flip(
            appendOf(
              { streamId: written, expected: "no_stream", events: testEvents(1) },
              { streamId: readOnly, expected: 1 }
            )
          )
          expect(error).toMatchObject({ _tag: "VersionConflict", streamId: readOnly, expected: 1, actual: 2 })
          expect(yield* versionOf(written)).toBe(0)
          expect(yield* versionOf(readOnly)).toBe(2)
        }))

      test("a current read-only participant lets the append through, unchanged", ({ id }) =>
        Effect.gen(function* () {
          const written = id("ro-ok-written")
          const readOnly = id("ro-ok-guard")
          yield* appendOf({ streamId: readOnly, expected: "no_stream", events: testEvents(2) })
          const result = yield* appendOf(
            { streamId: written, expected: "no_stream", events: testEvents(1) },
            { streamId: readOnly, expected: 2 }
          )
          expect(result.streamVersions).toEqual(
            new Map([
              [written, 1],
              [readOnly, 2]
            ])
          )
          expect(result.events.map((e) => e.streamId)).toEqual([written])
          expect(yield* versionOf(readOnly)).toBe(2)
        }))

      test("many streams and many events in one append", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const streams = Array.from({ length: 40 }, (_, i) => id(`bulk-${i}`))
          const result = yield* appendOf(
            ...streams.map((streamId, i) => ({
              streamId,
              expected: "no_stream" as const,
              events: testEvents(25, i * 100)
            }))
          )
          expect(result.events).toHaveLength(1000)
          const positions = result.events.map((e) => e.globalPosition)
          expect(new Set(positions).size).toBe(1000)
          expect(positions.every((p, i) => i === 0 || p > (positions[i - 1] as bigint))).toBe(true)
          for (const [i, streamId] of streams.entries()) {
            expect(result.streamVersions.get(streamId)).toBe(25)
            const read = yield* s.readStream(streamId)
            expect(read.events.map((e) => e.streamVersion)).toEqual(Array.from({ length: 25 }, (_, v) => v + 1))
            expect(read.events.map((e) => e.data)).toEqual(testEvents(25, i * 100).map((e) => e.data))
          }
        }))
    })

    describe("reading ranges", () => {
      test("readStream honours fromVersion and maxCount and always reports the current version", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("ranged")
          yield* appendOf({ streamId: stream, expected: "no_stream", events: testEvents(10) })
          const numbers = (read: EventStore.StreamRead) => read.events.map((e) => e.streamVersion)
          expect(numbers(yield* s.readStream(stream, { fromVersion: 4 }))).toEqual([4, 5, 6, 7, 8, 9, 10])
          expect(numbers(yield* s.readStream(stream, { maxCount: 3 }))).toEqual([1, 2, 3])
          const middle = yield* s.readStream(stream, { fromVersion: 5, maxCount: 2 })
          expect(numbers(middle)).toEqual([5, 6])
          expect(middle.version).toBe(10)
          const past = yield* s.readStream(stream, { fromVersion: 11 })
          expect(past.events).toEqual([])
          expect(past.version).toBe(10)
          const versionOnly = yield* s.readStream(stream, { maxCount: 0 })
          expect([versionOnly.events, versionOnly.version]).toEqual([[], 10])
        }))

      test("invalid read options are refused with InvalidReadOptions", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("bad-options")
          yield* appendOf({ streamId: stream, expected: "no_stream", events: testEvents(1) })
          for (const bad of [{ fromVersion: 0 }, { fromVersion: 1.5 }, { maxCount: -1 }, { fromVersion: Number.NaN }]) {
            const error = yield* Effect.flip(s.readStream(stream, bad))
            expect(error._tag).toBe("InvalidReadOptions")
          }
          const pageError = yield* Effect.flip(Stream.runDrain(s.streamEvents(stream, { pageSize: 0 })))
          expect(pageError._tag).toBe("InvalidReadOptions")
        }))

      test("streamEvents returns the same events as readStream, page by page", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("paged")
          yield* appendOf({ streamId: stream, expected: "no_stream", events: testEvents(23) })
          const all = yield* s.readStream(stream)
          for (const pageSize of [1, 5, 23, 100]) {
            const streamed = yield* Stream.runCollect(s.streamEvents(stream, { pageSize }))
            expect(Chunk.toReadonlyArray(streamed)).toEqual(all.events)
          }
          const window = yield* Stream.runCollect(s.streamEvents(stream, { fromVersion: 7, maxCount: 9, pageSize: 4 }))
          expect(Chunk.toReadonlyArray(window).map((e) => e.streamVersion)).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15])
          const none = yield* Stream.runCollect(s.streamEvents(stream, { fromVersion: 50 }))
          expect(Chunk.size(none)).toBe(0)
        }))
    })

    describe("concurrency", () => {
      test("racing appends at the same expected version: exactly one wins each round, versions stay gap-free", ({
        id
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("race")
          const writers = 8
          const rounds = 6
          for (let round = 0; round < rounds; round++) {
            const latch = yield* Effect.makeLatch(false)
            const expected: ExpectedVersion = round === 0 ? "no_stream" : round
            const fibers = yield* Effect.forEach(
              Array.from({ length: writers }, (_, w) => w),
              (w) =>
                Effect.fork(
                  latch.await.pipe(
                    Effect.zipRight(
                      Effect.exit(appendOf({ streamId: stream, expected, events: testEvents(1, round * 100 + w) }))
                    )
                  )
                )
            )
            yield* latch.open
            const exits = yield* Fiber.joinAll(fibers)
            const winners = exits.filter(Exit.isSuccess)
            expect(winners).toHaveLength(1)
            for (const exit of exits.filter(Exit.isFailure)) {
              expect(Exit.isFailure(exit) && exit.cause).toEqual(
                expect.objectContaining({
                  _tag: "Fail",
                  error: expect.objectContaining({
                    _tag: "VersionConflict",
                    streamId: stream,
                    expected,
                    actual: round + 1
                  })
                })
              )
            }
          }
          const read = yield* s.readStream(stream)
          expect(read.version).toBe(rounds)
          expect(read.events.map((e) => e.streamVersion)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1))
        }))

      test("concurrent appends to different streams all succeed with unique positions", ({ id }) =>
        Effect.gen(function* () {
          const latch = yield* Effect.makeLatch(false)
          const fibers = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, i) => id(`parallel-${i}`)),
            (streamId) =>
              Effect.fork(
                latch.await.pipe(Effect.zipRight(appendOf({ streamId, expected: "no_stream", events: testEvents(3) })))
              )
          )
          yield* latch.open
          const results = yield* Fiber.joinAll(fibers)
          const positions = results.flatMap((r) => r.events.map((e) => e.globalPosition))
          expect(new Set(positions).size).toBe(48)
        }))

      test("write skew through read-only participants is refused: of two crossing writers one fails", ({ id }) =>
        Effect.gen(function* () {
          // Each writer read both streams and writes only its own: committing both
          // would break an invariant spanning the two (the classic write skew).
          const a = id("skew-a")
          const b = id("skew-b")
          yield* appendOf({ streamId: a, expected: "no_stream", events: testEvents(1) })
          yield* appendOf({ streamId: b, expected: "no_stream", events: testEvents(1) })
          for (let round = 1; round <= 5; round++) {
            const va = yield* versionOf(a)
            const vb = yield* versionOf(b)
            const latch = yield* Effect.makeLatch(false)
            const left = yield* Effect.fork(
              latch.await.pipe(
                Effect.zipRight(
                  Effect.either(
                    appendOf({ streamId: a, expected: va, events: testEvents(1) }, { streamId: b, expected: vb })
                  )
                )
              )
            )
            const right = yield* Effect.fork(
              latch.await.pipe(
                Effect.zipRight(
                  Effect.either(
                    appendOf({ streamId: b, expected: vb, events: testEvents(1) }, { streamId: a, expected: va })
                  )
                )
              )
            )
            yield* latch.open
            const outcomes = [yield* Fiber.join(left), yield* Fiber.join(right)]
            expect(outcomes.filter(Either.isRight)).toHaveLength(1)
            expect((yield* versionOf(a)) + (yield* versionOf(b))).toBe(va + vb + 1)
          }
        }))
    })

    describe("hostile input", () => {
      test("awkward JSON payloads and metadata round-trip exactly", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("awkward")
          yield* appendOf({
            streamId: stream,
            expected: "no_stream",
            events: awkwardPayloads.map(([name, data]) => ({
              eventType: `It's "${name}"`,
              data,
              metadata: { name, payload: data }
            }))
          })
          const read = yield* s.readStream(stream)
          expect(read.events.map((e) => [e.eventType, e.data, e.metadata])).toEqual(
            awkwardPayloads.map(([name, data]) => [`It's "${name}"`, asJson(data), asJson({ name, payload: data })])
          )
          expect(Object.getPrototypeOf(read.events[3]?.data)).toBe(Object.prototype)
        }))

      test("a 10 MB event round-trips", ({ id }) =>
        Effect.gen(function* () {
          const s = yield* store
          const stream = id("large")
          const big = { blob: "x".repeat(10 * 2 ** 20), tail: "end" }
          yield* appendOf({ streamId: stream, expected: "no_stream", events: [{ eventType: "Large", data: big }] })
          const read = yield* s.readStream(stream)
          const stored = read.events[0]?.data as typeof big | undefined
          expect(stored?.blob.length).toBe(10 * 2 ** 20)
          expect(stored?.tail).toBe("end")
        }))

      test("arbitrary strings and JSON either round-trip exactly or fail typed, writing nothing", () =>
        Effect.gen(function* () {
          const s = yield* store
          yield* runFuzzProperty(s, { numRuns: (options.propertyRuns ?? 40) * 2 })
        }))
    })

    describe("the global log", () => {
      test("readAll returns every event once, in commit order across streams, with the positions appends returned", ({
        id,
        own,
        mark
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          const appended: Array<RecordedEvent> = []
          for (const [stream, count, expected] of [
            ["log-a", 2, "no_stream"],
            ["log-b", 1, "no_stream"],
            ["log-a", 1, 2],
            ["log-c", 2, "no_stream"]
          ] as const) {
            const result = yield* appendOf({ streamId: id(stream), expected, events: testEvents(count) })
            appended.push(...result.events)
          }
          const last = appended.at(-1) as RecordedEvent
          yield* readableUpTo(last.position)
          // Unfiltered: what others wrote meanwhile is read too, in its place.
          const read = yield* readToHead(from)
          expect(read.events.filter(own)).toEqual(appended)
          expect(read.position >= last.position).toBe(true)
          expect(positionsIncrease(read.events)).toBe(true)
          expect(new Set(read.events.map((e) => e.eventId)).size).toBe(read.events.length)
          expect(read.events.every((e) => e.position > from)).toBe(true)
          for (const event of read.events)
            expect(LogPosition.validate(event.position)).toEqual(Either.right(event.position))
          const streamA = yield* s.readStream(id("log-a"))
          expect(streamA.events.map((e) => e.position)).toEqual(
            appended.filter((e) => e.streamId === id("log-a")).map((e) => e.position)
          )
        }))

      test("maxCount bounds a read, and reading on from its position returns the rest", ({ id, own, filter, mark }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          const { events } = yield* appendOf({
            streamId: id("paged-log"),
            expected: "no_stream",
            events: testEvents(5)
          })
          const last = events.at(-1) as RecordedEvent
          yield* readableUpTo(last.position)
          // Unfiltered pages are full until the head; a full one ends at its last event.
          const read: Array<RecordedEvent> = []
          let position = from
          for (;;) {
            const page = yield* s.readAll({ after: position, maxCount: 2 })
            read.push(...page.events)
            if (page.events.length < 2) {
              expect(page.caughtUp).toBe(true)
              expect(page.position >= position).toBe(true)
              break
            }
            expect(page.position).toBe(page.events[1]?.position)
            expect(page.caughtUp).toBe(false)
            position = page.position
          }
          expect(read.filter(own)).toEqual(events)
          expect(positionsIncrease(read)).toBe(true)
          const none = yield* s.readAll({ after: last.position, filter })
          expect(none.events).toEqual([])
          expect(none.caughtUp).toBe(true)
          expect(none.position >= last.position).toBe(true)
          const zero = yield* s.readAll({ after: events[1]?.position as LogPosition.LogPosition, maxCount: 0 })
          expect(zero).toEqual({ events: [], position: events[1]?.position, caughtUp: false })
        }))

      test("filters by event type and by a literal stream prefix, and moves past the events it skipped", ({
        id,
        prefix,
        mark
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          // Event types of its own, so that a filter by type alone reads none of anyone else's.
          const type = (name: string) => `${prefix}${name}`
          const write = (stream: string, types: ReadonlyArray<string>) =>
            appendOf({
              streamId: id(stream),
              expected: "any",
              events: types.map((name, i) => ({ eventType: type(name), data: { stream, i } }))
            }).pipe(Effect.map((result) => result.events))
          const all = [
            ...(yield* write("order-1", ["Placed", "Paid"])),
            ...(yield* write("customer-1", ["Registered"])),
            ...(yield* write("order-2", ["Placed"])),
            ...(yield* write("a_b-1", ["Paid"])),
            ...(yield* write("axb-1", ["Paid"])),
            ...(yield* write("order-1", ["Shipped"]))
          ]
          const last = all.at(-1) as RecordedEvent
          yield* readableUpTo(last.position)
          const matching = (keep: (e: RecordedEvent) => boolean) => all.filter(keep)
          const read = (filter: EventStore.LogFilter) => Effect.map(readToHead(from, filter), (read) => read.events)
          const paid = yield* read({ eventTypes: [type("Paid")] })
          expect(paid).toEqual(matching((e) => e.eventType === type("Paid")))
          expect(yield* read({ streamPrefix: id("order-") })).toEqual(
            matching((e) => e.streamId.startsWith(id("order-")))
          )
          const literal = yield* read({ streamPrefix: id("a_b") })
          expect(literal.map((e) => e.streamId)).toEqual([id("a_b-1")])
          expect(yield* read({ eventTypes: [type("Placed"), type("Shipped")], streamPrefix: id("order-1") })).toEqual(
            matching((e) => e.streamId === id("order-1") && e.eventType !== type("Paid"))
          )
          // A reader of a type that never occurs does not rescan the log: it resumes past it.
          const rare = yield* s.readAll({ after: from, filter: { eventTypes: [type("NeverWritten")] } })
          expect(rare.events).toEqual([])
          expect(rare.caughtUp).toBe(true)
          expect(rare.position >= last.position).toBe(true)
          const none = yield* s.readAll({ after: from, filter: { eventTypes: [] } })
          expect(none.events).toEqual([])
          const streamed = yield* Stream.runCollect(
            s.streamAll({ after: from, pageSize: 1, filter: { eventTypes: [type("Paid")] } })
          )
          expect(Chunk.toArray(streamed)).toEqual(paid)
        }))

      test("a filtered reader reaches a rare event behind 12,000 others, moving forward every page", ({
        id,
        prefix,
        mark
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          for (let i = 0; i < 12; i++) {
            yield* appendOf({ streamId: id(`common-${i}`), expected: "no_stream", events: testEvents(1000) })
          }
          const rareType = `${prefix}Rare`
          const rare = yield* appendOf({
            streamId: id("rare"),
            expected: "no_stream",
            events: [{ eventType: rareType, data: {} }]
          })
          yield* readableUpTo((rare.events[0] as RecordedEvent).position)
          let position = from
          const found: Array<RecordedEvent> = []
          for (let page = 1; ; page++) {
            const read = yield* s.readAll({ after: position, maxCount: 10, filter: { eventTypes: [rareType] } })
            found.push(...read.events)
            if (read.caughtUp) break
            expect(read.position > position).toBe(true)
            position = read.position
            expect(page).toBeLessThan(20)
          }
          expect(found).toEqual(rare.events)
          const common = yield* s.readAll({ after: from, maxCount: 100, filter: { streamPrefix: id("common-") } })
          expect(common.events).toHaveLength(100)
          expect(common.caughtUp).toBe(false)
          expect(common.position).toBe(common.events[99]?.position)
        }))

      test("bad positions, counts and filters are refused with InvalidReadOptions", () =>
        Effect.gen(function* () {
          const s = yield* store
          const refused = [
            s.readAll({ after: "nonsense" as LogPosition.LogPosition }),
            s.readAll({ after: `${LogPosition.start}0` as LogPosition.LogPosition }),
            s.readAll({ after: "99999999999999999999-9999999999999999999" as LogPosition.LogPosition }),
            s.readAll({ maxCount: -1 }),
            s.readAll({ maxCount: 1.5 }),
            s.readAll({ filter: { eventTypes: "Paid" as unknown as Array<string> } }),
            s.readAll({ filter: { streamPrefix: 7 as unknown as string } }),
            Stream.runDrain(s.streamAll({ pageSize: 0 })),
            Stream.runDrain(s.subscribe({ after: "1-2" as LogPosition.LogPosition }))
          ]
          for (const attempt of refused) {
            const error = yield* Effect.flip(attempt)
            expect(error._tag).toBe("InvalidReadOptions")
          }
          const after = yield* Effect.flip(s.readAll({ after: "nonsense" as LogPosition.LogPosition }))
          expect(after).toMatchObject({ _tag: "InvalidReadOptions", option: "after", value: "nonsense" })
        }))

      test("streamAll reads the log in pages, in order, and ends at the readable head", ({ id, own, filter, mark }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          const appended: Array<RecordedEvent> = []
          for (let i = 0; i < 4; i++) {
            const result = yield* appendOf({
              streamId: id(`paging-${i % 2}`),
              expected: "any",
              events: testEvents(2, i * 10)
            })
            appended.push(...result.events)
          }
          yield* readableUpTo((appended.at(-1) as RecordedEvent).position)
          const pages = (filter?: EventStore.LogFilter) =>
            Effect.map(
              Stream.runCollect(s.streamAll({ after: from, pageSize: 3, ...(filter === undefined ? {} : { filter }) })),
              Chunk.toArray
            )
          expect(yield* pages(filter)).toEqual(appended)
          const unfiltered = yield* pages()
          expect(unfiltered.filter(own)).toEqual(appended)
          expect(positionsIncrease(unfiltered)).toBe(true)
          expect(yield* logAfter(appended[4]?.position as LogPosition.LogPosition, filter)).toEqual(appended.slice(5))
        }))

      test("subscribe catches up, says so, then delivers later appends and says so again", ({ id, filter, mark }) =>
        Effect.gen(function* () {
          const s = yield* store
          const from = yield* mark
          const early = (yield* appendOf({ streamId: id("live"), expected: "no_stream", events: testEvents(3) })).events
          yield* readableUpTo((early.at(-1) as RecordedEvent).position)
          const queue = yield* Queue.unbounded<LogMessage.LogMessage>()
          yield* Effect.forkScoped(
            Stream.runForEach(s.subscribe({ after: from, filter }), (message) => Queue.offer(queue, message))
          )
          const caughtUp = yield* takeUntil(queue, (taken) => taken.at(-1)?._tag === "CaughtUp", 30_000)
          expect(eventsOf(caughtUp)).toEqual(early)
          const first = caughtUp.at(-1) as { readonly position: LogPosition.LogPosition }
          expect(first.position >= (early.at(-1) as RecordedEvent).position).toBe(true)
          const later = (yield* appendOf({ streamId: id("live"), expected: 3, events: testEvents(2) })).events
          const burst = yield* takeUntil(
            queue,
            (taken) => eventsOf(taken).length === 2 && taken.at(-1)?._tag === "CaughtUp",
            30_000
          )
          expect(eventsOf(burst)).toEqual(later)
          expect(burst.filter((m) => m._tag === "CaughtUp")).toHaveLength(1)
        }).pipe(Effect.scoped))

      test("subscribe after a position delivers only what follows it", ({ id, filter }) =>
        Effect.gen(function* () {
          const s = yield* store
          const events = (yield* appendOf({ streamId: id("from-here"), expected: "no_stream", events: testEvents(4) }))
            .events
          const messages = yield* Stream.runCollect(
            s
              .subscribe({ after: events[1]?.position as LogPosition.LogPosition, filter })
              .pipe(
                Stream.takeUntil(
                  (message) => message._tag === "CaughtUp" && message.position >= (events[3]?.position ?? "")
                )
              )
          ).pipe(Effect.timeout("30 seconds"))
          expect(eventsOf(Chunk.toArray(messages))).toEqual(events.slice(2))
        }))

      test("an interrupted subscription ends, and the store keeps working", ({ id, filter, mark }) =>
        Effect.gen(function* () {
          const s = yield* store
          const fiber = yield* Effect.fork(Stream.runDrain(s.subscribe()))
          yield* Effect.sleep("50 millis")
          yield* Fiber.interrupt(fiber)
          const exit = yield* Fiber.await(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          const from = yield* mark
          const { events } = yield* appendOf({
            streamId: id("after-interrupt"),
            expected: "no_stream",
            events: testEvents(1)
          })
          yield* readableUpTo((events[0] as RecordedEvent).position)
          expect((yield* readToHead(from, filter)).events).toEqual(events)
        }))

      test("two subscribers following eight concurrent writers each see every event once, in one order", ({
        id,
        own,
        filter,
        mark
      }) =>
        Effect.gen(function* () {
          const s = yield* store
          const writers = 8
          const appendsEach = 6
          const total = writers * appendsEach * 2
          const from = yield* mark
          // Unfiltered: each sees what others write meanwhile too, and keeps its own.
          const subscribers = yield* Effect.forEach([0, 1], () =>
            Effect.gen(function* () {
              const queue = yield* Queue.unbounded<LogMessage.LogMessage>()
              yield* Effect.forkScoped(
                Stream.runForEach(s.subscribe({ after: from }), (message) => Queue.offer(queue, message))
              )
              return queue
            })
          )
          const latch = yield* Effect.makeLatch(false)
          const fibers = yield* Effect.forEach(
            Array.from({ length: writers }, (_, w) => w),
            (w) =>
              Effect.fork(
                latch.await.pipe(
                  Effect.zipRight(
                    Effect.forEach(
                      Array.from({ length: appendsEach }, (_, i) => i),
                      (i) =>
                        appendOf(
                          {
                            streamId: id(`writer-${w}`),
                            expected: i === 0 ? "no_stream" : i,
                            events: testEvents(1, i)
                          },
                          { streamId: id(`shared-${(w + i) % 3}`), expected: "any", events: testEvents(1, 100 + i) }
                        )
                    )
                  )
                )
              )
          )
          yield* latch.open
          yield* Fiber.joinAll(fibers)
          const seen = yield* Effect.forEach(subscribers, (queue) =>
            takeUntil(queue, (taken) => eventsOf(taken).filter(own).length >= total, 60_000).pipe(Effect.map(eventsOf))
          )
          const log = yield* logAfter(from, filter)
          expect(log).toHaveLength(total)
          expect(new Set(log.map((e) => e.eventId)).size).toBe(total)
          expect(positionsIncrease(log)).toBe(true)
          for (const events of seen) {
            expect(positionsIncrease(events)).toBe(true)
            expect(events.filter(own)).toEqual(log)
          }
        }).pipe(Effect.scoped))
    })

    describe("model", () => {
      test("random append sequences agree with a pure model", () =>
        Effect.gen(function* () {
          const s = yield* store
          yield* runModelProperty(s, { numRuns: options.propertyRuns ?? 40 })
        }))
    })
  })
}
