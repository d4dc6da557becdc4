/**
 * The life of a stream after its last append, on every store: archive,
 * truncate, purge.
 */
import { Chunk, Effect, Either, Fiber, Schema, type Scope, Stream } from "effect"
import { Command, EventStore, execute, LogPosition, Snapshot, StreamId, StreamLifecycle } from "eventcore"
import { writesOf } from "eventcore/testing"
import { expect, it } from "vitest"

export type WithStore = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore | Scope.Scope>) => Promise<A>

const stream = StreamId.unsafeMake("ledger-1")

const appendTo = (streamId: StreamId.StreamId, count: number) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.append(
      writesOf({
        streamId,
        expected: "any",
        events: Array.from({ length: count }, (_, i) => ({ eventType: "Entry", data: { n: i } }))
      })
    )
  )

const Entry = Schema.TaggedStruct("Entry", { n: Schema.Number })

/** Counts the entries it folds, and snapshots its state after every event. */
const CountEntries = Command.make({
  name: "CountEntries",
  event: Entry,
  streams: () => [stream],
  initialState: 0,
  apply: (count: number) => count + 1,
  snapshot: Snapshot.make({ state: Schema.Number, version: 1, after: { events: 1 } }),
  decide: (count) => Effect.succeed([{ streamId: stream, event: Entry.make({ n: count }) }])
})

/**
 * The versions of `streamId`'s events in the global log, once it is readable
 * `through` the test's last append (a transaction running elsewhere on the
 * server holds the log back meanwhile).
 */
const logOf = (streamId: StreamId.StreamId, through: LogPosition.LogPosition) =>
  Effect.zipRight(
    EventStore.waitForLog(through, { timeout: "60 seconds" }),
    Effect.flatMap(EventStore.EventStore, (store) => Stream.runCollect(store.streamAll()))
  ).pipe(
    Effect.map((events) =>
      Chunk.toReadonlyArray(events)
        .filter((event) => event.streamId === streamId)
        .map((event) => event.streamVersion)
    )
  )

export const defineLifecycleTests = (withStore: WithStore) => {
  it("an archived stream is no longer read or appended to, as a writer or a read-only participant; its events stay in the log", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const written = yield* appendTo(stream, 3)
        const other = StreamId.unsafeMake("ledger-2")
        const archived = yield* StreamLifecycle.archive(stream)
        expect(archived).toMatchObject({ streamId: stream, version: 3, already: false })

        expect(yield* Effect.flip(store.readStream(stream))).toMatchObject({ _tag: "StreamArchived", streamId: stream })
        expect(yield* Effect.flip(store.readStream(stream, { maxCount: 0 }))).toMatchObject({ _tag: "StreamArchived" })
        expect(yield* Effect.flip(Stream.runDrain(store.streamEvents(stream)))).toMatchObject({
          _tag: "StreamArchived"
        })
        expect(yield* Effect.flip(appendTo(stream, 1))).toMatchObject({ _tag: "StreamArchived", streamId: stream })
        const readOnly = writesOf(
          { streamId: stream, expected: 3 },
          { streamId: other, expected: "any", events: [{ eventType: "Entry", data: { n: 0 } }] }
        )
        expect(yield* Effect.flip(store.append(readOnly))).toMatchObject({ _tag: "StreamArchived", streamId: stream })
        expect(yield* Effect.either(store.readStream(other))).toMatchObject({ _tag: "Left" })
        expect(yield* Effect.flip(execute(CountEntries, {}))).toMatchObject({ _tag: "StreamArchived" })

        expect(yield* logOf(stream, written.events[2]?.position as LogPosition.LogPosition)).toEqual([1, 2, 3])
        const again = yield* StreamLifecycle.archive(stream)
        expect(again).toMatchObject({ version: 3, already: true, archivedAt: archived.archivedAt })
        expect(yield* Effect.flip(StreamLifecycle.archive(StreamId.unsafeMake("nothing-here")))).toMatchObject({
          _tag: "StreamNotFound"
        })
      })
    ))

  it("an append racing an archive commits before it or is refused, never after it", () =>
    withStore(
      Effect.gen(function* () {
        const positions = (yield* appendTo(stream, 1)).events.map((event) => event.position)
        // Eight writers append until the archive refuses them; it comes once they have written a few.
        const writeOne = Effect.tap(appendTo(stream, 1), (result) => {
          positions.push(...result.events.map((event) => event.position))
        })
        const writers = yield* Effect.forEach(
          Array.from({ length: 8 }),
          () =>
            Effect.fork(
              Effect.zipRight(writeOne, Effect.yieldNow()).pipe(
                Effect.forever,
                Effect.flip,
                Effect.map((error) => error._tag)
              )
            ),
          { concurrency: "unbounded" }
        )
        const store = yield* EventStore.EventStore
        yield* store
          .readStream(stream, { maxCount: 0 })
          .pipe(Effect.zipLeft(Effect.sleep("1 millis")), Effect.repeat({ until: (read) => read.version >= 20 }))
        const archived = yield* StreamLifecycle.archive(stream)
        const endings = yield* Effect.forEach(writers, Fiber.join)
        expect(endings).toEqual(Array.from({ length: 8 }, () => "StreamArchived"))
        // Every event committed is within the version the archive saw.
        const last = positions.reduce(LogPosition.max)
        const versions = yield* logOf(stream, last)
        expect(versions).toEqual(Array.from({ length: archived.version }, (_, i) => i + 1))
        expect(archived.version).toBeGreaterThan(1)
      })
    ))

  it("a truncated stream is read from its truncation point, keeps its version, and commands fold from there", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* appendTo(stream, 5)
        expect(yield* execute(CountEntries, {})).toMatchObject({ streamVersions: new Map([[stream, 6]]) })
        yield* Snapshot.awaitWrites

        const truncated = yield* StreamLifecycle.truncate(stream, { before: 4 })
        expect(truncated).toEqual({ streamId: stream, version: 6, truncatedBefore: 4 })
        const read = yield* store.readStream(stream)
        expect([read.version, read.events.map((e) => e.streamVersion)]).toEqual([6, [4, 5, 6]])
        expect(
          (yield* store.readStream(stream, { fromVersion: 2, maxCount: 2 })).events.map((e) => e.streamVersion)
        ).toEqual([4, 5])
        const paged = yield* Stream.runCollect(store.streamEvents(stream, { pageSize: 2 }))
        expect(Chunk.toReadonlyArray(paged).map((e) => e.streamVersion)).toEqual([4, 5, 6])
        // The snapshot that folded six events is gone: the command folds the three left and decides on them.
        const counted = yield* execute(CountEntries, {})
        const [entry] = (yield* store.readStream(stream, { fromVersion: 7 })).events
        expect([counted.streamVersions.get(stream), entry?.data]).toEqual([7, { n: 3 }])

        // A point never moves back; one outside the stream is refused with its version.
        expect(yield* StreamLifecycle.truncate(stream, { before: 2 })).toMatchObject({ truncatedBefore: 4 })
        for (const before of [0, 8, 1.5]) {
          expect(yield* Effect.flip(StreamLifecycle.truncate(stream, { before }))).toMatchObject({
            _tag: "InvalidTruncation",
            streamId: stream,
            before,
            version: 7
          })
        }
        expect(yield* Effect.flip(StreamLifecycle.truncate(StreamId.unsafeMake("none"), { before: 1 }))).toMatchObject({
          _tag: "InvalidTruncation",
          version: 0
        })

        // Until purged, the global log keeps the hidden events; then they are gone, and nothing else.
        const through = counted.events[0]?.position as LogPosition.LogPosition
        expect(yield* logOf(stream, through)).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(yield* StreamLifecycle.purgeTruncated).toBe(3)
        expect(yield* logOf(stream, through)).toEqual([4, 5, 6, 7])
        expect((yield* store.readStream(stream)).events.map((e) => e.streamVersion)).toEqual([4, 5, 6, 7])
        expect(yield* StreamLifecycle.purgeTruncated).toBe(0)
        // Appends go on from the version, gap-free.
        yield* appendTo(stream, 1)
        expect((yield* store.readStream(stream)).version).toBe(8)
        expect(Either.isRight(yield* Effect.either(store.readStream(stream)))).toBe(true)
      })
    ))
}
