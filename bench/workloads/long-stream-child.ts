/**
 * W7's measuring process: streams one long stream through `streamEvents` and
 * reports throughput and peak memory. It runs alone in its own process (see
 * long-stream.ts) so that its peak RSS is the store's and nothing else's.
 *
 *   node --expose-gc --import tsx bench/workloads/long-stream-child.ts \
 *     --system postgres --url URL --stream long [--page-size N]   (a seeded, migrated database)
 *   ... --system pglite --events N [--page-size N]                (seeds an in-memory PGlite first)
 *
 * Writes JSON lines on stdout: {"type":"progress","events":n} now and then,
 * and {"type":"result",...} at the end.
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer, Stream } from "effect"
import { EventStore, PgliteEventStore, PostgresEventStore, type StoreError, StreamId } from "eventcore"

export interface ChildResult {
  readonly type: "result"
  readonly events: number
  readonly pageSize: number | null
  readonly seconds: number
  readonly eventsPerSec: number
  /** Before streaming (for PGlite, the database is in this process and counted). */
  readonly rssBeforeBytes: number
  readonly peakRssBytes: number
  readonly peakHeapUsedBytes: number
  readonly seedSeconds: number | null
}

const { values } = parseArgs({
  options: {
    system: { type: "string", default: "postgres" },
    url: { type: "string" },
    stream: { type: "string", default: "long" },
    events: { type: "string" },
    "page-size": { type: "string" }
  }
})

const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
const pageSize = values["page-size"] === undefined ? undefined : Number(values["page-size"])
const streamId = StreamId.unsafeMake(values.stream)

/** The store to stream from and, for PGlite, how long seeding took. */
const open = async (): Promise<{
  layer: Layer.Layer<EventStore.EventStore, StoreError>
  seedSeconds: number | null
}> => {
  if (values.system === "postgres") {
    if (values.url === undefined) throw new Error("--url is required with --system postgres")
    return { layer: PostgresEventStore.layer({ url: values.url, maxConnections: 2 }), seedSeconds: null }
  }
  if (values.system !== "pglite") throw new Error(`unknown system ${values.system}`)
  const events = Number(values.events ?? 100_000)
  const client = await PGlite.create()
  await Effect.runPromise(PgliteEventStore.migrate(client))
  const started = performance.now()
  // The same seed as on the server: one statement, the trigger advances the stream's row.
  await client.query(
    `insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
     select gen_random_uuid(), $1, g, 'Recorded', jsonb_build_object('n', g, 'note', repeat('x', 160), 'ok', true)
     from generate_series(1, $2::int) g`,
    [streamId, events]
  )
  return {
    layer: Layer.succeed(EventStore.EventStore, PgliteEventStore.make(client)),
    seedSeconds: (performance.now() - started) / 1000
  }
}

const { layer, seedSeconds } = await open()
global.gc?.()
const before = process.memoryUsage()
let peakRss = before.rss
let peakHeap = before.heapUsed
const sample = () => {
  const now = process.memoryUsage()
  peakRss = Math.max(peakRss, now.rss)
  peakHeap = Math.max(peakHeap, now.heapUsed)
}
const sampler = setInterval(sample, 20)
const reporter = setInterval(() => emit({ type: "progress", events: count }), 500)

let count = 0
const started = performance.now()
await Effect.runPromise(
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    yield* store.streamEvents(streamId, pageSize === undefined ? {} : { pageSize }).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          count++
          if (event.streamVersion !== count) throw new Error(`version ${event.streamVersion} at position ${count}`)
          if ((count & 1023) === 0) sample()
        })
      )
    )
  }).pipe(Effect.provide(layer))
)
const seconds = (performance.now() - started) / 1000
sample()
clearInterval(sampler)
clearInterval(reporter)

emit({
  type: "result",
  events: count,
  pageSize: pageSize ?? null,
  seconds,
  eventsPerSec: count / seconds,
  rssBeforeBytes: before.rss,
  peakRssBytes: peakRss,
  peakHeapUsedBytes: peakHeap,
  seedSeconds
} satisfies ChildResult)
process.exit(0)
