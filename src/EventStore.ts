/**
 * The event store service: read a stream, stream it in pages, append
 * atomically; read, stream and follow the global log.
 */
import { Chunk, Context, Duration, Effect, Metric, Option, Schedule, Stream } from "effect"
import type { RecordedEvent } from "./Event.js"
import {
  type DuplicateEventId,
  type InvalidLogPosition,
  InvalidReadOptions,
  LogTimeout,
  type StoreError,
  StreamNotFound,
  type VersionConflict
} from "./errors.js"
import { follow, type Holdup, makeSignal, shareReads } from "./internal/follow.js"
import type { ProjectionBackend } from "./internal/projections.js"
import { withSpan } from "./internal/tracing.js"
import type { LogMessage } from "./LogMessage.js"
import * as LogPosition from "./LogPosition.js"
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
export type LogError = InvalidReadOptions | StoreError

/** Which events of the global log to read; both parts are applied by the store (in SQL for the SQL stores). */
export interface LogFilter {
  /** Only events of these types. */
  readonly eventTypes?: ReadonlyArray<string>
  /** Only events of streams whose id starts with this, literally (no pattern characters). */
  readonly streamPrefix?: string
}

export interface ReadAllOptions {
  /** Read the events after this position (default `LogPosition.start`: the whole log). */
  readonly after?: LogPosition.LogPosition
  /** The most events to return (default 1000). */
  readonly maxCount?: number
  readonly filter?: LogFilter
}

export interface LogRead {
  /** Events after `after`, in log order. */
  readonly events: ReadonlyArray<RecordedEvent>
  /**
   * Where the next read resumes: at least the last event returned, possibly
   * further, past events the filter skipped, but never past a point where an
   * event could still appear (a transaction still running).
   */
  readonly position: LogPosition.LogPosition
  /**
   * Whether the read reached the readable head: nothing readable follows
   * `position` (yet). A filtered read may return fewer events than `maxCount`,
   * even none, without having reached it: it bounds the events it examines.
   */
  readonly caughtUp: boolean
}

export interface StreamAllOptions {
  readonly after?: LogPosition.LogPosition
  readonly filter?: LogFilter
  /** Events per page, one query each (default 500). Memory is bounded by it. */
  readonly pageSize?: number
}

export interface SubscribeOptions extends StreamAllOptions {
  /**
   * How long the log may be held back by a transaction still running before
   * the subscription logs a warning naming it (default 10 seconds).
   */
  readonly stallWarning?: Duration.DurationInput
  /** When to read again after the database failed (default: from 100 ms, doubling, at most every 5 s, for ever). */
  readonly retry?: Schedule.Schedule<unknown, StoreError>
}

/** One page of the global log, as a store reads it (see `LogRead`). */
export interface LogPage extends LogRead {
  /**
   * Whether events have committed that cannot be read yet, because a
   * transaction that started before them is still running.
   */
  readonly heldBack: boolean
}

export interface EventStore {
  readonly readStream: (streamId: StreamId, options?: ReadOptions) => Effect.Effect<StreamRead, ReadError>
  readonly streamEvents: (streamId: StreamId, options?: StreamOptions) => Stream.Stream<RecordedEvent, ReadError>
  /**
   * All or nothing: every participant's expected version is checked and every
   * event written in one atomic step, or nothing is written.
   */
  readonly append: (writes: StreamWrites.StreamWrites) => Effect.Effect<AppendResult, AppendError>
  /** Up to `maxCount` events of the global log after `after`, in log order, and where to resume. */
  readonly readAll: (options?: ReadAllOptions) => Effect.Effect<LogRead, LogError>
  /** The global log after `after` as readable when pulled, in pages; ends at the readable head. */
  readonly streamAll: (options?: StreamAllOptions) => Stream.Stream<RecordedEvent, LogError>
  /**
   * The global log after `after`: catches up, then follows live, and never
   * ends by itself. `CaughtUp` says when everything readable was delivered.
   */
  readonly subscribe: (options?: SubscribeOptions) => Stream.Stream<LogMessage, LogError>
  /** Checkpoints and ownership for projections and reactors (see `Projection.run`); absent in stores of others. */
  readonly [projectionBackend]?: ProjectionBackend
  /** See `Primitives.horizon` and `waitForLog`. */
  readonly [logHorizon]?: Effect.Effect<bigint, StoreError>
}

/** Where a store keeps its support for projections and reactors: not for application code. */
export const projectionBackend: unique symbol = Symbol.for("eventcore/EventStore/projectionBackend")

/** Where a store says how far its log is readable: not for application code (see `waitForLog`). */
export const logHorizon: unique symbol = Symbol.for("eventcore/EventStore/logHorizon")

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
  /**
   * Up to `limit` events (at least 1) of the global log after `after` that
   * pass `filter`, in log order, with where to resume (see `LogPage`).
   */
  readonly readLog: (
    after: LogPosition.LogPosition,
    limit: number,
    filter: LogFilter
  ) => Effect.Effect<LogPage, StoreError>
  /**
   * How often a caught-up subscription looks for events written by others
   * (another process, raw SQL): from `min` after events arrived, doubling up to
   * `max` while none do. Absent when the store's own appends are its only
   * writes (in memory): they wake its subscriptions at once either way.
   */
  readonly polling?: { readonly min: Duration.DurationInput; readonly max: Duration.DurationInput }
  /** Checkpoints and ownership for projections and reactors. */
  readonly projections?: ProjectionBackend
  /** What holds the log back, when `readLog` says it is (`heldBack`). */
  readonly holdup?: Effect.Effect<Holdup | undefined, StoreError>
  /**
   * The oldest transaction whose events `readLog` cannot read yet, where it
   * reads (on a replica, as far as it has replayed). Absent when every
   * committed event is readable at once (in memory).
   */
  readonly horizon?: Effect.Effect<bigint, StoreError>
  /** Span attributes naming the backend, e.g. `{ "db.system": "postgresql" }`. */
  readonly attributes?: Record<string, unknown>
}

/** Counts appends refused by a version conflict, by store. */
export const conflictCounter = Metric.counter("eventcore_append_conflicts", {
  description: "appends refused because a participant's version was not the expected one",
  incremental: true
})

/** Why `value` is not a whole number of at least `min`, or undefined when it is (or is absent). */
const notWhole = (option: string, value: number | undefined, min: number): InvalidReadOptions | undefined =>
  value === undefined || (Number.isSafeInteger(value) && value >= min)
    ? undefined
    : new InvalidReadOptions({ option, value, reason: `must be an integer >= ${min}` })

const validate = (options: StreamOptions | undefined): Effect.Effect<void, InvalidReadOptions> => {
  if (options === undefined) return Effect.void
  const invalid =
    notWhole("fromVersion", options.fromVersion, 1) ??
    notWhole("maxCount", options.maxCount, 0) ??
    notWhole("pageSize", options.pageSize, 1)
  return invalid === undefined ? Effect.void : Effect.fail(invalid)
}

/** The default number of events `readAll` returns. */
export const defaultLogCount = 1000

const validateLog = (
  options: (ReadAllOptions & StreamAllOptions) | undefined
): Effect.Effect<LogPosition.LogPosition, InvalidReadOptions> => {
  const filter = options?.filter
  const invalid = (option: string, value: unknown, reason: string) =>
    Effect.fail(new InvalidReadOptions({ option, value, reason }))
  if (
    filter?.eventTypes !== undefined &&
    (!Array.isArray(filter.eventTypes) || !filter.eventTypes.every((type) => typeof type === "string"))
  ) {
    return invalid("filter.eventTypes", filter.eventTypes, "must be an array of event types (strings)")
  }
  if (filter?.streamPrefix !== undefined && typeof filter.streamPrefix !== "string") {
    return invalid("filter.streamPrefix", filter.streamPrefix, "must be a string")
  }
  const count = notWhole("maxCount", options?.maxCount, 0) ?? notWhole("pageSize", options?.pageSize, 1)
  if (count !== undefined) return Effect.fail(count)
  const after = options?.after ?? LogPosition.start
  return LogPosition.validate(after).pipe(
    Effect.mapError(
      () =>
        new InvalidReadOptions({
          option: "after",
          value: after,
          reason: "must be a LogPosition (20 digits, '-', 19 digits), such as one a read returned"
        })
    )
  )
}

/** How long the global log has been held back, as the subscriptions of this process last saw it. */
export const heldBackGauge = Metric.gauge("eventcore_log_held_back_seconds", {
  description:
    "how long the global log's readable head has been held back by a transaction still running (0 when it is not)"
})

export const make = (primitives: Primitives): EventStore => {
  const attributes = primitives.attributes ?? {}

  const readStream = (streamId: StreamId, options?: ReadOptions) =>
    validate(options).pipe(
      Effect.zipRight(
        primitives.read(streamId, options?.fromVersion ?? 1, options?.maxCount ?? Number.MAX_SAFE_INTEGER).pipe(
          withSpan(
            "eventcore.read_stream",
            () => ({ kind: "client", attributes: { ...attributes, "eventcore.stream_id": streamId } }),
            (read) => ({ "eventcore.event_count": read.events.length })
          )
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
      Stream.withSpan("eventcore.stream_events", {
        captureStackTrace: false,
        attributes: { ...attributes, "eventcore.stream_id": streamId }
      })
    )
  }

  const append = (writes: StreamWrites.StreamWrites) =>
    primitives.append(writes).pipe(
      Effect.tapErrorTag("VersionConflict", () => Metric.increment(conflictCounter)),
      withSpan("eventcore.append", () => ({
        kind: "client",
        attributes: {
          ...attributes,
          "eventcore.stream_count": StreamWrites.participants(writes).length,
          "eventcore.event_count": StreamWrites.events(writes).length
        }
      }))
    )

  // Wakes this store's subscriptions when it appends, before any poll would.
  const appended = makeSignal()

  const readAll = (options?: ReadAllOptions) =>
    validateLog(options).pipe(
      Effect.flatMap((after) =>
        options?.maxCount === 0
          ? Effect.succeed<LogRead>({ events: [], position: after, caughtUp: false })
          : primitives.readLog(after, options?.maxCount ?? defaultLogCount, options?.filter ?? {})
      ),
      Effect.map((page): LogRead => ({ events: page.events, position: page.position, caughtUp: page.caughtUp })),
      withSpan(
        "eventcore.read_all",
        () => ({ kind: "client", attributes }),
        (read) => ({
          "eventcore.event_count": read.events.length
        })
      )
    )

  const streamAll = (options?: StreamAllOptions) =>
    Stream.unwrap(
      Effect.map(validateLog(options), (after) =>
        Stream.paginateChunkEffect(after, (position) =>
          primitives
            .readLog(position, options?.pageSize ?? defaultPageSize, options?.filter ?? {})
            .pipe(
              Effect.map(
                (page) =>
                  [
                    Chunk.unsafeFromArray(page.events as Array<RecordedEvent>),
                    page.caughtUp ? Option.none() : Option.some(page.position)
                  ] as const
              )
            )
        )
      )
    ).pipe(Stream.withSpan("eventcore.stream_all", { attributes, captureStackTrace: false }))

  const liveRead = shareReads(primitives.readLog)
  const subscribe = (options?: SubscribeOptions) =>
    Stream.unwrap(
      Effect.map(validateLog(options), (after) =>
        follow({
          after,
          filter: options?.filter ?? {},
          pageSize: options?.pageSize ?? defaultPageSize,
          stallWarning: options?.stallWarning ?? "10 seconds",
          ...(options?.retry === undefined ? {} : { retry: options.retry }),
          readLog: liveRead,
          ...(primitives.polling === undefined ? {} : { polling: primitives.polling }),
          ...(primitives.holdup === undefined ? {} : { holdup: primitives.holdup }),
          appended,
          heldBackGauge
        })
      )
    )

  const appendAndWake = (writes: StreamWrites.StreamWrites) => Effect.tap(append(writes), () => appended.notify)

  return EventStore.of({
    readStream,
    streamEvents,
    append: appendAndWake,
    readAll,
    streamAll,
    subscribe,
    ...(primitives.projections === undefined ? {} : { [projectionBackend]: primitives.projections }),
    ...(primitives.horizon === undefined ? {} : { [logHorizon]: primitives.horizon })
  })
}

/**
 * Completes once the store's global log is readable up to `position`: a
 * position an append returned (`RecordedEvent.position`) or a read did. Read
 * your writes where the log is read: on a store that reads its log on a hot
 * standby (`PostgresConfig.replicaUrl`), that is once the standby has
 * replayed the append; anywhere, once no transaction that started before it is
 * still running. `readAll`, `streamAll` and `subscribe` then return
 * everything up to `position`. Fails with `LogTimeout` after `timeout`
 * (default 10 seconds).
 */
export const waitForLog = (
  position: LogPosition.LogPosition,
  options: { readonly timeout?: Duration.DurationInput } = {}
): Effect.Effect<void, LogTimeout | InvalidLogPosition | StoreError, EventStore> =>
  Effect.gen(function* () {
    const horizon = (yield* EventStore)[logHorizon]
    const { transaction } = LogPosition.parts(yield* LogPosition.validate(position))
    if (horizon === undefined) return
    const timeout = options.timeout ?? "10 seconds"
    yield* horizon.pipe(
      Effect.repeat({
        schedule: Schedule.exponential("5 millis").pipe(Schedule.union(Schedule.spaced("100 millis"))),
        until: (oldestUnreadable) => transaction < oldestUnreadable
      }),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new LogTimeout({ position, timeout: Duration.decode(timeout) })
      })
    )
  })
