/**
 * Following the global log: read a page, deliver it, and once caught up wait
 * for the next append, from this process (a signal) or from anywhere (a poll),
 * then read on from the last position delivered. A failed read is retried
 * from that same position, so a lost connection or a restarted server costs
 * neither a gap nor a duplicate.
 */
import { Chunk, Clock, Deferred, Duration, Effect, Exit, FiberId, Metric, Schedule, Stream } from "effect"
import type { StoreError } from "../errors.js"
import * as LogMessage from "../LogMessage.js"
import type { LogPosition } from "../LogPosition.js"
import type { BlockingTransaction, LogFilter, LogPage } from "./storeContract.js"

/**
 * A wake-up for waiters: `current` is what a waiter holds while it works;
 * `notify` completes it and hands out a fresh one, so a notification between
 * taking `current` and waiting on it is not lost.
 */
export interface Signal {
  readonly current: Effect.Effect<Deferred.Deferred<void>>
  readonly notify: Effect.Effect<void>
  /** `notify`, outside the runtime (from an operation's own step). */
  readonly unsafeNotify: () => void
}

export const makeSignal = (): Signal => {
  let deferred = Deferred.unsafeMake<void>(FiberId.none)
  // Whether a waiter has taken `deferred` since it was handed out: an append
  // with no subscriber waiting (the common case) then costs nothing here.
  let taken = false
  const wake = () => {
    if (!taken) return
    const done = deferred
    deferred = Deferred.unsafeMake<void>(FiberId.none)
    taken = false
    Deferred.unsafeDone(done, Exit.void)
  }
  return {
    current: Effect.sync(() => {
      taken = true
      return deferred
    }),
    notify: Effect.sync(() => wake()),
    unsafeNotify: () => wake()
  }
}

type ReadLog = (after: LogPosition, limit: number, filter: LogFilter) => Effect.Effect<LogPage, StoreError>

/**
 * `readLog` for a store's subscriptions, with identical reads shared: the
 * subscribers of one store that are caught up at the same position are woken
 * by the same append and would each read the same page, and build the same
 * events, at the same moment. A read already running for the same position,
 * size and filter is awaited instead of run again. It runs detached from its
 * first caller, so that caller's interruption does not fail the others. A page
 * read a moment earlier is still exact: below the horizon nothing changes.
 */
export const shareReads = (readLog: ReadLog): ReadLog => {
  const running = new Map<string, Deferred.Deferred<LogPage, StoreError>>()
  return (after, limit, filter) =>
    Effect.suspend(() => {
      const key = JSON.stringify([after, limit, filter.eventTypes ?? null, filter.streamPrefix ?? null])
      const shared = running.get(key)
      if (shared !== undefined) return Deferred.await(shared)
      const result = Deferred.unsafeMake<LogPage, StoreError>(FiberId.none)
      running.set(key, result)
      return readLog(after, limit, filter).pipe(
        Effect.exit,
        Effect.flatMap((exit) => {
          running.delete(key)
          return Deferred.done(result, exit)
        }),
        Effect.forkDaemon,
        Effect.zipRight(Deferred.await(result))
      )
    })
}

/** Reads again after a failure: from 100 ms, doubling, at most every 5 s, for ever. */
export const defaultRetry: Schedule.Schedule<unknown, StoreError> = Schedule.exponential("100 millis").pipe(
  Schedule.either(Schedule.spaced("5 seconds"))
)

export interface FollowOptions {
  readonly after: LogPosition
  readonly filter: LogFilter
  readonly pageSize: number
  readonly stallWarning: Duration.DurationInput
  readonly retry?: Schedule.Schedule<unknown, StoreError>
  readonly readLog: ReadLog
  readonly polling?: { readonly min: Duration.DurationInput; readonly max: Duration.DurationInput }
  readonly blockingTransaction?: Effect.Effect<BlockingTransaction | undefined, StoreError>
  readonly appended: Signal
  readonly heldBackGauge: Metric.Metric.Gauge<number>
}

/** What logs and the command line say of a blocking transaction. */
export const blockingFacts = (blocking: BlockingTransaction | undefined) =>
  blocking === undefined
    ? {}
    : {
        ...(blocking.pid === undefined ? {} : { pid: blocking.pid }),
        ...(blocking.database === undefined ? {} : { database: blocking.database }),
        ...(blocking.state === undefined ? {} : { state: blocking.state }),
        ...(blocking.ageSeconds === undefined ? {} : { openForSeconds: Math.round(blocking.ageSeconds) }),
        ...(blocking.applicationName === undefined ? {} : { application: blocking.applicationName })
      }

export const follow = (options: FollowOptions): Stream.Stream<LogMessage.LogMessage, StoreError> =>
  Stream.suspend(() => {
    const stallWarning = Duration.toMillis(options.stallWarning)
    const minPoll = options.polling === undefined ? undefined : Duration.toMillis(options.polling.min)
    const maxPoll = options.polling === undefined ? undefined : Duration.toMillis(options.polling.max)
    let position = options.after
    let caughtUpOnce = false
    let deliveredSinceCaughtUp = false
    let waitBeforeReading = false
    let poll = minPoll
    let heldSince: number | undefined
    let warnedAt: number | undefined

    let wakeup: Deferred.Deferred<void> | undefined

    const read = Effect.suspend(() => options.readLog(position, options.pageSize, options.filter)).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("eventcore: reading the global log failed; reading again").pipe(
          Effect.annotateLogs({ position, error: error.message })
        )
      ),
      Effect.retry(options.retry ?? defaultRetry)
    )

    /** Until this store appends, or (for stores others write to) the poll interval has passed. */
    const waitForEvents = (wakeup: Deferred.Deferred<void>) =>
      poll === undefined ? Deferred.await(wakeup) : Effect.race(Deferred.await(wakeup), Effect.sleep(poll))

    const watchStall = (page: LogPage) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (!page.heldBack) {
          if (warnedAt !== undefined) {
            yield* Effect.logInfo("eventcore: the global log is no longer held back").pipe(
              Effect.annotateLogs({ heldForSeconds: Math.round((now - (heldSince ?? now)) / 1000) })
            )
          }
          heldSince = undefined
          warnedAt = undefined
          return yield* Metric.set(options.heldBackGauge, 0)
        }
        heldSince ??= now
        yield* Metric.set(options.heldBackGauge, (now - heldSince) / 1000)
        if (now - heldSince >= stallWarning && (warnedAt === undefined || now - warnedAt >= stallWarning)) {
          warnedAt = now
          const blocking =
            options.blockingTransaction === undefined
              ? undefined
              : yield* Effect.orElseSucceed(options.blockingTransaction, () => undefined)
          yield* Effect.logWarning(
            "eventcore: a transaction still running holds the global log back; readers wait for it to end (they never skip past it)"
          ).pipe(
            Effect.annotateLogs({ heldForSeconds: Math.round((now - heldSince) / 1000), ...blockingFacts(blocking) })
          )
        }
      })

    let lastRead = 0
    const step = Effect.gen(function* () {
      if (waitBeforeReading && wakeup !== undefined) {
        yield* waitForEvents(wakeup)
        // Woken by each append of a busy writer, a subscriber would read once
        // per append; reading at most every `min` gathers them into pages.
        if (minPoll !== undefined) {
          const since = (yield* Clock.currentTimeMillis) - lastRead
          if (since < minPoll) yield* Effect.sleep(minPoll - since)
        }
      }
      lastRead = yield* Clock.currentTimeMillis
      // Taken before the read: an append that commits during or after it ends the next wait at once.
      wakeup = yield* options.appended.current
      const page = yield* read
      position = page.position
      const messages: Array<LogMessage.LogMessage> = page.events.map((event) => LogMessage.Event({ event }))
      if (page.events.length > 0) deliveredSinceCaughtUp = true
      waitBeforeReading = page.caughtUp
      if (page.caughtUp) {
        yield* watchStall(page)
        if (!caughtUpOnce || deliveredSinceCaughtUp) messages.push(LogMessage.CaughtUp({ position }))
        caughtUpOnce = true
        deliveredSinceCaughtUp = false
        if (minPoll !== undefined && maxPoll !== undefined && poll !== undefined) {
          poll = page.events.length > 0 ? minPoll : Math.min(poll * 2, maxPoll)
        }
      }
      return Chunk.unsafeFromArray(messages)
    })

    return Stream.repeatEffectChunk(step)
  })
