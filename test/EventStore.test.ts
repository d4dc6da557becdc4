/**
 * What `fromOperations` (src/internal/eventStore.ts) adds around a store's
 * operations: option validation, paging, spans and the conflict metric. The
 * operations here are the in-memory store's, wrapped to record every read
 * they are asked for.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Either, Exit, Fiber, Metric, Option, Stream } from "effect"
import {
  EventStore,
  InMemoryEventStore,
  InvalidReadOptions,
  type RecordedEvent,
  type StreamId,
  StreamNotFound
} from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { fromOperations } from "../src/internal/eventStore.js"
import { makeRecordingTracer } from "./support/recording.js"

const stream = "paged" as StreamId.StreamId
const missing = "missing" as StreamId.StreamId

/** A store over in-memory operations that records each read's (fromVersion, limit). */
const recordingStore = (attributes?: Record<string, unknown>) =>
  Effect.gen(function* () {
    const inner = yield* InMemoryEventStore.make
    yield* inner.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(5) }))
    const reads: Array<readonly [number, number]> = []
    const store = fromOperations({
      read: (streamId, fromVersion, limit) =>
        inner.readStream(streamId).pipe(
          Effect.map((read) => ({
            version: read.version,
            events: read.events.slice(fromVersion - 1, fromVersion - 1 + limit)
          })),
          Effect.catchTag("StreamNotFound", () => Effect.succeed({ version: 0, events: [] })),
          Effect.orDie,
          Effect.tap(() => Effect.sync(() => reads.push([fromVersion, limit])))
        ),
      append: inner.append,
      readLog: (after, limit, filter) =>
        Effect.map(Effect.orDie(inner.readAll({ after, maxCount: limit, filter })), (read) => ({
          ...read,
          heldBack: false
        })),
      ...(attributes === undefined ? {} : { attributes })
    })
    return { store, reads }
  })

const versions = (events: ReadonlyArray<{ readonly streamVersion: number }>) => events.map((e) => e.streamVersion)

describe("fromOperations", () => {
  it("a program run without a store says which service is missing", () => {
    const exit = Effect.runSyncExit(EventStore.EventStore as unknown as Effect.Effect<unknown>)
    expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("Service not found: eventcore/EventStore")
  })

  it.effect("streamEvents reads pages of pageSize and stops at the version the last page reported", () =>
    Effect.gen(function* () {
      const { store, reads } = yield* recordingStore()
      const all = yield* Stream.runCollect(store.streamEvents(stream, { pageSize: 2 }))
      expect(versions([...all])).toEqual([1, 2, 3, 4, 5])
      expect(reads).toEqual([
        [1, 2],
        [3, 2],
        [5, 2]
      ])
    })
  )

  it.effect("streamEvents reads no further than maxCount, and pages of 500 by default", () =>
    Effect.gen(function* () {
      const { store, reads } = yield* recordingStore()
      const some = yield* Stream.runCollect(store.streamEvents(stream, { fromVersion: 2, maxCount: 3, pageSize: 2 }))
      expect(versions([...some])).toEqual([2, 3, 4])
      expect(reads).toEqual([
        [2, 2],
        [4, 1]
      ])
      reads.length = 0
      yield* Stream.runCollect(store.streamEvents(stream))
      expect(reads).toEqual([[1, EventStore.defaultPageSize]])
      expect(EventStore.defaultPageSize).toBe(500)
    })
  )

  it.effect("streamEvents with maxCount 0 reads no event, yet fails for a missing stream", () =>
    Effect.gen(function* () {
      const { store, reads } = yield* recordingStore()
      expect([...(yield* Stream.runCollect(store.streamEvents(stream, { maxCount: 0 })))]).toEqual([])
      expect(reads).toEqual([[1, 0]])
      const error = yield* Effect.flip(Stream.runCollect(store.streamEvents(missing, { maxCount: 0 })))
      expect(error).toEqual(new StreamNotFound({ streamId: missing }))
      const paged = yield* Effect.flip(Stream.runCollect(store.streamEvents(missing, { pageSize: 2 })))
      expect(paged).toEqual(new StreamNotFound({ streamId: missing }))
    })
  )

  it.effect("refuses out-of-range options, naming the option and its lower bound", () =>
    Effect.gen(function* () {
      const { store, reads } = yield* recordingStore()
      expect(yield* Effect.flip(store.readStream(stream, { fromVersion: 0 }))).toEqual(
        new InvalidReadOptions({ option: "fromVersion", value: 0, reason: "must be an integer >= 1" })
      )
      expect(yield* Effect.flip(store.readStream(stream, { maxCount: -1 }))).toEqual(
        new InvalidReadOptions({ option: "maxCount", value: -1, reason: "must be an integer >= 0" })
      )
      expect(yield* Effect.flip(Stream.runCollect(store.streamEvents(stream, { pageSize: 0 })))).toEqual(
        new InvalidReadOptions({ option: "pageSize", value: 0, reason: "must be an integer >= 1" })
      )
      expect(reads).toEqual([])
      expect(Either.isRight(yield* Effect.either(store.readStream(stream, { fromVersion: 1, maxCount: 0 })))).toBe(true)
    })
  )

  it.effect("each operation runs in a client span carrying the store's attributes and what it did", () => {
    const { spans, layer } = makeRecordingTracer()
    return Effect.gen(function* () {
      const { store } = yield* recordingStore({ "db.system": "test" })
      yield* store.readStream(stream)
      yield* Stream.runCollect(store.streamEvents(stream))
      yield* store.append(
        writesOf(
          { streamId: stream, expected: 5, events: testEvents(2) },
          { streamId: missing, expected: "any", events: [] }
        )
      )
      // The wrapped in-memory store records its own spans too: keep this store's.
      const byName = new Map(spans.filter((s) => s.attributes.get("db.system") === "test").map((s) => [s.name, s]))
      const read = byName.get("eventcore.read_stream")
      expect(read?.kind).toBe("client")
      expect(Object.fromEntries(read?.attributes ?? [])).toEqual({
        "db.system": "test",
        "eventcore.stream_id": stream,
        "eventcore.event_count": 5
      })
      const streamed = byName.get("eventcore.stream_events")
      expect(Object.fromEntries(streamed?.attributes ?? [])).toEqual({
        "db.system": "test",
        "eventcore.stream_id": stream
      })
      const append = byName.get("eventcore.append")
      expect(append?.kind).toBe("client")
      expect(Object.fromEntries(append?.attributes ?? [])).toEqual({
        "db.system": "test",
        "eventcore.stream_count": 2,
        "eventcore.event_count": 2
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("the in-memory store names itself in its spans", () => {
    const { spans, layer } = makeRecordingTracer()
    return Effect.gen(function* () {
      const store = yield* InMemoryEventStore.make
      yield* Effect.either(store.readStream(missing))
      expect(spans.map((s) => [s.name, s.attributes.get("db.system")])).toEqual([["eventcore.read_stream", "memory"]])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a version conflict counts in eventcore_append_conflicts; other failures do not", () =>
    Effect.gen(function* () {
      const store = yield* InMemoryEventStore.make
      const count = Effect.map(Metric.value(EventStore.conflictCounter), (state) => state.count)
      const before = yield* count
      yield* Effect.flip(store.append(writesOf({ streamId: stream, expected: 1, events: [] })))
      expect(yield* count).toBe(before + 1)
      const id = "0190a7d2-3c4e-7a1b-8c2d-0000000000aa"
      const once = writesOf({ streamId: missing, expected: "any", events: [{ eventType: "E", data: {}, eventId: id }] })
      yield* store.append(once)
      expect((yield* Effect.flip(store.append(once)))._tag).toBe("DuplicateEventId")
      expect(yield* count).toBe(before + 1)
      const key = (yield* Metric.snapshot).find(
        (pair) => pair.metricKey.name === "eventcore_append_conflicts"
      )?.metricKey
      expect(key?.description).toEqual(
        Option.some("appends refused because a participant's version was not the expected one")
      )
    })
  )

  it.live("subscribers at the same position share one read; one of them interrupted does not fail the others", () =>
    Effect.gen(function* () {
      const inner = yield* InMemoryEventStore.make
      const appended = yield* inner.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(3) }))
      const gate = yield* Deferred.make<void>()
      let reads = 0
      const store = fromOperations({
        read: () => Effect.succeed({ version: 0, events: [] }),
        append: inner.append,
        readLog: (after, limit, filter) =>
          Effect.sync(() => reads++).pipe(
            Effect.zipRight(Deferred.await(gate)),
            Effect.zipRight(Effect.orDie(inner.readAll({ after, maxCount: limit, filter }))),
            Effect.map((read) => ({ ...read, heldBack: false }))
          )
      })
      const firstPage = store.subscribe().pipe(
        Stream.takeUntil((message) => message._tag === "CaughtUp"),
        Stream.filterMap((message) => (message._tag === "Event" ? Option.some(message.event) : Option.none())),
        Stream.runCollect
      )
      const interrupted = yield* Effect.fork(firstPage)
      const subscribers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(firstPage))
      // Every subscriber is waiting for the gated read before it opens.
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(interrupted)
      yield* Deferred.succeed(gate, undefined)
      const pages = yield* Fiber.joinAll(subscribers)
      for (const page of pages) expect([...page]).toEqual(appended.events)
      expect(reads).toBe(1)
      // A read at another position is a read of its own.
      const after = (appended.events[0] as RecordedEvent).position
      yield* Stream.runCollect(store.subscribe({ after }).pipe(Stream.take(1)))
      expect(reads).toBe(2)
    })
  )
})
