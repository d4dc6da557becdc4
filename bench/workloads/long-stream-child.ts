/**
 * The measuring process of W7 and W8: reads one long stream through
 * `streamEvents` (W7), or the global log through `streamAll` or a raw
 * postgres.js keyset scan (W8), and reports throughput and peak memory. It runs
 * alone in its own process (see lib/child.ts) so that its peak RSS is the
 * reader's and nothing else's.
 *
 *   node --expose-gc --import tsx bench/workloads/long-stream-child.ts \
 *     --system postgres --url URL --stream long [--page-size N]   (W7: a seeded, migrated database)
 *   ... --system pglite --events N [--page-size N]                (W7: seeds an in-memory PGlite first)
 *   ... --read log --system postgres --url URL [--page-size N]    (W8: streamAll over the whole log)
 *   ... --read log --system raw --url URL --page-size N           (W8: the same rows by a raw keyset scan)
 *   ... --read log --system postgres --url URL --replica-url URL2  (W12: streamAll on a hot standby of URL)
 *
 * Writes JSON lines on stdout: {"type":"progress","events":n} now and then,
 * and {"type":"result",...} at the end, or as soon as its stdin closes (the
 * bench stopped a run that went over its time, or is gone), with what it read
 * until then and `finished: false`.
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer, Metric, Stream } from "effect"
import { EventStore, PgliteEventStore, PostgresEventStore, type StoreError, StreamId } from "eventcore"
import postgres from "postgres"

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
  /** False when the run was stopped before it read everything (the figures cover what it read). */
  readonly finished: boolean
  /** [events read, peak RSS since the previous entry] about every 500 ms: whether memory stays flat. */
  readonly rssTrace: ReadonlyArray<readonly [number, number]>
  /** With --replica-url: reads the standby cancelled (recovery conflicts) and the store ran again. */
  readonly replicaRetries?: number
}

const { values } = parseArgs({
  options: {
    read: { type: "string", default: "stream" },
    system: { type: "string", default: "postgres" },
    url: { type: "string" },
    "replica-url": { type: "string" },
    stream: { type: "string", default: "long" },
    events: { type: "string" },
    "page-size": { type: "string" }
  }
})

const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
const pageSize = values["page-size"] === undefined ? undefined : Number(values["page-size"])
const streamId = StreamId.unsafeMake(values.stream)

/** The store to read from and, for PGlite, how long seeding took. */
const open = async (): Promise<{
  layer: Layer.Layer<EventStore.EventStore, StoreError>
  seedSeconds: number | null
}> => {
  if (values.system === "postgres") {
    if (values.url === undefined) throw new Error("--url is required with --system postgres")
    const replicaUrl = values["replica-url"]
    return {
      layer: PostgresEventStore.layer({
        url: values.url,
        maxConnections: 2,
        ...(replicaUrl === undefined ? {} : { replicaUrl })
      }),
      seedSeconds: null
    }
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

/**
 * W8's baseline: the log's rows in the store's order, page by page, by a
 * keyset scan of the (transaction_id, global_position) index, as postgres.js
 * rows (JSON decoded, timestamps as Dates), each page one prepared statement.
 * (ORDER BY names the table's columns: the text `transaction_id` of the select
 * list would sort as text, by a sequential scan.)
 * Unlike the store it does not stop below the oldest running transaction (the
 * bench writes nothing while it reads).
 */
const rawScan = async (url: string, limit: number, onEvent: () => void) => {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    let transaction = "0"
    let position = "0"
    for (;;) {
      const rows = await sql<
        Array<{ transaction_id: string; global_position: string; data: unknown; recorded_at: Date }>
      >`select e.transaction_id::text as transaction_id, e.global_position, e.event_id, e.stream_id, e.stream_version,
               e.event_type, e.data, e.metadata, e.recorded_at
        from eventcore.events e
        where (e.transaction_id, e.global_position) > (${transaction}::text::xid8, ${position}::bigint)
        order by e.transaction_id, e.global_position
        limit ${limit}`
      for (let i = 0; i < rows.length; i++) onEvent()
      const last = rows.at(-1)
      if (last === undefined || rows.length < limit) return
      transaction = last.transaction_id
      position = last.global_position
    }
  } finally {
    await sql.end({ timeout: 5 })
  }
}

const raw = values.read === "log" && values.system === "raw"
const { layer, seedSeconds } = raw ? { layer: undefined, seedSeconds: null } : await open()
global.gc?.()
const before = process.memoryUsage()
let peakRss = before.rss
let peakHeap = before.heapUsed
let intervalPeak = before.rss
const rssTrace: Array<readonly [number, number]> = []
const sample = () => {
  const now = process.memoryUsage()
  peakRss = Math.max(peakRss, now.rss)
  peakHeap = Math.max(peakHeap, now.heapUsed)
  intervalPeak = Math.max(intervalPeak, now.rss)
}
const sampler = setInterval(sample, 20)
const reporter = setInterval(() => {
  rssTrace.push([count, intervalPeak])
  intervalPeak = 0
  emit({ type: "progress", events: count })
}, 500)

let count = 0
const started = performance.now()
/** Reports what was read (all of it, or until stopped) and exits. */
const finish = (finished: boolean) => {
  const seconds = (performance.now() - started) / 1000
  sample()
  clearInterval(sampler)
  clearInterval(reporter)
  rssTrace.push([count, intervalPeak])
  emit({
    type: "result",
    events: count,
    pageSize: pageSize ?? null,
    seconds,
    eventsPerSec: count / seconds,
    rssBeforeBytes: before.rss,
    peakRssBytes: peakRss,
    peakHeapUsedBytes: peakHeap,
    seedSeconds,
    finished,
    rssTrace,
    ...(values["replica-url"] === undefined
      ? {}
      : { replicaRetries: Effect.runSync(Metric.value(PostgresEventStore.replicaRetryCounter)).count })
  } satisfies ChildResult)
  process.exit(0)
}
process.stdin.on("end", () => finish(false))
process.stdin.resume()

if (values.read === "log") {
  if (raw) {
    if (values.url === undefined || pageSize === undefined) throw new Error("--system raw needs --url and --page-size")
    await rawScan(values.url, pageSize, () => {
      count++
      if ((count & 1023) === 0) sample()
    })
  } else {
    // Event by event, as an application folding the log would consume it.
    await Effect.runPromise(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* store.streamAll(pageSize === undefined ? {} : { pageSize }).pipe(
          Stream.runForEach(() =>
            Effect.sync(() => {
              count++
              if ((count & 1023) === 0) sample()
            })
          )
        )
      }).pipe(Effect.provide(layer as Layer.Layer<EventStore.EventStore, StoreError>))
    )
  }
} else {
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
    }).pipe(Effect.provide(layer as Layer.Layer<EventStore.EventStore, StoreError>))
  )
}
finish(true)
