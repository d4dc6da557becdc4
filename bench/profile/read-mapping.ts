/**
 * Where the JS time of a read goes: the same 1,000-event stream read five ways
 * on one connection, with the process's CPU time per read.
 *
 *  1. the store's readStream (Effect, gate, drizzle prepared statement, row mapping);
 *  2. the store's drizzle statement alone (same SQL, drizzle's mapping, no Effect);
 *  3. the same SQL through postgres.js directly (prepared), rows mapped by hand
 *     to RecordedEvent: what the store could do without drizzle's per-column mapping;
 *  4. as 3, with recorded_at read as epoch milliseconds (no date-string parsing);
 *  5. the raw SELECT of the baseline (postgres.js rows, no mapping).
 *
 *   npx tsx bench/profile/read-mapping.ts [--events 1000] [--reads 300]
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { and, eq, gte, sql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect } from "effect"
import { EventStore, LogPosition, PostgresEventStore, type RecordedEvent, StreamId } from "eventcore"
import { events, streams } from "eventcore/drizzle"
import postgres from "postgres"
import { adminOf } from "../lib/server.js"
import { rawSystem } from "../systems/raw.js"
import { benchEvents } from "../workloads/payload.js"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "1000" },
    reads: { type: "string", default: "300" },
    url: { type: "string" }
  }
})
const size = Number(values.events)
const reads = Number(values.reads)
const admin = adminOf(values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")
const url = await admin.create(`eventcore_read_mapping_${process.pid}`)

try {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  const raw = await rawSystem(url, 1)
  const streamId = StreamId.unsafeMake("read-me")
  const seedEvents = benchEvents(size)
  await raw.seed([{ streamId, events: seedEvents }])
  await raw.close()
  const client = postgres(url, { max: 1, onnotice: () => {} })
  await client`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
               select gen_random_uuid(), stream_id, stream_version, event_type, data from bench_raw_events`
  await client`vacuum analyze`

  const store = PostgresEventStore.make(client)
  const db = drizzle({ client: postgres(url, { max: 1, onnotice: () => {} }) })
  // The store's statement, as SqlEventStore builds it.
  const page = db
    .select({
      eventId: events.eventId,
      streamVersion: events.streamVersion,
      globalPosition: events.globalPosition,
      transactionId: sql<string>`${events.transactionId}::text`.as("transaction_id"),
      eventType: events.eventType,
      data: events.data,
      metadata: events.metadata,
      recordedAt: events.recordedAt
    })
    .from(events)
    .where(and(eq(events.streamId, streams.streamId), gte(events.streamVersion, sql.placeholder("fromVersion"))))
    .orderBy(events.streamVersion)
    .limit(sql.placeholder("limit"))
    .as("page")
  const statement = db
    .select({
      version: streams.version,
      eventId: page.eventId,
      streamVersion: page.streamVersion,
      globalPosition: page.globalPosition,
      transactionId: page.transactionId,
      eventType: page.eventType,
      data: page.data,
      metadata: page.metadata,
      recordedAt: page.recordedAt
    })
    .from(streams)
    .leftJoinLateral(page, sql`true`)
    .where(eq(streams.streamId, sql.placeholder("streamId")))
    .orderBy(page.streamVersion)
    .prepare("read_mapping_drizzle")
  const readSql = statement.getQuery().sql

  // A client of its own: drizzle changes the parsers of the client it is given.
  const direct = postgres(url, { max: 1, onnotice: () => {} })
  const mapRows = (rows: ReadonlyArray<Record<string, unknown>>, recordedAt: (value: unknown) => Date) => {
    const out: Array<RecordedEvent> = []
    for (const row of rows) {
      if (row.event_id === null) continue
      const globalPosition = BigInt(row.global_position as string)
      out.push({
        eventId: row.event_id as string,
        streamId,
        streamVersion: row.stream_version as number,
        globalPosition,
        position: LogPosition.make(BigInt(row.transaction_id as string), globalPosition),
        eventType: row.event_type as string,
        data: row.data,
        metadata: row.metadata as Record<string, unknown>,
        recordedAt: recordedAt(row.recorded_at)
      })
    }
    return out
  }
  const epochSql = readSql.replace(
    '"page"."recorded_at" from',
    '(extract(epoch from "page"."recorded_at") * 1000)::float8 as "recorded_at" from'
  )
  const params = [1, Number.MAX_SAFE_INTEGER, streamId]

  const ways: ReadonlyArray<readonly [string, () => Promise<number>]> = [
    [
      "1. store readStream",
      () =>
        Effect.runPromise(
          Effect.map(
            Effect.flatMap(EventStore.EventStore, (s) => s.readStream(streamId)),
            (read) => read.events.length
          ).pipe(Effect.provideService(EventStore.EventStore, store))
        )
    ],
    [
      "2. drizzle statement alone",
      async () => (await statement.execute({ streamId, fromVersion: 1, limit: Number.MAX_SAFE_INTEGER })).length
    ],
    [
      "3. postgres.js + hand mapping",
      async () => mapRows(await direct.unsafe(readSql, params, { prepare: true }), (value) => value as Date).length
    ],
    [
      "4. as 3, recorded_at as epoch ms",
      async () =>
        mapRows(await direct.unsafe(epochSql, params, { prepare: true }), (value) => new Date(value as number)).length
    ],
    [
      "5. raw SELECT (baseline)",
      async () =>
        (
          await direct`select event_id, stream_version, global_position, event_type, data, metadata, recorded_at
                       from bench_raw_events where stream_id = ${streamId} order by stream_version`
        ).length
    ]
  ]

  console.log(`| way (${size} events, ${reads} reads each, best of 2) | CPU µs/read | wall µs/read | CPU µs/event |`)
  console.log("| --- | ---: | ---: | ---: |")
  for (const [label, read] of ways) {
    for (let i = 0; i < 30; i++) if ((await read()) !== size) throw new Error(`${label} read a wrong count`)
    let best = { cpu: Number.POSITIVE_INFINITY, wall: Number.POSITIVE_INFINITY }
    for (let round = 0; round < 2; round++) {
      global.gc?.()
      const cpu = process.cpuUsage()
      const wall = performance.now()
      for (let i = 0; i < reads; i++) await read()
      const used = process.cpuUsage(cpu)
      const result = { cpu: (used.user + used.system) / reads, wall: ((performance.now() - wall) * 1000) / reads }
      if (result.cpu < best.cpu) best = result
    }
    console.log(`| ${label} | ${best.cpu.toFixed(0)} | ${best.wall.toFixed(0)} | ${(best.cpu / size).toFixed(2)} |`)
  }
  await direct.end()
  await client.end()
  await db.$client.end()
} finally {
  await admin.close()
}
