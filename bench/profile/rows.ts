/**
 * Where a row projection's time goes beside W11's raw batched loop
 * (bench/workloads/projection.ts), over the same account log: wall time and
 * this process's CPU per 1,000 events, the two interleaved pass by pass.
 *
 *   npx tsx bench/profile/rows.ts [--events 100000] [--accounts 1000] [--batch 1000] [--reps 5]
 *                                 [--cpu-profile FILE.cpuprofile]
 *
 * With --cpu-profile, the first pass of `Projection.run(Balances)` is
 * CPU-profiled (node:inspector) into FILE; read it with cpu-summary.ts.
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { LogPosition, PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { Balances, createBalances } from "../../src/demo/readModel.js"
import { Progress } from "../lib/progress.js"
import { adminOf } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { cpuMs, timedProjectionRun } from "../lib/timedRun.js"
import { expectedFold, headOf, rawBatchedLoop, rawName, readModelFold, seedLog } from "../workloads/projection.js"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    accounts: { type: "string", default: "1000" },
    batch: { type: "string", default: "1000" },
    reps: { type: "string", default: "5" },
    "cpu-profile": { type: "string" },
    "raw-nodelay": { type: "boolean", default: false },
    url: { type: "string" }
  }
})
const events = Number(values.events)
const accounts = Number(values.accounts)
const batchSize = Number(values.batch)
const reps = Number(values.reps)
const serverUrl = values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const admin = adminOf(serverUrl)
const database = `eventcore_rows_profile_${process.pid}`
const progress = new Progress()
const quiet = Logger.minimumLogLevel(LogLevel.None)

interface Pass {
  readonly wallMs: number
  readonly cpuMs: number
}

const url = await admin.create(database)
try {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  const sql = postgres(url, { max: 2, onnotice: () => {} })
  // The raw loop on eventcore's sockets too (no Nagle), with --raw-nodelay.
  const rawSql = values["raw-nodelay"]
    ? postgres(url, { socket: PostgresEventStore.socketFactory(), max: 1, onnotice: () => {} } as postgres.Options<
        Record<string, never>
      >)
    : sql
  await drizzle({ client: sql }).execute(createBalances)
  await seedLog((statement) => sql.unsafe(statement), events, accounts, progress)
  const head = await headOf(sql)
  const expected = await expectedFold(sql)
  await sql`insert into eventcore.projections (name, kind, position, status)
            values (${rawName}, 'projection', ${LogPosition.start}, 'stopped')`

  const reset = async () => {
    await sql`delete from bank_balances`
    await sql`update eventcore.projections set position = ${LogPosition.start}`
    await sql`vacuum analyze bank_balances, eventcore.projections`
  }
  const checked = async () => {
    const fold = await readModelFold(sql)
    if (fold.accounts !== expected.accounts || fold.cents !== expected.cents) throw new Error("the read model is wrong")
  }

  const runtime = ManagedRuntime.make(Layer.merge(PostgresEventStore.layer({ url, maxConnections: 2 }), quiet))
  const rowsPass = async (profileTo?: string): Promise<Pass> => {
    await reset()
    const pass = await timedProjectionRun(runtime, Balances, {
      head,
      batchSize,
      ...(profileTo === undefined ? {} : { profileTo })
    })
    await checked()
    return pass
  }
  const rawPass = async (): Promise<Pass> => {
    await reset()
    const cpu = cpuMs()
    const started = performance.now()
    await rawBatchedLoop(rawSql, { batchSize, head, deadline: Number.POSITIVE_INFINITY })
    const pass = { wallMs: performance.now() - started, cpuMs: cpuMs() - cpu }
    await checked()
    return pass
  }

  // Warm both up (plans, JIT of the JavaScript, the server's caches).
  await rawPass()
  await rowsPass()
  const passes: Record<"raw" | "rows", Array<Pass>> = { raw: [], rows: [] }
  for (let rep = 1; rep <= reps; rep++) {
    progress.status(`pass ${rep}/${reps}`)
    const [first, second] = rep % 2 === 1 ? (["raw", "rows"] as const) : (["rows", "raw"] as const)
    for (const side of [first, second]) {
      passes[side].push(
        side === "raw" ? await rawPass() : await rowsPass(rep === 1 ? values["cpu-profile"] : undefined)
      )
    }
  }
  await runtime.dispose()
  await sql.end()
  const per1000 = (ms: number) => (ms / events) * 1000
  progress.log(`${events} events over ${accounts} accounts, batches of ${batchSize}, ${reps} passes, medians:`)
  for (const side of ["raw", "rows"] as const) {
    const wall = median(passes[side].map((pass) => pass.wallMs))
    const cpu = median(passes[side].map((pass) => pass.cpuMs))
    progress.log(
      `  ${side}: ${Math.round((events / wall) * 1000).toLocaleString("en")} events/s, ` +
        `wall ${per1000(wall).toFixed(2)} ms and Node CPU ${per1000(cpu).toFixed(2)} ms per 1,000 events`
    )
  }
  const ratios = passes.rows.map((pass, i) => (passes.raw[i] as Pass).wallMs / pass.wallMs)
  progress.log(`  rows / raw by pass: ${ratios.map((ratio) => ratio.toFixed(2)).join(", ")}`)
} finally {
  await admin.close()
}
