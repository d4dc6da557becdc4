/**
 * Regression check for plans cached while the tables were small. plpgsql
 * caches its statements' plans per connection, and a pooled connection lives
 * long: a plan made when eventcore.events held a few rows can outlive the
 * statistics it was made from. 0001's eventcore.append and trigger joined
 * request, streams and events set-wise, and a plan made on small tables
 * (hash joins, hashed subplans over sequential scans of whole tables) stayed
 * so on a connection after the tables grew: appends slowed with the store
 * (6 ms each at 27,000 events). drizzle/0003_lean_append.sql looks every row
 * up by primary key or index, whatever the statistics; this checks that it
 * stays so, on a scratch database:
 *
 *  1. connection A appends to existing streams while the table is small;
 *  2. another connection loads `--events` events, with autovacuum off for both
 *     tables so that no ANALYZE invalidates A's plans in the meantime (the
 *     worst case: in production one eventually would);
 *  3. the same appends, timed on A and on a new connection B, alternately.
 *
 * Without an ANALYZE, B plans from the same small-table statistics as A did,
 * so B is no reference: 0001's functions were slow on both (at 20,000 events,
 * 18-19 ms per append on A and 8-11 ms on B, against 1.1 ms before the load). The
 * check is therefore against the appends on small tables: it exits with 1 when
 * A or B is more than `--max-ratio` times slower than A was then. Each timing
 * is the best of `--rounds`, the first of which also makes the plans.
 *
 *   npx tsx bench/profile/trigger-plan.ts [--events 300000] [--appends 200] [--rounds 3] [--max-ratio 2]
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { adminOf } from "../lib/server.js"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "300000" },
    appends: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
    "max-ratio": { type: "string", default: "2" },
    url: { type: "string" }
  }
})
const admin = adminOf(values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")
const events = Number(values.events)
const appends = Number(values.appends)
const rounds = Number(values.rounds)
const maxRatio = Number(values["max-ratio"])
const database = `eventcore_trigger_plan_${process.pid}`

const request = (id: string, expected: number) =>
  JSON.stringify({
    streams: [{ id, expected }],
    events: [{ stream: id, id: crypto.randomUUID(), type: "T", data: { n: expected + 1 }, metadata: {} }]
  })

const url = await admin.create(database)
let slower = false
try {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  const setup = postgres(url, { max: 1, onnotice: () => {} })
  await setup`alter table eventcore.events set (autovacuum_enabled = false)`
  await setup`alter table eventcore.streams set (autovacuum_enabled = false)`
  await setup`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
              select gen_random_uuid(), 'hot-' || g, 1, 'T', '{}'::jsonb from generate_series(1, 100) g`
  const versions = new Map(Array.from({ length: 100 }, (_, i) => [`hot-${i + 1}`, 1]))
  const append = async (sql: postgres.Sql) => {
    const id = `hot-${1 + Math.floor(Math.random() * 100)}`
    const version = versions.get(id) as number
    await sql`select eventcore.append(${request(id, version)}::text::jsonb)`
    versions.set(id, version + 1)
  }
  const time = async (sql: postgres.Sql) => {
    const started = performance.now()
    for (let i = 0; i < appends; i++) await append(sql)
    return (performance.now() - started) / appends
  }
  const connect = async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    await sql`set synchronous_commit = off`
    return sql
  }

  const best = async (sql: postgres.Sql) => {
    let fastest = Number.POSITIVE_INFINITY
    for (let round = 0; round < rounds; round++) fastest = Math.min(fastest, await time(sql))
    return fastest
  }

  const a = await connect()
  const small = await best(a)
  await setup`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
              select gen_random_uuid(), 'bulk-' || g, 1, 'T', '{}'::jsonb from generate_series(1, ${events}::int) g`
  // (the trigger gives each of them its row in eventcore.streams: both tables grow)
  const b = await connect()
  await time(b) // B makes its plans now, after the load
  let [onA, onB] = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]
  for (let round = 0; round < rounds; round++) {
    onA = Math.min(onA, await time(a))
    onB = Math.min(onB, await time(b))
  }
  await Promise.all([a.end(), b.end(), setup.end()])

  const growth = Math.max(onA, onB) / small
  slower = growth > maxRatio
  console.log(
    `| ms/append, tables small (A) | after loading ${events.toLocaleString("en")} events: A (plans from before) | B (new connection) | slowest / small |`
  )
  console.log("| ---: | ---: | ---: | ---: |")
  console.log(`| ${small.toFixed(3)} | ${onA.toFixed(3)} | ${onB.toFixed(3)} | ${growth.toFixed(2)} |`)
  console.log(
    slower
      ? `\nappends got ${growth.toFixed(1)}× slower as the tables grew (> ${maxRatio}): a plan scans them.`
      : `\nappends did not slow down as the tables grew (≤ ${maxRatio}×).`
  )
} finally {
  await admin.drop(database)
  await admin.close()
}
if (slower) process.exitCode = 1
