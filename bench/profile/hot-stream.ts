/**
 * W5 under the microscope: 8 writers on one stream (read the version, append
 * at it, retry at once on conflict), for the PostgreSQL store and the raw
 * baseline. Reports how long each step takes by outcome, and what the server
 * backends were waiting on (pg_stat_activity sampled every few milliseconds).
 *
 *   npx tsx bench/profile/hot-stream.ts [--seconds 8] [--writers 8]
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { adminOf } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { postgresSystem } from "../systems/eventcore.js"
import { rawSystem } from "../systems/raw.js"
import type { System } from "../systems/system.js"
import { benchEvent } from "../workloads/payload.js"

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    writers: { type: "string", default: "8" },
    // A prototype of the append to measure: SQL run on the store's database after its migration
    sql: { type: "string" },
    systems: { type: "string", default: "postgres,raw" },
    url: { type: "string" }
  }
})
const seconds = Number(values.seconds)
const writers = Number(values.writers)
const admin = adminOf(values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")
const database = `eventcore_hot_${process.pid}`
const url = await admin.create(database)

const percentile = (values: Array<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

const measure = async (system: System) => {
  const streamId = `hot-${system.name}`
  await system.seed([{ streamId, events: [benchEvent()] }])
  const reads: Array<number> = []
  const appended: Array<number> = []
  const conflicted: Array<number> = []
  const attemptsPerOperation: Array<number> = []
  const waits = new Map<string, number>()
  let samples = 0
  const sampler = postgres(url, { max: 1, onnotice: () => {} })
  const deadline = performance.now() + seconds * 1000
  let sampling = true
  const sample = async () => {
    while (sampling) {
      const rows = await sampler<Array<{ wait: string; n: number }>>`
        select coalesce(wait_event_type || ':' || wait_event, 'CPU') as wait, count(*)::int as n
        from pg_stat_activity
        where datname = ${database} and state = 'active' and pid <> pg_backend_pid()
        group by 1`
      samples += 1
      for (const row of rows) waits.set(row.wait, (waits.get(row.wait) ?? 0) + row.n)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  const sampling$ = sample()
  const writer = async () => {
    let attempts = 0
    while (performance.now() < deadline) {
      const t0 = performance.now()
      const version = await system.version(streamId)
      const t1 = performance.now()
      const outcome = await system.append(streamId, version, [benchEvent()])
      const t2 = performance.now()
      reads.push(t1 - t0)
      attempts += 1
      if (outcome === "appended") {
        appended.push(t2 - t1)
        attemptsPerOperation.push(attempts)
        attempts = 0
      } else {
        conflicted.push(t2 - t1)
      }
    }
  }
  await Promise.all(Array.from({ length: writers }, writer))
  sampling = false
  await sampling$
  await sampler.end()
  const ms = (values: Array<number>) =>
    `median ${median(values).toFixed(2)} ms, p90 ${percentile(values, 90).toFixed(2)} ms, max ${percentile(values, 100).toFixed(1)} ms`
  console.log(
    `### ${system.name}: ${(appended.length / seconds).toFixed(0)} appends/s, ${(conflicted.length / seconds).toFixed(0)} conflicts/s`
  )
  console.log(`- version read: ${ms(reads)}`)
  console.log(
    `- attempts per operation: median ${median(attemptsPerOperation)}, p99 ${percentile(attemptsPerOperation, 99)}, ` +
      `p99.9 ${percentile(attemptsPerOperation, 99.9)}, max ${percentile(attemptsPerOperation, 100)}, ` +
      `over 100: ${attemptsPerOperation.filter((n) => n > 100).length} of ${attemptsPerOperation.length}`
  )
  console.log(`- append that succeeded: ${ms(appended)}`)
  console.log(`- append that conflicted: ${ms(conflicted)}`)
  console.log(
    `- backends of this database, average per sample (${samples} samples): ` +
      [...waits]
        .sort((a, b) => b[1] - a[1])
        .map(([wait, n]) => `${wait} ${(n / samples).toFixed(2)}`)
        .join(", ")
  )
  console.log("")
}

try {
  const store = await postgresSystem(url, 10)
  const raw = await rawSystem(url, 10)
  if (values.sql !== undefined) {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    await sql.file(values.sql)
    await sql.end()
  }
  console.log(
    `## ${writers} writers on one stream, ${seconds} s each${values.sql ? `, the append of ${values.sql}` : ""}\n`
  )
  const chosen = values.systems.split(",")
  if (chosen.includes("postgres")) await measure(store)
  if (chosen.includes("raw")) await measure(raw)
  await store.close()
  await raw.close()
} finally {
  await admin.close()
}
