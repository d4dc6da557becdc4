/**
 * The trigger's cached plan: eventcore_advance_streams checks that a stream's
 * new events continue it with `NOT EXISTS (SELECT 1 FROM eventcore_events ...)`.
 * A connection that plans it while the table is small may get a *hashed*
 * subplan (a sequential scan of every event, to build a hash table) and keeps
 * it: plpgsql caches plans per connection. This shows it on a scratch database:
 *
 *  1. connection A appends to existing streams while the table is small;
 *  2. another connection loads `--events` events (autovacuum off for the table,
 *     so that no ANALYZE invalidates A's plans in the meantime, as it would
 *     eventually in production);
 *  3. the same appends, timed, on A and on a new connection B;
 *  4. the same again with the trigger, then also the function, of
 *     bench/profile/append-proposal.sql (the shipped function's own joins to
 *     eventcore_streams have the same kind of cached plan).
 *
 *   npx tsx bench/profile/trigger-plan.ts [--events 300000] [--appends 200]
 */
import { readFileSync } from "node:fs"
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
    url: { type: "string" }
  }
})
const admin = adminOf(values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")
const appends = Number(values.appends)

const request = (id: string, expected: number) =>
  JSON.stringify({
    streams: [{ id, expected }],
    events: [{ stream: id, id: crypto.randomUUID(), type: "T", data: { n: expected + 1 }, metadata: {} }]
  })

const scenario = async (label: string, fixTrigger: boolean, fixAppend: boolean) => {
  const url = await admin.create(`eventcore_trigger_plan_${process.pid}`)
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    const setup = postgres(url, { max: 1, onnotice: () => {} })
    const proposal = readFileSync(new URL("./append-proposal.sql", import.meta.url), "utf8")
    const triggerAt = proposal.indexOf("CREATE OR REPLACE FUNCTION eventcore_advance_streams")
    if (fixTrigger) await setup.unsafe(proposal.slice(triggerAt))
    if (fixAppend) {
      await setup.unsafe(proposal.slice(0, triggerAt).replaceAll("eventcore_append_proposed", "eventcore_append"))
    }
    await setup`alter table eventcore_events set (autovacuum_enabled = false)`
    await setup`insert into eventcore_events (event_id, stream_id, stream_version, event_type, data)
                select gen_random_uuid(), 'hot-' || g, 1, 'T', '{}'::jsonb from generate_series(1, 100) g`
    const versions = new Map(Array.from({ length: 100 }, (_, i) => [`hot-${i + 1}`, 1]))
    const append = async (sql: postgres.Sql) => {
      const id = `hot-${1 + Math.floor(Math.random() * 100)}`
      const version = versions.get(id) as number
      await sql`select eventcore_append(${request(id, version)}::text::jsonb)`
      versions.set(id, version + 1)
    }
    const time = async (sql: postgres.Sql) => {
      const started = performance.now()
      for (let i = 0; i < appends; i++) await append(sql)
      return (performance.now() - started) / appends
    }
    const a = postgres(url, { max: 1, onnotice: () => {} })
    await a`set synchronous_commit = off`
    const small = await time(a)
    await setup`insert into eventcore_events (event_id, stream_id, stream_version, event_type, data)
                select gen_random_uuid(), 'bulk-' || g, 1, 'T', '{}'::jsonb from generate_series(1, ${Number(values.events)}::int) g`
    const b = postgres(url, { max: 1, onnotice: () => {} })
    await b`set synchronous_commit = off`
    await time(b) // B plans now, with the table large
    const [onA, onB] = [await time(a), await time(b)]
    console.log(`| ${label} | ${small.toFixed(2)} | ${onA.toFixed(2)} | ${onB.toFixed(2)} |`)
    await Promise.all([a.end(), b.end(), setup.end()])
  } finally {
    await admin.drop(`eventcore_trigger_plan_${process.pid}`)
  }
}

try {
  console.log(
    `| functions | ms/append, table small (A) | after loading ${Number(values.events).toLocaleString("en")} events: A (plan from before) | B (new connection) |`
  )
  console.log("| --- | ---: | ---: | ---: |")
  await scenario("shipped function and trigger", false, false)
  await scenario("shipped function, proposed trigger", true, false)
  await scenario("proposed function and trigger", true, true)
} finally {
  await admin.close()
}
