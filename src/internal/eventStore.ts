/**
 * An `EventStore` from what a store implements (`StoreOperations`): option
 * validation, paging, live subscriptions, spans and metrics are added here,
 * so every store behaves the same at its surface.
 */
import { Chunk, Effect, FiberRef, Option, Stream } from "effect"
import type { RecordedEvent } from "../Event.js"
import {
  conflictCounter,
  defaultLogCount,
  defaultPageSize,
  type EventStore,
  heldBackGauge,
  type ReadAllOptions,
  type ReadOptions,
  type StreamAllOptions,
  type StreamOptions,
  type StreamRead,
  type SubscribeOptions
} from "../EventStore.js"
import { InvalidReadOptions, type StoreError, StreamArchived, StreamNotFound } from "../errors.js"
import * as LogPosition from "../LogPosition.js"
import type { StreamId } from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import { follow, makeSignal, shareReads } from "./follow.js"
import { withPersonalData } from "./personalStore.js"
import { makeSnapshots } from "./snapshots.js"
import {
  type AppendError,
  type AppendResult,
  checkpointsKey,
  horizonKey,
  type LogRead,
  lifecycleKey,
  personalDataKey,
  type StoreExtras,
  type StoreOperations,
  snapshotsKey,
  storedTypesKey
} from "./storeContract.js"
import { nativeTracer, withSpan } from "./tracing.js"

/** Why `value` is not a whole number of at least `min`, or undefined when it is (or is absent). */
const notWhole = (option: string, value: number | undefined, min: number): InvalidReadOptions | undefined =>
  value === undefined || (Number.isSafeInteger(value) && value >= min)
    ? undefined
    : new InvalidReadOptions({ option, value, reason: `must be an integer >= ${min}` })

/** Why `options` are not valid, or undefined when they are (or are absent). */
const invalidOf = (options: StreamOptions | undefined): InvalidReadOptions | undefined =>
  options === undefined
    ? undefined
    : (notWhole("fromVersion", options.fromVersion, 1) ??
      notWhole("maxCount", options.maxCount, 0) ??
      notWhole("pageSize", options.pageSize, 1))

const validate = (options: StreamOptions | undefined): Effect.Effect<void, InvalidReadOptions> => {
  const invalid = invalidOf(options)
  return invalid === undefined ? Effect.void : Effect.fail(invalid)
}

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

export const fromOperations = (given: StoreOperations): EventStore & StoreExtras => {
  const operations = given.keys === undefined ? given : withPersonalData(given, given.keys)
  const attributes = operations.attributes ?? {}

  const readStream = (
    streamId: StreamId,
    options?: ReadOptions
  ): Effect.Effect<StreamRead, InvalidReadOptions | StreamNotFound | StreamArchived | StoreError> =>
    Effect.suspend((): Effect.Effect<StreamRead, InvalidReadOptions | StreamNotFound | StreamArchived | StoreError> => {
      const invalid = invalidOf(options)
      if (invalid !== undefined) return Effect.fail(invalid)
      const read = operations.read(streamId, options?.fromVersion ?? 1, options?.maxCount ?? Number.MAX_SAFE_INTEGER)
      return Effect.flatMap(
        read.pipe(
          withSpan(
            "eventcore.read_stream",
            () => ({ kind: "client", attributes: { ...attributes, "eventcore.stream_id": streamId } }),
            (read) => ({ "eventcore.event_count": read.events.length })
          )
        ),
        // Outside the span: finding no events is a successful read for the
        // database (and for a command, whose first read of a new stream it is),
        // not a failed operation for traces to flag.
        (read): Effect.Effect<StreamRead, StreamNotFound | StreamArchived> =>
          read.archived === true
            ? Effect.fail(new StreamArchived({ streamId }))
            : read.version > 0
              ? Effect.succeed({ streamId, version: read.version, events: read.events })
              : Effect.fail(new StreamNotFound({ streamId }))
      )
    })

  const streamEvents = (streamId: StreamId, options?: StreamOptions) => {
    const pageSize = options?.pageSize ?? defaultPageSize
    const firstVersion = options?.fromVersion ?? 1
    const total = options?.maxCount ?? Number.MAX_SAFE_INTEGER
    // Each page is one read from the version after the last one seen, so memory
    // holds one page however long the stream is.
    const page = (cursor: { readonly next: number; readonly remaining: number; readonly first: boolean }) => {
      const limit = Math.min(pageSize, cursor.remaining)
      return operations.read(streamId, cursor.next, limit).pipe(
        Effect.filterOrFail(
          (read) => read.archived !== true && (!cursor.first || read.version > 0),
          (read) => (read.archived === true ? new StreamArchived({ streamId }) : new StreamNotFound({ streamId }))
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

  // Wakes this store's subscriptions when it appends, before any poll would.
  const appended = makeSignal()

  /**
   * The store's append, counting conflicts and waking subscriptions, with its
   * span when a tracer is installed. One step around the store's own: this is
   * the hottest path, and each step is an Effect the runtime interprets.
   */
  const append = (writes: StreamWrites.StreamWrites) =>
    Effect.withFiberRuntime<AppendResult, AppendError>((fiber) => {
      const observed = Effect.matchEffect(operations.append(writes), {
        onFailure: (error) => {
          if (error._tag === "VersionConflict") {
            conflictCounter.unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
          }
          return Effect.fail(error)
        },
        onSuccess: (result) => {
          appended.unsafeNotify()
          return Effect.succeed(result)
        }
      })
      return fiber.currentTracer === nativeTracer
        ? observed
        : Effect.withSpan(observed, "eventcore.append", {
            kind: "client",
            captureStackTrace: false,
            attributes: {
              ...attributes,
              "eventcore.stream_count": StreamWrites.participants(writes).length,
              "eventcore.event_count": StreamWrites.events(writes).length
            }
          })
    })

  const readAll = (options?: ReadAllOptions) =>
    validateLog(options).pipe(
      Effect.flatMap((after) =>
        options?.maxCount === 0
          ? Effect.succeed<LogRead>({ events: [], position: after, caughtUp: false })
          : operations.readLog(after, options?.maxCount ?? defaultLogCount, options?.filter ?? {})
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
          operations
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

  const liveRead = shareReads(operations.readLog)
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
          ...(operations.polling === undefined ? {} : { polling: operations.polling }),
          ...(operations.blockingTransaction === undefined
            ? {}
            : { blockingTransaction: operations.blockingTransaction }),
          appended,
          heldBackGauge
        })
      )
    )

  return {
    readStream,
    streamEvents,
    append,
    readAll,
    streamAll,
    subscribe,
    ...(operations.checkpoints === undefined ? {} : { [checkpointsKey]: operations.checkpoints }),
    ...(operations.horizon === undefined ? {} : { [horizonKey]: operations.horizon }),
    ...(operations.storedTypes === undefined ? {} : { [storedTypesKey]: operations.storedTypes }),
    ...(operations.snapshots === undefined ? {} : { [snapshotsKey]: makeSnapshots(operations.snapshots, attributes) }),
    ...(operations.lifecycle === undefined ? {} : { [lifecycleKey]: operations.lifecycle }),
    ...(operations.keys === undefined || operations.erase === undefined
      ? {}
      : {
          [personalDataKey]: {
            keys: operations.keys,
            // An erasure appends its event: this store's subscriptions wake for it as for any append.
            erase: (subject: string, by: string) =>
              Effect.tap((operations.erase as NonNullable<StoreOperations["erase"]>)(subject, by), () =>
                appended.unsafeNotify()
              )
          }
        })
  }
}
