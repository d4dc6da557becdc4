/**
 * The command executor: read, fold, decide, append with every read stream's
 * version, and on a version conflict do it all again following a `Schedule`.
 */
import { Clock, Effect, Either, Metric, ParseResult, Schedule, Schema } from "effect"
import type { Command } from "./Command.js"
import type { RecordedEvent } from "./Event.js"
import * as EventSchema from "./EventSchema.js"
import * as EventStore from "./EventStore.js"
import {
  type DuplicateEventId,
  type EventDecodeError,
  EventEncodeError,
  type StoreError,
  UndeclaredStream,
  type UnknownEventType,
  type VersionConflict
} from "./errors.js"
import { uuidv7 } from "./internal/uuid.js"
import type { StreamId } from "./StreamId.js"
import * as StreamWrites from "./StreamWrites.js"

export interface ExecuteOptions<R = never> {
  /** When to retry after a `VersionConflict` (default `defaultRetry`). Other errors never retry. */
  readonly retry?: Schedule.Schedule<unknown, VersionConflict, R>
  /** Merged into the metadata of every event the command writes (over the ids below). */
  readonly metadata?: Record<string, unknown>
  /**
   * The event this command reacts to (in a reactor). Every event the command
   * writes carries `metadata.causationId` (this event's id) and
   * `metadata.correlationId` (the cause's correlation id, or its own id when it
   * has none). Without a cause both are a fresh id for this execution.
   */
  readonly causedBy?: RecordedEvent
}

export interface ExecutionResult {
  /** How many times the command ran: 1 when it succeeded at once. */
  readonly attempts: number
  readonly events: ReadonlyArray<RecordedEvent>
  /** Every stream the last attempt read, at its version after the append. */
  readonly streamVersions: ReadonlyMap<StreamId, number>
}

export type ExecuteError<DomainError> =
  | DomainError
  | VersionConflict
  | UndeclaredStream
  | EventEncodeError
  | EventDecodeError
  | UnknownEventType
  | DuplicateEventId
  | StoreError

/** Up to 4 retries, 10 ms doubling, each delay jittered by ±20%. */
export const defaultRetry: Schedule.Schedule<unknown, VersionConflict> = Schedule.exponential("10 millis", 2).pipe(
  Schedule.jitteredWith({ min: 0.8, max: 1.2 }),
  Schedule.intersect(Schedule.recurs(4))
)

/** Counts command attempts that ran again after a version conflict. */
export const retryCounter = Metric.counter("eventcore_command_retries", {
  description: "command attempts re-run after a version conflict",
  incremental: true
})

const isVersionConflict = (error: unknown): error is VersionConflict =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "VersionConflict"

/**
 * Runs `command` for `input`: reads its streams, decides, appends with the
 * version of every stream it read, and runs again after a version conflict as
 * `options.retry` says.
 */
export function execute<Input, State, Event extends { readonly _tag: string }, EventEncoded, DomainError, R>(
  command: Command<Input, State, Event, EventEncoded, DomainError, R>,
  input: Input
): Effect.Effect<ExecutionResult, ExecuteError<DomainError>, EventStore.EventStore | R>
// Without options there is no RRetry to infer: a separate signature keeps a
// surrounding expected type (e.g. inside Effect.all) from inferring it as any.
export function execute<
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError,
  R,
  RRetry = never
>(
  command: Command<Input, State, Event, EventEncoded, DomainError, R>,
  input: Input,
  options: ExecuteOptions<RRetry> | undefined
): Effect.Effect<ExecutionResult, ExecuteError<DomainError>, EventStore.EventStore | R | RRetry>
export function execute<
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError,
  R,
  RRetry = never
>(
  command: Command<Input, State, Event, EventEncoded, DomainError, R>,
  input: Input,
  options?: ExecuteOptions<RRetry>
): Effect.Effect<ExecutionResult, ExecuteError<DomainError>, EventStore.EventStore | R | RRetry> {
  return Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const cause = options?.causedBy
    const fresh = cause === undefined ? uuidv7(yield* Clock.currentTimeMillis) : undefined
    const metadata = {
      correlationId:
        cause === undefined
          ? fresh
          : typeof cause.metadata.correlationId === "string"
            ? cause.metadata.correlationId
            : cause.eventId,
      causationId: cause?.eventId ?? fresh,
      ...options?.metadata
    }
    const codec = EventSchema.codecOf(command.event)
    const encodeEvent = Schema.encode(command.event)
    let attempts = 0
    let lastConflict: VersionConflict | undefined

    const readOne = (streamId: StreamId) =>
      store.readStream(streamId).pipe(
        Effect.catchTags({
          StreamNotFound: () => Effect.succeed({ streamId, version: 0, events: [] }),
          InvalidReadOptions: (error) => Effect.die(error)
        }),
        Effect.flatMap((read) =>
          Effect.forEach(read.events, (recorded) =>
            Effect.map(codec.decode(recorded), (events) => [events, recorded] as const)
          ).pipe(Effect.map((events) => ({ version: read.version, events })))
        )
      )

    const attempt = Effect.gen(function* () {
      attempts += 1
      // On the execute span from the first attempt on, so a command that fails still says how often it ran.
      yield* Effect.annotateCurrentSpan("eventcore.attempts", attempts)
      if (lastConflict !== undefined) {
        yield* Metric.increment(retryCounter)
        yield* Effect.logWarning("eventcore: version conflict, running the command again").pipe(
          Effect.annotateLogs({
            command: command.name,
            attempt: attempts,
            stream: lastConflict.streamId,
            expected: String(lastConflict.expected),
            actual: lastConflict.actual
          })
        )
      }

      const versions = new Map<StreamId, number>()
      let state = command.initialState
      // Reads of one round run concurrently; folding follows the order the streams were named.
      const readRound = (ids: Iterable<StreamId>) => {
        const fresh = [...new Set(ids)].filter((id) => !versions.has(id))
        for (const id of fresh) versions.set(id, 0)
        return Effect.forEach(fresh, readOne, { concurrency: "unbounded" }).pipe(
          Effect.map((reads) => {
            reads.forEach((read, i) => {
              versions.set(fresh[i] as StreamId, read.version)
              for (const [events, recorded] of read.events) {
                for (const event of events) state = command.apply(state, event, recorded)
              }
            })
            return fresh.length
          })
        )
      }

      yield* readRound(command.streams(input))
      if (command.discover !== undefined) {
        const discover = command.discover
        while ((yield* readRound(discover(state, input))) > 0) {
          // each round reads only streams no earlier round read, so this ends
        }
      }

      const decisions = yield* command.decide(state, input)
      if (decisions.length === 0) {
        return { attempts, events: [], streamVersions: versions } satisfies ExecutionResult
      }

      let writes = StreamWrites.empty
      for (const [streamId, version] of versions) {
        writes = yield* Effect.orDie(StreamWrites.expect(writes, streamId, version))
      }
      for (const { streamId, event } of decisions) {
        if (!versions.has(streamId)) return yield* new UndeclaredStream({ streamId })
        const encoded = yield* encodeEvent(event).pipe(
          Effect.mapError(
            (cause) =>
              new EventEncodeError({
                streamId,
                eventType: event._tag,
                cause: ParseResult.TreeFormatter.formatErrorSync(cause)
              })
          )
        )
        writes = yield* StreamWrites.append(writes, {
          streamId,
          eventType: event._tag,
          schemaVersion: codec.versionOf(event._tag),
          data: withoutTag(encoded),
          metadata
        })
      }
      const appended = yield* store.append(writes)
      return { attempts, events: appended.events, streamVersions: appended.streamVersions } satisfies ExecutionResult
    }).pipe(
      Effect.tapError((error) => Effect.sync(() => (lastConflict = isVersionConflict(error) ? error : undefined)))
    )

    // Only version conflicts reach the schedule; every other error is carried
    // past it in the success channel and re-raised afterwards.
    type Outcome = Either.Either<ExecutionResult, ExecuteError<DomainError>>
    const retried = attempt.pipe(
      Effect.map((result): Outcome => Either.right(result)),
      Effect.catchAll(
        (error): Effect.Effect<Outcome, VersionConflict> =>
          isVersionConflict(error) ? Effect.fail(error) : Effect.succeed(Either.left(error))
      ),
      Effect.retry(options?.retry ?? defaultRetry),
      Effect.flatMap((outcome) => (Either.isRight(outcome) ? Effect.succeed(outcome.right) : Effect.fail(outcome.left)))
    )

    const result = yield* retried
    yield* Effect.annotateCurrentSpan({
      "eventcore.stream_count": result.streamVersions.size,
      "eventcore.event_count": result.events.length
    })
    return result
  }).pipe(
    Effect.withSpan("eventcore.execute", {
      attributes: { "eventcore.command": command.name },
      captureStackTrace: false
    })
  )
}

/** The stored form drops the `_tag`, which lives in `eventType`. */
const withoutTag = (encoded: unknown): unknown => {
  if (typeof encoded !== "object" || encoded === null || Array.isArray(encoded)) return encoded
  const { _tag: _, ...data } = encoded as Record<string, unknown>
  return data
}
