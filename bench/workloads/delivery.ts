/**
 * W9: how soon a live subscriber sees an append. `options.liveWriters` writers
 * append one event to a new stream each (W1) for `options.w9Seconds`, through
 * one PostgreSQL store, while two subscribers follow the log from its start:
 * one on that same store, in this process (its own appends wake it), and one
 * in another process on a store of its own (subscriber-child.ts; it learns of
 * the appends by polling). The latency of an event for a subscriber is the
 * time from its append being acknowledged (the append's promise settling in
 * the writer) to its delivery, on the clock both processes share
 * (`performance.timeOrigin + performance.now()`). An event can reach a
 * subscriber before its writer hears back (the subscriber read it right after
 * the commit); those count as 0 ms, and how many they were is reported.
 *
 * The database is one of its own, so that the subscribers start at once.
 * Readers of the log wait for every transaction on the server that started
 * before the events they read (docs/global-log.md): on a shared server,
 * others' transactions add to the latency. W9 samples, every 50 ms while the
 * writers run, how long the oldest transaction of any other database holding a
 * transaction id had been open, and reports it with the latencies.
 */
import { performance } from "node:perf_hooks"
import { Effect, Fiber, Stream } from "effect"
import { EventStore, StreamId, StreamWrites } from "eventcore"
import postgres from "postgres"
import { type Child, startChild } from "../lib/child.js"
import { run, type Sample, succeeded } from "../lib/measure.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import { Latencies, median } from "../lib/stats.js"
import { postgresSystem } from "../systems/eventcore.js"
import type { System } from "../systems/system.js"
import { benchEvent, freshStreamId } from "./payload.js"
import type { SubscriberResult } from "./subscriber-child.js"

export interface DeliveryLatency {
  /** Acknowledged events the subscriber delivered. */
  readonly delivered: number
  /** Acknowledged events it had not delivered when the bench stopped waiting (must be 0). */
  readonly missing: number
  /** Events it delivered before their writer heard back (counted as 0 ms). */
  readonly beforeAcknowledged: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

export interface DeliveryResult {
  readonly seconds: number
  readonly writers: number
  readonly poolSize: number
  /** The appends measured (warm-up excluded): each one event, acknowledged. */
  readonly appends: Sample
  readonly inProcess: DeliveryLatency
  readonly otherProcess: DeliveryLatency
  /** How long after the last acknowledgement both subscribers had delivered every event. */
  readonly drainMs: number
  readonly childPeakRssBytes: number
  readonly childMaxRssBytes: number | null
  /**
   * How long the oldest transaction (with an id) of another database on the server had been
   * open, sampled every 50 ms while the writers ran: the median and the largest sample, in ms.
   */
  readonly othersOldestTransactionMs: { readonly median: number; readonly max: number; readonly samples: number }
}

/** The clock both processes share, in milliseconds. */
const now = () => performance.timeOrigin + performance.now()

export const latencyOf = (acknowledged: ReadonlyMap<string, number>, delivered: ReadonlyMap<string, number>) => {
  const latencies = new Latencies()
  let missing = 0
  let early = 0
  for (const [eventId, ackAt] of acknowledged) {
    const at = delivered.get(eventId)
    if (at === undefined) {
      missing += 1
      continue
    }
    if (at < ackAt) early += 1
    latencies.add(Math.max(0, at - ackAt))
  }
  const [p50Ms, p99Ms, maxMs] = latencies.percentiles(50, 99, 100) as [number, number, number]
  return { delivered: latencies.count, missing, beforeAcknowledged: early, p50Ms, p99Ms, maxMs }
}

/** One event to a new stream (`<prefix>-<n>`); the event's id, once the append is acknowledged. */
export const appendOne = (prefix: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const streamId = StreamId.unsafeMake(freshStreamId(prefix))
    const event = benchEvent()
    const writes = yield* StreamWrites.expect(StreamWrites.empty, streamId, "no_stream").pipe(
      Effect.flatMap(StreamWrites.append({ streamId, eventType: event.type, data: event.data }))
    )
    const result = yield* store.append(writes)
    return (result.events[0] as { readonly eventId: string }).eventId
  })

const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`W9: ${what} within ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

export const delivery = async (
  admin: Admin,
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<DeliveryResult> => {
  const url = await admin.create(database)
  let system: System | undefined
  let child: Child<Omit<SubscriberResult, "type">> | undefined
  const watcher = postgres(url, { max: 1, onnotice: () => {} })
  try {
    system = await postgresSystem(url, poolSize)
    const runEffect = system.run as NonNullable<System["run"]>

    // The other process.
    const remote = new Map<string, number>()
    let remoteReady: () => void = () => {}
    const remoteCaughtUp = new Promise<void>((resolve) => {
      remoteReady = resolve
    })
    progress.status("W9: starting the subscribers")
    child = await startChild<Omit<SubscriberResult, "type">>(
      "W9 subscriber",
      new URL("./subscriber-child.ts", import.meta.url),
      ["--url", url],
      (message) => {
        if (message.type === "caughtUp") remoteReady()
        if (message.type === "delivered") {
          const at = message.at as number
          for (const id of message.ids as ReadonlyArray<string>) remote.set(id, at)
        }
      }
    )

    // This process, on the store the writers append through.
    const local = new Map<string, number>()
    let localReady: () => void = () => {}
    const localCaughtUp = new Promise<void>((resolve) => {
      localReady = resolve
    })
    const subscription = await runEffect(
      Effect.forkDaemon(
        Effect.flatMap(EventStore.EventStore, (store) =>
          store.subscribe().pipe(
            Stream.runForEachChunk((chunk) =>
              Effect.sync(() => {
                const at = now()
                for (const message of chunk) {
                  if (message._tag === "Event") local.set(message.event.eventId, at)
                  else localReady()
                }
              })
            )
          )
        )
      )
    )
    await within(Promise.all([localCaughtUp, remoteCaughtUp]), 60_000, "the subscribers did not catch up")

    const acknowledged = new Map<string, number>()
    let recording = false
    const operation = async () => {
      const eventId = await runEffect(appendOne("w9"))
      const at = now()
      if (recording) acknowledged.set(eventId, at)
      return succeeded(1)
    }
    if (options.warmupSeconds > 0) {
      progress.status("W9: warm-up")
      await run(operation, { concurrency: options.liveWriters, seconds: options.warmupSeconds })
    }
    recording = true
    const others: Array<number> = []
    let watching = true
    const watch = (async () => {
      while (watching) {
        const [row] = await watcher<[{ ms: number }]>`
          select coalesce(extract(epoch from max(clock_timestamp() - xact_start)) * 1000, 0)::float8 as ms
          from pg_stat_activity where backend_xid is not null and datname is distinct from current_database()`
        others.push(row?.ms ?? 0)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    const appends = await run(operation, {
      concurrency: options.liveWriters,
      seconds: options.w9Seconds,
      onProgress: (ops, elapsed) =>
        progress.status(
          `W9: ${elapsed.toFixed(1)} s, ${Math.round(ops / elapsed).toLocaleString("en")} appends/s, ` +
            `delivered ${local.size.toLocaleString("en")} here, ${remote.size.toLocaleString("en")} there`
        )
    })
    recording = false
    watching = false
    await watch
    let lastAck = 0
    for (const at of acknowledged.values()) lastAck = Math.max(lastAck, at)
    // Until both subscribers have delivered every acknowledged event (or 30 s have passed).
    const deadline = performance.now() + 30_000
    const undelivered = () => [...acknowledged.keys()].some((id) => !local.has(id) || !remote.has(id))
    while (undelivered() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    const drainMs = Math.max(0, now() - lastAck)

    await runEffect(Fiber.interrupt(subscription))
    child.stop()
    const { result, maxRssBytes } = await within(child.done, 30_000, "the subscriber process did not end")
    child = undefined
    return {
      seconds: options.w9Seconds,
      writers: options.liveWriters,
      poolSize,
      appends,
      inProcess: latencyOf(acknowledged, local),
      otherProcess: latencyOf(acknowledged, remote),
      drainMs,
      childPeakRssBytes: result.peakRssBytes,
      childMaxRssBytes: maxRssBytes,
      othersOldestTransactionMs: { median: median(others), max: Math.max(0, ...others), samples: others.length }
    }
  } finally {
    child?.stop()
    await child?.done.catch(() => {})
    await system?.close()
    await watcher.end({ timeout: 5 })
    await admin.drop(database)
  }
}
