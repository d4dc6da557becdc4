/**
 * The three eventcore stores as systems under test. Every operation is one
 * `runPromise` of an Effect program, as an application would call the store.
 */
import { Chunk, Effect, Either, Layer, Logger, LogLevel, ManagedRuntime, Stream } from "effect"
import {
  type ConflictingExpectedVersions,
  type EventEncodeError,
  EventStore,
  type ExpectedVersion,
  InMemoryEventStore,
  type InvalidExpectedVersion,
  PgliteEventStore,
  PostgresEventStore,
  type StoreError,
  StreamId,
  StreamWrites,
  type UndeclaredStream
} from "eventcore"
import postgres from "postgres"
import type { SystemName } from "../lib/options.js"
import type { BenchEvent, SeedStream, System } from "./system.js"

type StreamWritesError = ConflictingExpectedVersions | InvalidExpectedVersion | UndeclaredStream | EventEncodeError

const expectation = (expected: number): ExpectedVersion.ExpectedVersion => (expected === 0 ? "no_stream" : expected)

/** The writes of one stream: `expected` and its events. */
const writesOf = (streamId: StreamId.StreamId, expected: number, events: ReadonlyArray<BenchEvent>) => {
  let writes: Either.Either<StreamWrites.StreamWrites, StreamWritesError> = StreamWrites.expect(
    StreamWrites.empty,
    streamId,
    expectation(expected)
  )
  for (const event of events) {
    writes = Either.flatMap(writes, StreamWrites.append({ streamId, eventType: event.type, data: event.data }))
  }
  return writes
}

const append = (streamId: string, expected: number, events: ReadonlyArray<BenchEvent>) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const writes = yield* writesOf(StreamId.unsafeMake(streamId), expected, events)
    yield* store.append(writes)
    return "appended" as const
  }).pipe(Effect.catchTag("VersionConflict", () => Effect.succeed("conflict" as const)))

const version = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.readStream(StreamId.unsafeMake(streamId), { maxCount: 0 }).pipe(
      Effect.map((read) => read.version),
      Effect.catchTag("StreamNotFound", () => Effect.succeed(0))
    )
  )

const readStream = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.map(store.readStream(StreamId.unsafeMake(streamId)), (read) => read.events.length)
  )

/** Pulls every page and touches every event, as a consumer folding the stream would. */
const streamEvents = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.streamEvents(StreamId.unsafeMake(streamId)).pipe(Stream.runFold(0, (count) => count + 1))
  )

/** All seed streams in one atomic append: every stream expected new. */
const seed = (streams: ReadonlyArray<SeedStream>) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let writes = StreamWrites.empty
    for (const { streamId } of streams) {
      writes = yield* StreamWrites.expect(writes, StreamId.unsafeMake(streamId), "no_stream")
    }
    for (const { streamId, events } of streams) {
      for (const event of events) {
        writes = yield* StreamWrites.append(writes, {
          streamId: StreamId.unsafeMake(streamId),
          eventType: event.type,
          data: event.data
        })
      }
    }
    yield* store.append(writes)
  })

/** Warnings (execute logs each retry) would scribble over the progress line. */
const quiet = Logger.minimumLogLevel(LogLevel.None)

export const makeStoreSystem = async (
  name: SystemName,
  layer: Layer.Layer<EventStore.EventStore, StoreError>
): Promise<System> => {
  const runtime = ManagedRuntime.make(Layer.merge(layer, quiet))
  await runtime.runPromise(Effect.void)
  return {
    name,
    append: (streamId, expected, events) => runtime.runPromise(append(streamId, expected, events)),
    version: (streamId) => runtime.runPromise(version(streamId)),
    readStream: (streamId) => runtime.runPromise(readStream(streamId)),
    streamEvents: (streamId) => runtime.runPromise(streamEvents(streamId)),
    seed: async (streams) => {
      // Large seeds go in slices, so no single request grows without bound.
      for (const slice of Chunk.chunksOf(Chunk.fromIterable(streams), 1000)) {
        await runtime.runPromise(seed(Chunk.toReadonlyArray(slice)))
      }
    },
    run: (effect) => runtime.runPromise(effect),
    close: () => runtime.dispose()
  }
}

/** The PostgreSQL store on a migrated database, with a pool of `maxConnections`. */
export const postgresSystem = async (url: string, maxConnections: number): Promise<System> => {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  // A connection of its own for the table sizes, outside the store's pool.
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const system = await makeStoreSystem("postgres", PostgresEventStore.layer({ url, maxConnections }))
  return {
    ...system,
    size: async () => {
      const [row] = await sql<[{ streams: number; events: number }]>`
        select (select count(*) from eventcore.streams)::int as streams,
               (select count(*) from eventcore.events)::int as events`
      return { streams: row?.streams ?? 0, events: row?.events ?? 0 }
    },
    close: async () => {
      await sql.end({ timeout: 5 })
      await system.close()
    }
  }
}

export const pgliteSystem = (): Promise<System> => makeStoreSystem("pglite", PgliteEventStore.layer())

export const memorySystem = (): Promise<System> => makeStoreSystem("memory", InMemoryEventStore.layer)
