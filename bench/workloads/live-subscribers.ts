/**
 * W10: what live subscribers cost the writers. W1 (one event to a new stream
 * per append) at `options.liveWriters` writers through one PostgreSQL store,
 * with no subscriber and with `options.w10Subscribers` subscribers on that same
 * store (this process; each append wakes them all), each counting the events
 * it is delivered. The two cells alternate within each repetition (none first
 * in odd ones, subscribers first in even ones), each with the bench's warm-up
 * and duration; the subscribers start at the head of the log and have caught
 * up before the warm-up, and after the cell the bench waits for them to have
 * delivered every event appended in it (that wait is reported, not measured).
 *
 * The database is one of its own, as empty as W1's at the start.
 */
import os from "node:os"
import { performance } from "node:perf_hooks"
import { Effect, Fiber, Stream } from "effect"
import { EventStore, LogPosition } from "eventcore"
import { run, type Sample } from "../lib/measure.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { postgresSystem } from "../systems/eventcore.js"
import type { System } from "../systems/system.js"
import { appendNew } from "./workloads.js"

export interface LiveSubscribersCell {
  readonly subscribers: number
  readonly repetition: number
  readonly sample: Sample
  /** Events appended in the cell, warm-up included. */
  readonly appended: number
  /** Events each subscriber was delivered (every one appended in the cell, once caught up). */
  readonly delivered: ReadonlyArray<number>
  /**
   * `CaughtUp` messages each subscriber was delivered after its first: one per read that
   * delivered events and reached the head, so `delivered / catchUps` is how many events one
   * live read brought (1 means a read of the log per append).
   */
  readonly catchUps: ReadonlyArray<number>
  /** How long after the appends stopped the last subscriber had delivered them all (null: no subscribers). */
  readonly drainMs: number | null
  readonly loadAverage: number
}

export interface LiveSubscribersSummary {
  readonly subscribers: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxDrainMs: number | null
}

export interface LiveSubscribersResult {
  readonly writers: number
  readonly subscribers: number
  readonly poolSize: number
  readonly cells: ReadonlyArray<LiveSubscribersCell>
  readonly without: LiveSubscribersSummary
  readonly with: LiveSubscribersSummary
  /** 1 - (median appends/s with subscribers) / (median without). */
  readonly drop: number
  /** The same within each repetition (the two cells ran back to back). */
  readonly dropByRepetition: ReadonlyArray<number>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const liveSubscribers = async (
  admin: Admin,
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<LiveSubscribersResult> => {
  const url = await admin.create(database)
  let system: System | undefined
  try {
    system = await postgresSystem(url, poolSize)
    const runEffect = system.run as NonNullable<System["run"]>

    // Where the log ends: the subscribers of a cell start there.
    let head = LogPosition.start
    const advanceHead = async () => {
      for (;;) {
        const read = await runEffect(
          Effect.flatMap(EventStore.EventStore, (store) => store.readAll({ after: head, maxCount: 10_000 }))
        )
        head = read.position
        if (read.caughtUp) return
      }
    }

    const cells: Array<LiveSubscribersCell> = []
    const total = options.repetitions * 2
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      const order = repetition % 2 === 1 ? [0, options.w10Subscribers] : [options.w10Subscribers, 0]
      for (const subscribers of order) {
        const label = `[${cells.length + 1}/${total}] W10 c${options.liveWriters}, ${subscribers} subscribers, rep ${repetition}/${options.repetitions}`
        await advanceHead()
        // This cell's streams: a subscriber counts only their events (a horizon held back by a
        // transaction elsewhere on the server can leave events of the cell before still to come).
        const prefix = `w10-r${repetition}-s${subscribers}-`
        const operation = appendNew(system, prefix.slice(0, -1), 1)
        const delivered = Array.from({ length: subscribers }, () => 0)
        const catchUps = Array.from({ length: subscribers }, () => -1)
        const ready: Array<Promise<void>> = []
        const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
        for (let i = 0; i < subscribers; i++) {
          let caughtUp: () => void = () => {}
          ready.push(
            new Promise<void>((resolve) => {
              caughtUp = resolve
            })
          )
          fibers.push(
            await runEffect(
              Effect.forkDaemon(
                Effect.flatMap(EventStore.EventStore, (store) =>
                  store.subscribe({ after: head }).pipe(
                    Stream.runForEach((message) =>
                      Effect.sync(() => {
                        if (message._tag === "Event") {
                          if (message.event.streamId.startsWith(prefix)) delivered[i] = (delivered[i] as number) + 1
                        } else {
                          catchUps[i] = (catchUps[i] as number) + 1
                          caughtUp()
                        }
                      })
                    )
                  )
                )
              )
            )
          )
        }
        try {
          await Promise.all(ready)
          let appended = 0
          if (options.warmupSeconds > 0) {
            progress.status(`${label}: warm-up`)
            appended += (await run(operation, { concurrency: options.liveWriters, seconds: options.warmupSeconds }))
              .events
          }
          const sample = await run(operation, {
            concurrency: options.liveWriters,
            seconds: options.durationSeconds,
            onProgress: (ops, elapsed) =>
              progress.status(
                `${label}: ${elapsed.toFixed(1)} s, ${Math.round(ops / elapsed).toLocaleString("en")} ops/s`
              )
          })
          appended += sample.events
          let drainMs: number | null = null
          if (subscribers > 0) {
            const stopped = performance.now()
            const deadline = stopped + 30_000
            while (delivered.some((n) => n < appended) && performance.now() < deadline) await sleep(5)
            drainMs = performance.now() - stopped
          }
          cells.push({
            subscribers,
            repetition,
            sample,
            appended,
            delivered: [...delivered],
            catchUps: [...catchUps],
            drainMs,
            loadAverage: os.loadavg()[0] ?? 0
          })
          progress.log(
            `${label}: ${Math.round(sample.opsPerSec).toLocaleString("en")} ops/s, p50 ${sample.p50Ms.toFixed(2)} ms, ` +
              `p99 ${sample.p99Ms.toFixed(2)} ms` +
              (drainMs === null
                ? ""
                : `; subscribers delivered ${Math.min(...delivered).toLocaleString("en")} of ${appended.toLocaleString("en")}, ${drainMs.toFixed(0)} ms after the appends stopped`)
          )
        } finally {
          for (const fiber of fibers) await runEffect(Fiber.interrupt(fiber))
        }
      }
    }

    const summary = (subscribers: number): LiveSubscribersSummary => {
      const of = cells.filter((cell) => cell.subscribers === subscribers)
      const drains = of.flatMap((cell) => (cell.drainMs === null ? [] : [cell.drainMs]))
      return {
        subscribers,
        opsPerSec: median(of.map((cell) => cell.sample.opsPerSec)),
        p50Ms: median(of.map((cell) => cell.sample.p50Ms)),
        p99Ms: median(of.map((cell) => cell.sample.p99Ms)),
        maxDrainMs: drains.length === 0 ? null : Math.max(...drains)
      }
    }
    const without = summary(0)
    const withSubscribers = summary(options.w10Subscribers)
    return {
      writers: options.liveWriters,
      subscribers: options.w10Subscribers,
      poolSize,
      cells,
      without,
      with: withSubscribers,
      drop: 1 - withSubscribers.opsPerSec / without.opsPerSec,
      dropByRepetition: cells
        .filter((cell) => cell.subscribers > 0)
        .flatMap((cell) => {
          const none = cells.find((other) => other.subscribers === 0 && other.repetition === cell.repetition)
          return none === undefined ? [] : [1 - cell.sample.opsPerSec / none.sample.opsPerSec]
        })
    }
  } finally {
    await system?.close()
    await admin.drop(database)
  }
}
