/**
 * What NOTIFY would cost appends, measured before anyone puts it on the append
 * path: W1 (one ~200-byte event to a new stream per append, through the
 * PostgreSQL store) against the shipped `append` function and against the same
 * function with `PERFORM pg_notify('eventcore', '')` before its RETURN, at
 * concurrency 1 and 8. Everything happens in a scratch database this script
 * creates and drops: the shipped schema `eventcore`, and a schema
 * `eventcore_notify` migrated the same way whose `append` is then replaced
 * (CREATE OR REPLACE from `pg_get_functiondef`, so it keeps SECURITY DEFINER
 * and its search_path); no migration is written. A third side runs the
 * notifying function while one connection LISTENs on the channel, as a
 * notified subscriber would. Sides are interleaved within each repetition
 * (their order rotating from one repetition to the next); the tables report
 * medians and the ratio to the shipped function.
 *
 *   npx tsx bench/profile/notify.ts [--reps 3] [--duration 5] [--warmup 1] [--concurrency 1,8]
 *
 * Why it could matter: at commit, a transaction that notified takes a lock
 * that serializes every notifying commit in the cluster (PreCommit_Notify
 * locks the notification queue until the commit is flushed), so commits that
 * would share one WAL flush at concurrency 8 queue one behind the other.
 *
 * Measured 2026-12-01 13:50 on the 2-core VM (PostgreSQL 15.20, fsync=on,
 * synchronous_commit=on, Node 20.20, pools of 10, 3 repetitions × (1 s warm-up
 * + 5 s), medians; the machine was busy with other engineers' test runs, load
 * average 8.4 before and 8.5 after, so absolute rates are a fifth of a quiet
 * run's and only the ratios within the run mean anything):
 *
 *   c  side              appends/s  p50 ms  p99 ms  vs shipped (by repetition)
 *   1  shipped                 205    3.84    21.1
 *   1  notify                  241    3.59    16.9  1.18 (1.08, 1.37, 1.18)
 *   1  notify + LISTEN         219    3.99    15.0  1.07 (1.16, 1.17, 0.80)
 *   8  shipped                 713    8.98    46.8
 *   8  notify                  304    22.0    89.6  0.43 (0.46, 0.43, 0.37)
 *   8  notify + LISTEN         348    18.8    72.7  0.49 (0.65, 0.43, 0.34)
 *
 * One writer pays nothing measurable (its commit waits for its own flush
 * either way; 1.18 is noise in the flush times of a busy disk). Eight writers
 * lose more than half their appends: the notifying commits queue behind one
 * another instead of sharing flushes, and p50 latency more than doubles. A
 * NOTIFY on the append path would cost every writer at concurrency to save
 * subscribers in other processes their 20-200 ms polls.
 */
import os from "node:os"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { run, type Sample } from "../lib/measure.js"
import { adminOf } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { makeStoreSystem } from "../systems/eventcore.js"
import type { System } from "../systems/system.js"
import { appendNew } from "../workloads/workloads.js"

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    reps: { type: "string", default: "3" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    concurrency: { type: "string", default: "1,8" }
  }
})
const serverUrl = values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const repetitions = Number(values.reps)
const seconds = Number(values.duration)
const warmup = Number(values.warmup)
const concurrencies = values.concurrency.split(",").map(Number)
const pool = Math.max(10, ...concurrencies)
const channel = "eventcore"

type Side = "shipped" | "notify" | "notify + LISTEN"
const sides: ReadonlyArray<Side> = ["shipped", "notify", "notify + LISTEN"]

const admin = adminOf(serverUrl)
const load = () =>
  os
    .loadavg()
    .map((n) => n.toFixed(1))
    .join(" ")

try {
  const info = await admin.info()
  const url = await admin.create(`eventcore_notify_${process.pid}`)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const listener = postgres(url, { max: 1, onnotice: () => {} })
  const systems = new Map<Side, System>()
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    await Effect.runPromise(PostgresEventStore.migrate({ url, schema: "eventcore_notify" }))
    const [definition] = await sql<[{ text: string }]>`
      select pg_get_functiondef('eventcore_notify.append(jsonb)'::regprocedure) as text`
    const original = definition?.text ?? ""
    const anchor = "  RETURN jsonb_build_object("
    if (original.split(anchor).length !== 2) {
      throw new Error("eventcore_notify.append: no single RETURN to notify before")
    }
    await sql.unsafe(original.replace(anchor, `  PERFORM pg_notify('${channel}', '');\n${anchor}`))
    const [check] = await sql<[{ notifies: boolean; definer: boolean }]>`
      select prosrc like '%pg_notify%' as notifies, prosecdef as definer
      from pg_proc where oid = 'eventcore_notify.append(jsonb)'::regprocedure`
    if (check?.notifies !== true || check.definer !== true) throw new Error("the notifying append is not in place")
    const [shippedCheck] = await sql<[{ notifies: boolean }]>`
      select prosrc like '%pg_notify%' as notifies from pg_proc where oid = 'eventcore.append(jsonb)'::regprocedure`
    if (shippedCheck?.notifies !== false) throw new Error("the shipped append notifies already")

    const notifying = await makeStoreSystem(
      "postgres",
      PostgresEventStore.layer({ url, maxConnections: pool, schema: "eventcore_notify" })
    )
    systems.set("shipped", await makeStoreSystem("postgres", PostgresEventStore.layer({ url, maxConnections: pool })))
    systems.set("notify", notifying)
    systems.set("notify + LISTEN", notifying)

    let heard = 0
    const samples: Array<{ side: Side; concurrency: number; repetition: number; sample: Sample; load: string }> = []
    process.stderr.write(`load average before: ${load()}\n`)
    for (const concurrency of concurrencies) {
      for (let repetition = 1; repetition <= repetitions; repetition++) {
        const order = sides.map((_, i) => sides[(i + repetition - 1) % sides.length] as Side)
        for (const side of order) {
          const system = systems.get(side) as System
          const operation = appendNew(system, `${side.replace(/\W+/g, "-")}-c${concurrency}-r${repetition}`, 1)
          const listening = side === "notify + LISTEN" ? await listener.listen(channel, () => heard++) : undefined
          try {
            if (warmup > 0) await run(operation, { concurrency, seconds: warmup })
            const sample = await run(operation, { concurrency, seconds })
            samples.push({ side, concurrency, repetition, sample, load: load() })
            process.stderr.write(
              `c${concurrency} rep ${repetition} ${side}: ${Math.round(sample.opsPerSec)} appends/s, p50 ${sample.p50Ms.toFixed(2)} ms, p99 ${sample.p99Ms.toFixed(2)} ms (load ${load()})\n`
            )
          } finally {
            await listening?.unlisten()
          }
        }
      }
    }

    console.log(
      `PostgreSQL ${info.serverVersion} (fsync=${info.settings.fsync}, synchronous_commit=${info.settings.synchronous_commit}), Node ${process.version}, ${os.availableParallelism()} CPUs; pools of ${pool}; ${repetitions} repetitions × (${warmup} s warm-up + ${seconds} s); load average at the end ${load()}; notifications heard by the listener: ${heard}\n`
    )
    console.log("| c | side | appends/s (median) | p50 ms | p99 ms | vs shipped | vs shipped by repetition |")
    console.log("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for (const concurrency of concurrencies) {
      const of = (side: Side) => samples.filter((s) => s.side === side && s.concurrency === concurrency)
      const shipped = median(of("shipped").map((s) => s.sample.opsPerSec))
      for (const side of sides) {
        const cells = of(side)
        const ops = median(cells.map((s) => s.sample.opsPerSec))
        const byRepetition = cells.map((cell) => {
          const base = of("shipped").find((s) => s.repetition === cell.repetition)
          return base === undefined ? "-" : (cell.sample.opsPerSec / base.sample.opsPerSec).toFixed(2)
        })
        console.log(
          `| ${concurrency} | ${side} | ${Math.round(ops).toLocaleString("en")} | ${median(cells.map((s) => s.sample.p50Ms)).toFixed(2)} | ${median(cells.map((s) => s.sample.p99Ms)).toFixed(2)} | ${side === "shipped" ? "" : `**${(ops / shipped).toFixed(2)}**`} | ${side === "shipped" ? "" : byRepetition.join(", ")} |`
        )
      }
    }
  } finally {
    for (const system of new Set(systems.values())) await system.close()
    await listener.end({ timeout: 5 })
    await sql.end({ timeout: 5 })
  }
} finally {
  await admin.close()
}
