/**
 * The command executor: read, fold, decide, append with every read stream's
 * version, and on a version conflict do it all again following a `Schedule`.
 */
import { Clock, Duration, Effect, Either, Metric, Option, ParseResult, Schedule, Schema } from "effect"
import type { Command } from "./Command.js"
import type { RecordedEvent } from "./Event.js"
import * as EventSchema from "./EventSchema.js"
import * as EventStore from "./EventStore.js"
import {
  type DuplicateEventId,
  type EventDecodeError,
  EventEncodeError,
  type InvalidPersonalData,
  type StoreError,
  type StreamArchived,
  type SubjectErased,
  UndeclaredStream,
  type UnknownEventType,
  type VersionConflict
} from "./errors.js"
import { snapshotKey } from "./internal/snapshots.js"
import {
  type SnapshotLoad,
  type Snapshots,
  type StoredSnapshot,
  type StoreExtras,
  snapshotsKey
} from "./internal/storeContract.js"
import { uuidv7 } from "./internal/uuid.js"
import * as Snapshot from "./Snapshot.js"
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
  | StreamArchived
  | UndeclaredStream
  | EventEncodeError
  | EventDecodeError
  | UnknownEventType
  | DuplicateEventId
  | InvalidPersonalData
  | SubjectErased
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

    /** Today's events of each stored one, beside it, for `apply`. */
    const decodeAll = (events: ReadonlyArray<RecordedEvent>) =>
      Effect.forEach(events, (recorded) =>
        Effect.map(codec.decode(recorded), (decoded) => [decoded, recorded] as const)
      )

    const readOne = (streamId: StreamId, fromVersion = 1) =>
      store.readStream(streamId, { fromVersion }).pipe(
        Effect.catchTags({
          StreamNotFound: () => Effect.succeed({ streamId, version: 0, events: [] }),
          InvalidReadOptions: (error) => Effect.die(error)
        }),
        Effect.flatMap((read) => Effect.map(decodeAll(read.events), (events) => ({ version: read.version, events })))
      )

    const snapshot = command.snapshot
    const snapshots = snapshot === undefined ? undefined : (store as EventStore.EventStore & StoreExtras)[snapshotsKey]

    /** The snapshot the running attempt found due: written once the attempt has ended, out of its way. */
    let dueSnapshot: Effect.Effect<void> | undefined
    const writeDueSnapshot = Effect.suspend(() => {
      const work = dueSnapshot
      dueSnapshot = undefined
      return work === undefined || snapshots === undefined ? Effect.void : snapshots.inBackground(work)
    })

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

      // Only a policy with a duration needs the time folding took.
      const started = snapshot?.duration === undefined ? 0 : yield* Clock.currentTimeMillis
      const versions = new Map<StreamId, number>()
      let state = command.initialState
      /** Events folded in this attempt: beyond the snapshot, if one was used. */
      let folded = 0
      const fold = (events: ReadonlyArray<readonly [ReadonlyArray<Event>, RecordedEvent]>) => {
        for (const [decoded, recorded] of events) {
          for (const event of decoded) state = command.apply(state, event, recorded)
        }
        folded += events.length
      }
      // Reads of one round run concurrently; folding follows the order the streams were named.
      const readRound = (ids: Iterable<StreamId>) => {
        const fresh = [...new Set(ids)].filter((id) => !versions.has(id))
        for (const id of fresh) versions.set(id, 0)
        return Effect.forEach(fresh, (id) => readOne(id), { concurrency: "unbounded" }).pipe(
          Effect.map((reads) => {
            reads.forEach((read, i) => {
              versions.set(fresh[i] as StreamId, read.version)
              fold(read.events)
            })
            return fresh.length
          })
        )
      }

      const declared = [...new Set(command.streams(input))]
      const request =
        snapshot === undefined
          ? undefined
          : {
              command: command.name,
              key: snapshotKey(declared),
              stateVersion: snapshot.version,
              eventVersions: codec.fingerprint,
              streams: declared
            }
      if (snapshot !== undefined && snapshots !== undefined && request !== undefined) {
        const load = yield* snapshots.load(request)
        const restored = yield* restore(snapshot, snapshots, load, declared, codec.fingerprint, readOne)
        if (Option.isSome(restored) || !load.usable) {
          // From the snapshot, its tails start after it; without one of these versions, at the start.
          if (Option.isSome(restored)) state = restored.value.state
          for (const tail of load.tails) {
            versions.set(tail.streamId, tail.version)
            fold(yield* decodeAll(tail.events))
          }
          // Then the streams it covers beyond the declared ones (found by `discover`), read after it.
          for (const [streamId, read] of Option.isSome(restored) ? restored.value.discovered : []) {
            versions.set(streamId, read.version)
            fold(read.events)
          }
        } else {
          // A snapshot of these versions that could not be used: the tails start after it, so read again in full.
          yield* readRound(declared)
        }
      } else {
        yield* readRound(declared)
      }
      if (command.discover !== undefined) {
        const discover = command.discover
        while ((yield* readRound(discover(state, input))) > 0) {
          // each round reads only streams no earlier round read, so this ends
        }
      }

      if (snapshot !== undefined && snapshots !== undefined && request !== undefined) {
        const due =
          folded >= snapshot.events ||
          (snapshot.duration !== undefined &&
            Duration.greaterThanOrEqualTo(
              Duration.millis((yield* Clock.currentTimeMillis) - started),
              snapshot.duration
            ))
        if (due) {
          dueSnapshot = save(snapshot, snapshots, { ...request, streams: [...versions], state })
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
      Effect.ensuring(writeDueSnapshot),
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

/** A snapshot's state, and the streams it covers beyond the declared ones, each read after the version it covers. */
interface Restored<State, Read> {
  readonly state: State
  readonly discovered: ReadonlyArray<readonly [StreamId, Read]>
}

/**
 * The state of the snapshot `load` found, if it can be used: its versions
 * match, it names the declared streams first (a different list with the same
 * hash does not), no stream holds fewer events than it covers, and the state
 * decodes. The streams it covers beyond the declared ones (found by
 * `discover`) are read here, after the versions it covers, with `readAfter`.
 * Otherwise none, counted and logged once per command and reason.
 */
const restore = <State, Read extends { readonly version: number }, E>(
  snapshot: Snapshot.Snapshot<State>,
  snapshots: Snapshots,
  load: SnapshotLoad,
  declared: ReadonlyArray<StreamId>,
  eventVersions: string,
  readAfter: (streamId: StreamId, fromVersion: number) => Effect.Effect<Read, E>
): Effect.Effect<Option.Option<Restored<State, Read>>, E> => {
  const found = load.found
  if (found === undefined) return Effect.succeedNone
  const ignored = (reason: "version" | "undecodable" | "streams", detail: string) =>
    Effect.zipRight(
      Metric.increment(Snapshot.ignoredCounter).pipe(Effect.tagMetrics({ command: found.command, reason })),
      snapshots.once(
        `${found.command}\u0000${reason}`,
        Effect.logWarning(
          `eventcore: a snapshot of ${found.command} was ignored (${reason}): ${detail}; folding in full`
        ).pipe(Effect.annotateLogs({ command: found.command, reason }))
      )
    ).pipe(Effect.as(Option.none<Restored<State, Read>>()))
  const shorterThan = (streamId: StreamId, covered: number, holds: number) =>
    ignored("streams", `it covers ${covered} events of ${JSON.stringify(streamId)}, which holds ${holds}`)
  if (!load.usable) {
    const stateChanged = found.stateVersion !== snapshot.version
    return ignored(
      "version",
      stateChanged
        ? `it has state version ${found.stateVersion}, the command ${snapshot.version}`
        : `its events were read as ${JSON.stringify(found.eventVersions)}, the command reads them as ${JSON.stringify(eventVersions)}`
    )
  }
  if (!declared.every((id, i) => found.streams[i]?.[0] === id))
    return ignored("streams", "it was saved for other streams")
  const shorter = load.tails.find((tail) => tail.version < tail.after)
  if (shorter !== undefined) return shorterThan(shorter.streamId, shorter.after, shorter.version)
  return snapshot.decode(found.state).pipe(
    Effect.either,
    Effect.flatMap((decoded) => {
      if (Either.isLeft(decoded)) return ignored("undecodable", ParseResult.TreeFormatter.formatErrorSync(decoded.left))
      const beyond = found.streams.slice(declared.length)
      return Effect.forEach(beyond, ([streamId, covered]) => readAfter(streamId, covered + 1), {
        concurrency: "unbounded"
      }).pipe(
        Effect.flatMap((reads) => {
          const shorterIndex = reads.findIndex((read, i) => read.version < (beyond[i]?.[1] ?? 0))
          const short = beyond[shorterIndex]
          if (short !== undefined) return shorterThan(short[0], short[1], reads[shorterIndex]?.version ?? 0)
          return Effect.succeed(
            Option.some({
              state: decoded.right,
              discovered: reads.map((read, i) => [(beyond[i] as readonly [StreamId, number])[0], read] as const)
            })
          )
        })
      )
    })
  )
}

/** Writes a snapshot (in the background: a failure is logged and counted, never raised). */
const save = <State>(
  snapshot: Snapshot.Snapshot<State>,
  snapshots: Snapshots,
  stored: Omit<StoredSnapshot, "state"> & { readonly state: State }
): Effect.Effect<void> =>
  snapshot.encode(stored.state).pipe(
    Effect.mapError((error) => ParseResult.TreeFormatter.formatErrorSync(error)),
    Effect.flatMap((state) => snapshots.save({ ...stored, state })),
    Effect.flatMap((written) =>
      written
        ? Metric.increment(Snapshot.writtenCounter).pipe(Effect.tagMetrics("command", stored.command))
        : Effect.void
    ),
    Effect.catchAll((error) =>
      Effect.zipRight(
        Metric.increment(Snapshot.failedCounter).pipe(Effect.tagMetrics("command", stored.command)),
        Effect.logWarning(`eventcore: a snapshot of ${stored.command} was not written`).pipe(
          Effect.annotateLogs({ command: stored.command, cause: typeof error === "string" ? error : error.message })
        )
      )
    )
  )

/** The stored form drops the `_tag`, which lives in `eventType`. */
const withoutTag = (encoded: unknown): unknown => {
  if (typeof encoded !== "object" || encoded === null || Array.isArray(encoded)) return encoded
  const { _tag: _, ...data } = encoded as Record<string, unknown>
  return data
}
