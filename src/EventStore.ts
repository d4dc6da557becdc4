/**
 * The event store service: read a stream, stream it in pages, append
 * atomically; read, stream and follow the global log.
 */
import { Context, Duration, Effect, Metric, Schedule, type Stream } from "effect"
import type { RecordedEvent } from "./Event.js"
import {
  type InvalidLogPosition,
  type InvalidReadOptions,
  LogTimeout,
  type StoreError,
  type StreamArchived,
  type StreamNotFound
} from "./errors.js"
import {
  type AppendError,
  type AppendResult,
  horizonKey,
  type LogFilter,
  type LogRead,
  type StoreExtras
} from "./internal/storeContract.js"
import type { LogMessage } from "./LogMessage.js"
import * as LogPosition from "./LogPosition.js"
import type { StreamId } from "./StreamId.js"
import type * as StreamWrites from "./StreamWrites.js"

export type { AppendError, AppendResult, LogFilter, LogRead }

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

export type ReadError = StreamNotFound | StreamArchived | InvalidReadOptions | StoreError
export type LogError = InvalidReadOptions | StoreError

export interface ReadAllOptions {
  /** Read the events after this position (default `LogPosition.start`: the whole log). */
  readonly after?: LogPosition.LogPosition
  /** The most events to return (default 1000). */
  readonly maxCount?: number
  readonly filter?: LogFilter
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
}

export const EventStore: Context.Tag<EventStore, EventStore> = Context.GenericTag<EventStore>("eventcore/EventStore")

/** How many events a page of `streamEvents`, `streamAll` and `subscribe` holds unless told. */
export const defaultPageSize = 500

/** The default number of events `readAll` returns. */
export const defaultLogCount = 1000

/** Counts appends refused by a version conflict, by store. */
export const conflictCounter = Metric.counter("eventcore_append_conflicts", {
  description: "appends refused because a participant's version was not the expected one",
  incremental: true
})

/** How long the global log has been held back, as the subscriptions of this process last saw it. */
export const heldBackGauge = Metric.gauge("eventcore_log_held_back_seconds", {
  description:
    "how long the global log's readable head has been held back by a transaction still running (0 when it is not)"
})

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
    const horizon = ((yield* EventStore) as EventStore & StoreExtras)[horizonKey]
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
