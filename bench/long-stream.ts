/**
 * Streams one stream of 1,000,000 events (about 200 bytes of JSON each) through
 * `streamEvents` and reports throughput and peak memory, to show that memory is
 * bounded by the page size rather than by the stream's length.
 *
 *   DATABASE_URL=postgres://... npx tsx bench/long-stream.ts [events] [pageSize]
 *
 * Creates and drops a database of its own on the server.
 */
import { Effect, Stream } from "effect"
import { EventStore, PostgresEventStore, StreamId } from "eventcore"
import postgres from "postgres"

const url = process.env.DATABASE_URL
if (url === undefined) {
  console.error("set DATABASE_URL to a PostgreSQL server (a database is created and dropped there)")
  process.exit(2)
}
const total = Number(process.argv[2] ?? 1_000_000)
const pageSize = Number(process.argv[3] ?? 1_000)
const database = `eventcore_long_stream_${process.pid}`
const databaseUrl = Object.assign(new URL(url), { pathname: `/${database}` }).toString()

const admin = postgres(url, { max: 1, onnotice: () => {} })
await admin.unsafe(`create database "${database}"`)
try {
  await Effect.runPromise(PostgresEventStore.migrate({ url: databaseUrl }))
  const db = postgres(databaseUrl, { max: 1, onnotice: () => {} })
  const seeded = Date.now()
  // One statement; the trigger advances the stream's row to the last version.
  await db`
    insert into eventcore_events (event_id, stream_id, stream_version, event_type, data)
    select gen_random_uuid(), 'long', g, 'Recorded',
           jsonb_build_object('n', g, 'note', repeat('x', 160), 'ok', true)
    from generate_series(1, ${total}::int) g`
  await db.end()
  console.log(`seeded ${total} events in ${((Date.now() - seeded) / 1000).toFixed(1)} s`)

  global.gc?.()
  const baseline = process.memoryUsage()
  let peakRss = baseline.rss
  let peakHeap = baseline.heapUsed
  let count = 0
  const started = Date.now()
  await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.streamEvents(StreamId.unsafeMake("long"), { pageSize }).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            count++
            if (event.streamVersion !== count) throw new Error(`version ${event.streamVersion} at position ${count}`)
            if (count % pageSize === 0) {
              const now = process.memoryUsage()
              peakRss = Math.max(peakRss, now.rss)
              peakHeap = Math.max(peakHeap, now.heapUsed)
            }
          })
        )
      )
    }).pipe(Effect.provide(PostgresEventStore.layer({ url: databaseUrl, maxConnections: 2 })))
  )
  const seconds = (Date.now() - started) / 1000
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`
  console.log(
    `streamed ${count} events (page ${pageSize}) in ${seconds.toFixed(1)} s = ${Math.round(count / seconds)} events/s; ` +
      `RSS ${mb(baseline.rss)} before, peak ${mb(peakRss)}; heap ${mb(baseline.heapUsed)} before, peak ${mb(peakHeap)}`
  )
} finally {
  await admin.unsafe(`drop database if exists "${database}" with (force)`)
  await admin.end()
}
