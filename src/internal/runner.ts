/**
 * Runs a projection or a reactor: own its name (standing by while another
 * instance does), follow the global log from its checkpoint, and handle each
 * page of events as one batch whose checkpoint moves, by compare-and-set, in
 * the same transaction as the handlers' writes.
 *
 * A handler that fails rolls its batch back; the batch is then handled one
 * event per transaction, so that the events before the failing one commit and
 * the failing one is retried alone, following the retry schedule. When the
 * retries run out it stops the run (`ProjectionFailed`; the next run resumes at
 * that event) or, with `onError: "skip"`, records it as a dead letter and
 * moves past it in one transaction.
 */
import { Cause, Chunk, Deferred, Duration, Effect, Either, Schedule, type Schema, Stream } from "effect"
import type { RecordedEvent } from "../Event.js"
import * as EventSchema from "../EventSchema.js"
import type { EventStore } from "../EventStore.js"
import {
  type EventDecodeError,
  ProjectionFailed,
  type StoreError,
  StoreError as StoreErrorClass,
  type UnknownEventType
} from "../errors.js"
import * as LogMessage from "../LogMessage.js"
import type { LogPosition } from "../LogPosition.js"
import { defaultRetry as defaultReconnect, makeSignal } from "./follow.js"
import {
  CheckpointMoved,
  type CheckpointStore,
  checkpointsKey,
  type LogFilter,
  type Ownership,
  type ProjectionKind,
  type ReadModelDatabase,
  type Statement,
  type StoreExtras,
  WriteAtCommitFailed
} from "./storeContract.js"

/** How often a caught-up runner checks that its checkpoint is still where it left it. */
const checkpointWatch = "1 second"

/** What the runner needs of a projection or reactor. */
export interface Handler<E, Err, R> {
  readonly name: string
  readonly kind: ProjectionKind
  /** What it reads of the log: its event types and stream prefix (filtered in SQL on the SQL stores). */
  readonly filter: LogFilter
  /** Today's events for a stored one (see `EventSchema.Codec.decode`). */
  readonly decode: (recorded: RecordedEvent) => Effect.Effect<ReadonlyArray<E>, EventDecodeError | UnknownEventType>
  /**
   * Handles a batch's events, in log order (a stored event may have become
   * several, or none). A failure that names its event (`EventFailure`) splits
   * the batch there; any other splits it in halves, to find the event. It may
   * leave statements for the commit (see `Ownership.commit`).
   */
  readonly handleBatch: (
    events: ReadonlyArray<Decoded<E>>,
    db: ReadModelDatabase | undefined
    // biome-ignore lint/suspicious/noConfusingVoidType: a handler that leaves nothing for the commit is an Effect<void>
  ) => Effect.Effect<ReadonlyArray<Statement> | void, Err | EventFailure, R>
  /** Its batches' size unless `RunOptions.batchSize` says otherwise. */
  readonly batchSize: number
}

/** The batch size of a handler of one event at a time: its events are awaited one by one. */
export const eventBatchSize = 100

/** The batch size of a batch handler: each batch costs a few statements, whatever its length. */
export const batchHandlerSize = 1_000

/** An event as a batch handler gets it: today's event, and the stored one it came from. */
export interface Decoded<E> {
  readonly event: E
  readonly recorded: RecordedEvent
}

/** Handles a batch one event after the other with `handle`; a failure names its event. */
export const eachEvent =
  <E, Err, R>(
    handle: (event: E, recorded: RecordedEvent, db: ReadModelDatabase | undefined) => Effect.Effect<void, Err, R>
  ) =>
  (events: ReadonlyArray<Decoded<E>>, db: ReadModelDatabase | undefined): Effect.Effect<void, EventFailure, R> =>
    Effect.forEach(events, ({ event, recorded }) => failureOf(recorded, handle(event, recorded, db)), { discard: true })

export interface RunOptions {
  /**
   * The most events a batch holds, one transaction each (default 100 for a
   * handler of one event, 1,000 for a row projection or `handleBatch`).
   * Behind the log, batches are that large; caught up, a batch holds what
   * arrived since the last one, so a few events wait for no more.
   */
  readonly batchSize?: number
  /** When to try a failing event again (default: 5 retries from 100 ms, doubling). */
  readonly retry?: Schedule.Schedule<unknown, unknown>
  /** When the retries run out: stop with `ProjectionFailed` (default), or record a dead letter and move on. */
  readonly onError?: "stop" | "skip"
}

export const defaultHandlerRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/** What a projection or reactor declares of the events it handles. */
export interface Declared<E, I> {
  readonly name: string
  readonly event: Schema.Schema<E, I>
  readonly filter?: { readonly streamPrefix?: string }
}

/** The codec of a declared event schema: any union of tagged structs. */
const codecOf = (event: Schema.Schema.AnyNoContext) =>
  EventSchema.codecOf(event as Schema.Schema<{ readonly _tag: string }, unknown>)

/**
 * The log filter of what a projection or reactor declares: the stored event
 * types its schema reads (renamed and replaced ones included) and its stream
 * prefix; no types (only a name given) reads every event.
 */
export const logFilterOf = (declared: {
  readonly event?: Schema.Schema.AnyNoContext
  readonly filter?: { readonly streamPrefix?: string }
}): LogFilter => ({
  ...(declared.event === undefined ? {} : { eventTypes: codecOf(declared.event).eventTypes }),
  ...(declared.filter?.streamPrefix === undefined ? {} : { streamPrefix: declared.filter.streamPrefix })
})

/** Refuses a schema that names no event types: the projection or reactor would read nothing. */
export const checkDeclared = <E, I>(label: "Projection" | "Reactor", declared: Declared<E, I>): void => {
  if (codecOf(declared.event).eventTypes.length === 0) {
    throw new TypeError(
      `${label} ${JSON.stringify(declared.name)}: its event schema names no event types (use a union of Schema.TaggedStruct)`
    )
  }
}

/** The handler's name, kind, filter and decoding, from what it declares. */
export const declaredHandler = <E, I>(kind: ProjectionKind, declared: Declared<E, I>) => {
  const codec = codecOf(declared.event) as EventSchema.Codec<E>
  return { name: declared.name, kind, filter: logFilterOf(declared), decode: codec.decode, batchSize: eventBatchSize }
}

/** Wakes `waitFor` in this process when a runner commits. */
export const committed = makeSignal()

/** A store's checkpoints, or a StoreError saying it has none. */
export const checkpointsOf = (store: EventStore): Effect.Effect<CheckpointStore, StoreError> => {
  const checkpoints = (store as EventStore & StoreExtras)[checkpointsKey]
  return checkpoints === undefined
    ? Effect.fail(
        new StoreErrorClass({
          operation: "projection",
          message:
            "This EventStore has no support for projections and reactors: use the in-memory, PGlite or PostgreSQL store."
        })
      )
    : Effect.succeed(checkpoints)
}

/** A handler or decoding failure of one event, carried past the commit to the retry. */
export class EventFailure {
  constructor(
    readonly event: RecordedEvent,
    readonly cause: unknown
  ) {}
}

/** A batch handler's failure that names no event: the batch is split in halves to find it. */
class BatchFailure {
  constructor(readonly cause: unknown) {}
}

/** A failure of a batch's handler that names no event: alone in its batch, the event is the one that failed. */
const batchFailure = (events: ReadonlyArray<RecordedEvent>, cause: unknown) => {
  const only = events.length === 1 ? events[0] : undefined
  return only === undefined ? new BatchFailure(cause) : new EventFailure(only, cause)
}

/** `effect`'s failure or defect as an `EventFailure` of `recorded`; an interruption stays one. */
export const failureOf = <A, E, R>(recorded: RecordedEvent, effect: Effect.Effect<A, E, R>) =>
  Effect.catchAllCause(effect, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.failCause(cause as Cause.Cause<never>)
      : Effect.fail(new EventFailure(recorded, Cause.squash(cause)))
  )

/** An error in one line: its tag or name, its message, and the fields of a tagged error without one. */
const describe = (cause: unknown): string => {
  if (typeof cause !== "object" || cause === null) return String(cause)
  const { _tag, message, name, stack: _, ...fields } = cause as Record<string, unknown>
  const label = typeof _tag === "string" ? _tag : typeof name === "string" ? name : "Error"
  const text = typeof message === "string" && message !== "" ? `: ${message}` : ""
  const extra = Object.keys(fields).length > 0 && text === "" ? ` ${JSON.stringify(fields)}` : ""
  return `${label}${text}${extra}`
}

export const run = <E, Err, R>(
  handler: Handler<E, Err, R>,
  checkpoints: CheckpointStore,
  store: EventStore,
  options: RunOptions = {}
): Effect.Effect<never, ProjectionFailed, R> => {
  const batchSize = options.batchSize ?? handler.batchSize
  const retry = options.retry ?? defaultHandlerRetry
  const filter = handler.filter

  /** One stored event's, from the Effect its decoding gave: a failure names it. */
  const decodedFrom = (recorded: RecordedEvent, decoding: ReturnType<typeof handler.decode>) =>
    failureOf(
      recorded,
      Effect.map(decoding, (decoded) => decoded.map((event) => ({ event, recorded })))
    )

  /**
   * Today's events of a batch, in log order. Decoding answers at once (an
   * Either) for today's events: those are taken in a plain loop; from the
   * first that needs an Effect (an older version, a replaced type) the rest
   * go one by one.
   */
  const decodeAll = (events: ReadonlyArray<RecordedEvent>): Effect.Effect<Array<Decoded<E>>, EventFailure> =>
    Effect.suspend(() => {
      const decoded: Array<Decoded<E>> = []
      for (let i = 0; i < events.length; i++) {
        const recorded = events[i] as RecordedEvent
        let outcome: ReturnType<typeof handler.decode>
        try {
          outcome = handler.decode(recorded)
        } catch (cause) {
          return Effect.fail(new EventFailure(recorded, cause))
        }
        if (!Either.isEither(outcome)) {
          // This event's decoding is the Effect in hand; the ones after it are decoded as they come.
          const rest = events.slice(i + 1)
          return Effect.map(
            Effect.all([
              decodedFrom(recorded, outcome),
              Effect.forEach(rest, (next) => decodedFrom(next, handler.decode(next)))
            ]),
            ([first, others]) => decoded.concat(first, others.flat())
          )
        }
        const now = outcome as Either.Either<ReadonlyArray<E>, EventDecodeError | UnknownEventType>
        if (Either.isLeft(now)) return Effect.fail(new EventFailure(recorded, now.left))
        for (const event of now.right) decoded.push({ event, recorded })
      }
      return Effect.succeed(decoded)
    })

  /**
   * Today's events of a batch, then the handler on them: a failure names the
   * event it came from where it can, or is a `BatchFailure`.
   */
  const handleAll = (events: ReadonlyArray<RecordedEvent>, db: ReadModelDatabase | undefined) =>
    decodeAll(events).pipe(
      Effect.flatMap((decoded) =>
        handler.handleBatch(decoded, db).pipe(
          Effect.catchAllCause((cause) => {
            if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
            const failure = Cause.squash(cause)
            if (failure instanceof EventFailure) return Effect.fail(failure)
            return Effect.fail(batchFailure(events, failure))
          })
        )
      )
    )

  /** One owned stretch: from the checkpoint, batch after batch, until an error ends it. */
  const follow = (ownership: Ownership) =>
    Effect.gen(function* () {
      let position = yield* ownership.checkpoint

      /**
       * Handles `events` and moves the checkpoint from `from` to `to`: a
       * projection's handlers inside the transaction, a reactor's before it
       * (side effects outside the database must not hold a transaction open,
       * and may be repeated if the commit is lost).
       */
      const handleAndCommit = (events: ReadonlyArray<RecordedEvent>, from: LogPosition, to: LogPosition) =>
        handler.kind === "reactor"
          ? Effect.zipRight(
              handleAll(events, undefined),
              ownership.commit(from, to, () => Effect.void)
            )
          : ownership
              .commit(from, to, (db) => handleAll(events, db))
              .pipe(
                // A statement the handler left for the commit failed: the handler's failure.
                Effect.catchIf(
                  (error) => error instanceof WriteAtCommitFailed,
                  ({ cause }) => Effect.fail(batchFailure(events, cause))
                )
              )

      /** One event in its own transaction, retried; then stop, or skip it as a dead letter. */
      const one = (recorded: RecordedEvent) =>
        Effect.gen(function* () {
          const outcome = yield* handleAndCommit([recorded], position, recorded.position).pipe(
            Effect.retry({ schedule: retry, while: (error) => error instanceof EventFailure }),
            Effect.either
          )
          if (outcome._tag === "Left") {
            const failure = outcome.left
            if (!(failure instanceof EventFailure)) return yield* Effect.fail(failure)
            const error = describe(failure.cause)
            if (options.onError !== "skip") {
              yield* Effect.ignore(ownership.fail(error))
              return yield* new ProjectionFailed({
                projection: handler.name,
                position: recorded.position,
                eventId: recorded.eventId,
                cause: failure.cause
              })
            }
            yield* ownership.commit(position, recorded.position, () => Effect.void, {
              eventId: recorded.eventId,
              position: recorded.position,
              eventType: recorded.eventType,
              error
            })
            yield* Effect.logWarning(`eventcore: ${handler.kind} skipped an event that kept failing`).pipe(
              Effect.annotateLogs({ [handler.kind]: handler.name, eventId: recorded.eventId, error })
            )
          }
          position = recorded.position
        })

      /**
       * Handles `events` and moves the checkpoint to `to` in one transaction;
       * when the handler fails, splits them and commits what succeeds: at the
       * event a failure names (the events before it, it alone, those after
       * it), or in halves when it names none. An event alone is retried, then
       * stops the run or is skipped (`one`). Each event is handled about
       * log2(batch) times at most, not once per event before it.
       */
      const split = (events: ReadonlyArray<RecordedEvent>, to: LogPosition): Effect.Effect<void, unknown, R> =>
        Effect.gen(function* () {
          const outcome = yield* Effect.either(handleAndCommit(events, position, to))
          if (outcome._tag === "Right") {
            position = to
            return
          }
          const failure = outcome.left
          if (!(failure instanceof EventFailure || failure instanceof BatchFailure)) return yield* Effect.fail(failure)
          if (events.length === 1) {
            yield* one(events[0] as RecordedEvent)
          } else {
            const at = failure instanceof EventFailure ? events.indexOf(failure.event) : -1
            const parts =
              at === -1
                ? [events.slice(0, events.length >> 1), events.slice(events.length >> 1)]
                : [events.slice(0, at), events.slice(at, at + 1), events.slice(at + 1)]
            for (const part of parts) {
              const last = part.at(-1)
              if (last !== undefined) yield* split(part, last.position)
            }
          }
          if (to > position) yield* ownership.commit(position, to, () => Effect.void)
          position = to
        })

      const batch = (events: ReadonlyArray<RecordedEvent>, to: LogPosition) =>
        Effect.gen(function* () {
          if (events.length === 0) {
            if (to > position) yield* ownership.commit(position, to, () => Effect.void)
            position = to
          } else {
            yield* split(events, to)
          }
          yield* committed.notify
        })

      // Someone else moved the checkpoint (a rebuild; another instance despite
      // the lock): stop following from a position that is no longer ours.
      let busy = false
      const watch = Effect.gen(function* () {
        for (;;) {
          const wakeup = yield* committed.current
          yield* Effect.race(Deferred.await(wakeup), Effect.sleep(checkpointWatch))
          if (busy) continue
          const stored = yield* ownership.checkpoint
          if (!busy && stored !== position) return yield* new CheckpointMoved({ name: handler.name })
        }
      })

      const following = store.subscribe({ after: position, filter, pageSize: batchSize }).pipe(
        Stream.mapError((error) => error as StoreError),
        // The next page is read while this one is handled and committed (on PostgreSQL, on the
        // store's pool while the batch runs on the instance's session).
        Stream.bufferChunks({ capacity: 1 }),
        Stream.runForEachChunk((chunk) => {
          const messages = Chunk.toReadonlyArray(chunk)
          const events = messages.flatMap((message) => (message._tag === "Event" ? [message.event] : []))
          const caughtUp = messages.findLast(LogMessage.is("CaughtUp"))
          const to = caughtUp?.position ?? events.at(-1)?.position
          if (to === undefined) return Effect.void
          busy = true
          return Effect.ensuring(
            batch(events, to),
            Effect.sync(() => {
              busy = false
            })
          )
        }),
        Effect.zipRight(Effect.never)
      )
      return yield* Effect.raceFirst(following, watch)
    })

  const owning = Effect.scoped(Effect.flatMap(checkpoints.own(handler.name, handler.kind, handler.filter), follow))

  // Ownership lost (connection, or another instance's commit): stand by and own again.
  return owning.pipe(
    Effect.catchIf(
      (error): error is StoreError | CheckpointMoved => !(error instanceof ProjectionFailed),
      (error) =>
        // A moved checkpoint is the routine way a rebuild (or a takeover) reaches a running instance.
        (error._tag === "CheckpointMoved"
          ? Effect.logInfo(
              `eventcore: ${handler.kind}'s checkpoint moved (a rebuild, or another instance committed first); owning it again from there`
            ).pipe(Effect.annotateLogs({ [handler.kind]: handler.name }))
          : Effect.logWarning(`eventcore: ${handler.kind} lost its database session; owning it again`).pipe(
              Effect.annotateLogs({ [handler.kind]: handler.name, error: error.message })
            )
        ).pipe(Effect.zipRight(Effect.fail(error)))
    ),
    Effect.retry({
      // From 100 ms again once the instance has run for a minute without losing its session.
      schedule: defaultReconnect.pipe(Schedule.resetAfter("1 minute")) as Schedule.Schedule<unknown, unknown>,
      while: (error) => !(error instanceof ProjectionFailed)
    }),
    Effect.catchIf(
      (error): error is StoreError | CheckpointMoved => !(error instanceof ProjectionFailed),
      (error) => Effect.die(error)
    ),
    Effect.flatMap(() => Effect.never)
  ) as Effect.Effect<never, ProjectionFailed, R>
}

/** Waits until `check` says yes, looking again when a runner commits or every 50 ms; fails with `onTimeout`. */
export const waitUntil = <E, X>(
  check: Effect.Effect<boolean, E>,
  timeout: Duration.DurationInput,
  onTimeout: () => X
): Effect.Effect<void, E | X> =>
  Effect.gen(function* () {
    for (;;) {
      const wakeup = yield* committed.current
      if (yield* check) return
      yield* Effect.race(Deferred.await(wakeup), Effect.sleep("50 millis"))
    }
  }).pipe(Effect.timeoutFail({ duration: Duration.decode(timeout), onTimeout }))
