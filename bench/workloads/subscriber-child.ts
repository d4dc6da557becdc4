/**
 * W9's subscriber in another process: follows the global log of a database
 * through `subscribe()` on a store of its own (it learns of others' appends
 * by polling, as any process but the writer's does), and reports when each
 * event reached it, on the clock both processes share
 * (`performance.timeOrigin + performance.now()`).
 *
 *   node bench/workloads/subscriber-child.ts --url URL [--replica-url URL2]
 *
 * With --replica-url (W12) its store reads the log on that hot standby of URL.
 *
 * Writes JSON lines on stdout: {"type":"caughtUp"} once it has caught up,
 * {"type":"delivered","at":ms,"ids":[...]} for each chunk delivered, and
 * {"type":"result",...} once its stdin closes (the bench is done, or gone).
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { Cause, Effect, Exit, Fiber, Metric, Stream } from "effect"
import { EventStore, PostgresEventStore } from "eventcore"

export interface SubscriberResult {
  readonly type: "result"
  readonly delivered: number
  readonly peakRssBytes: number
  /** With --replica-url: reads the standby cancelled (recovery conflicts) and the store ran again. */
  readonly replicaRetries?: number
}

const { values } = parseArgs({ options: { url: { type: "string" }, "replica-url": { type: "string" } } })
if (values.url === undefined) throw new Error("--url is required")
const replicaUrl = values["replica-url"]

const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
let delivered = 0
let caughtUp = false
let peakRss = process.memoryUsage().rss
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 100)

const fiber = Effect.runFork(
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    yield* store.subscribe().pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.sync(() => {
          const at = performance.timeOrigin + performance.now()
          const ids: Array<string> = []
          for (const message of chunk) {
            if (message._tag === "Event") ids.push(message.event.eventId)
            else if (!caughtUp) {
              caughtUp = true
              emit({ type: "caughtUp" })
            }
          }
          if (ids.length > 0) {
            delivered += ids.length
            emit({ type: "delivered", at, ids })
          }
        })
      )
    )
  }).pipe(
    Effect.provide(
      PostgresEventStore.layer({
        url: values.url,
        maxConnections: 2,
        ...(replicaUrl === undefined ? {} : { replicaUrl })
      })
    )
  )
)

fiber.addObserver((exit) => {
  // The subscription never ends by itself: only a failure gets here before stdin closes.
  if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
    process.stderr.write(`subscription failed: ${Cause.pretty(exit.cause)}\n`)
    process.exit(1)
  }
})

process.stdin.on("end", () => {
  void Effect.runPromise(Fiber.interrupt(fiber)).then(() => {
    clearInterval(sampler)
    emit({
      type: "result",
      delivered,
      peakRssBytes: peakRss,
      ...(replicaUrl === undefined
        ? {}
        : { replicaRetries: Effect.runSync(Metric.value(PostgresEventStore.replicaRetryCounter)).count })
    } satisfies SubscriberResult)
    process.exit(0)
  })
})
process.stdin.resume()
