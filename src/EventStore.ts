/**
 * The event store service: read a stream, stream it in pages, append atomically.
 */
import { Chunk, Context, Effect, Metric, Option, Stream } from "effect"
import type { RecordedEvent } from "./Event.js"
import {
  type DuplicateEventId,
  InvalidReadOptions,
  type StoreError,
  StreamNotFound,
  type VersionConflict
} from "./errors.js"
import type { StreamId } from "./StreamId.js"
import * as StreamWrites from "./StreamWrites.js"

export interface ReadOptions {
  /** The first version to return (default 1). */
  readonly fromVersion?: number
  /** The most events to return (default: all). */
  readonly maxCount?: number
}

export interface StreamOptions extends ReadOptions {
  /** How many events one page (one query) holds (default 500). Memory is bounded by it. */
  readonly pageSize?: number
}

export interface StreamRead {
  readonly streamId: StreamId
  /** The stream's current version, whatever range was read. */
  readonly version: number
  readonly events: ReadonlyArray<RecordedEvent>
}

export interface AppendResult {
  /** Every participant's version after the append, read-only participants included. */
  readonly streamVersions: ReadonlyMap<StreamId, number>
  readonly events: ReadonlyArray<RecordedEvent>
}

export type ReadError = StreamNotFound | InvalidReadOptions | StoreError
export type AppendError = VersionConflict | DuplicateEventId | StoreError

export interface EventStore {
  readonly readStream: (streamId: StreamId, options?: ReadOptions) => Effect.Effect<StreamRead, ReadError>
  readonly streamEvents: (streamId: StreamId, options?: StreamOptions) => Stream.Stream<RecordedEvent, ReadError>
  /**
   * All or nothing: every participant's expected version is checked and every
   * event written in one atomic step, or nothing is written.
   */
  readonly append: (writes: StreamWrites.StreamWrites) => Effect.Effect<AppendResult, AppendError>
}

export const EventStore: Context.Tag<EventStore, EventStore> = Context.GenericTag<EventStore>("eventcore/EventStore")

export const defaultPageSize = 500

/**
 * What a store implements; `make` adds option validation, paging, spans and metrics,
 * so every store behaves the same at its surface.
 */
export interface Primitives {
  /**
   * Up to `limit` events of the stream from `fromVersion` on, with the stream's
   * current version (0 when it has no events).
   */
  readonly read: (
    streamId: StreamId,
    fromVersion: number,
    limit: number
  ) => Effect.Effect<{ readonly version: number; readonly events: ReadonlyArray<RecordedEvent> }, StoreError>
  readonly append: (writes: StreamWrites.StreamWrites) => Effect.Effect<AppendResult, AppendError>
  /** Span attributes naming the backend, e.g. `{ "db.system": "postgresql" }`. */
  readonly attributes?: Record<string, unknown>
}

/** Counts appends refused by a version conflict, by store. */
export const conflictCounter = Metric.counter("eventcore_append_conflicts", {
  description: "appends refused because a participant's version was not the expected one",
  incremental: true
})

const checkWhole = (option: string, value: number | undefined, min: number) =>
  value === undefined || (Number.isSafeInteger(value) && value >= min)
    ? Effect.void
    : Effect.fail(new InvalidReadOptions({ option, value, reason: `must be an integer >= ${min}` }))

const validate = (options: StreamOptions | undefined) =>
  Effect.all([
    checkWhole("fromVersion", options?.fromVersion, 1),
    checkWhole("maxCount", options?.maxCount, 0),
    checkWhole("pageSize", options?.pageSize, 1)
  ])

export const make = (primitives: Primitives): EventStore => {
  const attributes = primitives.attributes ?? {}

  const readStream = (streamId: StreamId, options?: ReadOptions) =>
    validate(options).pipe(
      Effect.zipRight(
        primitives.read(streamId, options?.fromVersion ?? 1, options?.maxCount ?? Number.MAX_SAFE_INTEGER).pipe(
          Effect.tap((read) => Effect.annotateCurrentSpan("eventcore.event_count", read.events.length)),
          Effect.withSpan("eventcore.read_stream", {
            kind: "client",
            attributes: { ...attributes, "eventcore.stream_id": streamId }
          })
        )
      ),
      // Outside the span: finding no events is a successful read for the
      // database (and for a command, whose first read of a new stream it is),
      // not a failed operation for traces to flag.
      Effect.filterOrFail(
        (read) => read.version > 0,
        () => new StreamNotFound({ streamId })
      ),
      Effect.map((read): StreamRead => ({ streamId, version: read.version, events: read.events }))
    )

  const streamEvents = (streamId: StreamId, options?: StreamOptions) => {
    const pageSize = options?.pageSize ?? defaultPageSize
    const firstVersion = options?.fromVersion ?? 1
    const total = options?.maxCount ?? Number.MAX_SAFE_INTEGER
    // Each page is one read from the version after the last one seen, so memory
    // holds one page however long the stream is.
    const page = (cursor: { readonly next: number; readonly remaining: number; readonly first: boolean }) => {
      const limit = Math.min(pageSize, cursor.remaining)
      return primitives.read(streamId, cursor.next, limit).pipe(
        Effect.filterOrFail(
          (read) => !cursor.first || read.version > 0,
          () => new StreamNotFound({ streamId })
        ),
        Effect.map((read) => {
          const last = read.events.at(-1)
          const remaining = cursor.remaining - read.events.length
          // The page comes with the stream's version: no extra read to find the end.
          const more = last !== undefined && last.streamVersion < read.version && remaining > 0
          return [
            read.events,
            more ? Option.some({ next: last.streamVersion + 1, remaining, first: false }) : Option.none()
          ] as const
        })
      )
    }
    return Stream.unwrap(
      validate(options).pipe(
        Effect.as(
          total === 0
            ? // Nothing to page through, but a missing stream is still an error.
              Stream.fromEffect(readStream(streamId, { maxCount: 0 })).pipe(Stream.drain)
            : Stream.paginateChunkEffect({ next: firstVersion, remaining: total, first: true }, (cursor) =>
                Effect.map(
                  page(cursor),
                  ([events, next]) => [Chunk.unsafeFromArray(events as Array<RecordedEvent>), next] as const
                )
              )
        )
      )
    ).pipe(
      Stream.withSpan("eventcore.stream_events", { attributes: { ...attributes, "eventcore.stream_id": streamId } })
    )
  }

  const append = (writes: StreamWrites.StreamWrites) => {
    const participants = StreamWrites.participants(writes)
    const eventCount = StreamWrites.events(writes).length
    return primitives.append(writes).pipe(
      Effect.tapErrorTag("VersionConflict", () => Metric.increment(conflictCounter)),
      Effect.withSpan("eventcore.append", {
        kind: "client",
        attributes: {
          ...attributes,
          "eventcore.stream_count": participants.length,
          "eventcore.event_count": eventCount
        }
      })
    )
  }

  return EventStore.of({ readStream, streamEvents, append })
}
