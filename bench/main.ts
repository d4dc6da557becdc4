/**
 * `npm run bench`: eventcore's stores against a raw postgres.js baseline.
 *
 *   npm run bench                      the full run (~30 min), results in bench/results/
 *   npm run bench -- --quick           a smoke run (< 1 min)
 *   npm run bench -- --only W1,W7      some workloads only
 *   npm run bench -- --help            every option
 *
 * Systems are interleaved within each repetition (A B C D, A B C D, ...) so
 * that drift in a noisy machine hits them alike; the tables report medians.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import os from "node:os"
import { join } from "node:path"
import { type RunOptions, run, type Sample } from "./lib/measure.js"
import { named, type Options, parseOptions, type SystemName, selected } from "./lib/options.js"
import { type OwnProcess, startOwnProcess } from "./lib/own-process.js"
import { clock, Progress } from "./lib/progress.js"
import { type Measurement, markdown, type Report, summarize, targets } from "./lib/report.js"
import { adminOf, type ServerInfo } from "./lib/server.js"
import { median } from "./lib/stats.js"
import { emmettVersion } from "./systems/emmett.js"
import { type Databases, openSystem } from "./systems/open.js"
import type { System } from "./systems/system.js"
import { type CatchUpResult, catchUp } from "./workloads/catch-up.js"
import { type DeliveryResult, delivery } from "./workloads/delivery.js"
import { type LiveSubscribersResult, liveSubscribers } from "./workloads/live-subscribers.js"
import { type LongStreamResult, longStreamPglite, longStreamPostgres } from "./workloads/long-stream.js"
import {
  type LagResult,
  projectionLag,
  projectionThroughput,
  sideLabel,
  type ThroughputResult
} from "./workloads/projection.js"
import { type ReplicasOutcome, replicas, replicasUnavailable } from "./workloads/replicas.js"
import { countRoundTrips, type RoundTrips } from "./workloads/round-trips.js"
import { type SnapshotsResult, snapshots, type W13Store } from "./workloads/snapshots.js"
import { workloads as allWorkloads, type Workload } from "./workloads/workloads.js"

/** Connections of each pool: room for the highest concurrency, the same for store and baseline. */
const poolSize = (options: Options) => Math.max(10, options.hotWriters, ...options.concurrencies)

/** Emmett creates its own tables: it gets a database of its own, created here and dropped with the others. */
const emmettDatabase = (database: string) => `${database}_emmett`

const gitCommit = (): string | null => {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "drizzle"], { encoding: "utf8" }).trim()
    return dirty === "" ? commit : `${commit} (src/drizzle modified)`
  } catch {
    return null
  }
}

const localDate = (date: Date) =>
  `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`

const rate = (value: number) => Math.round(value).toLocaleString("en")

const main = async () => {
  const options = parseOptions(process.argv.slice(2))
  const progress = new Progress()
  const startedAt = new Date()
  const loadAtStart = os.loadavg()
  const workloads = allWorkloads(options)
    .filter((workload) => selected(options, workload.id))
    .map((workload) => ({ ...workload, systems: workload.systems.filter((s) => options.systems.includes(s)) }))
    .filter((workload) => workload.systems.length > 0)
  const w7 = selected(options, "W7")
  // W8-W10 follow the global log of the PostgreSQL store (W8 against raw too).
  const onPostgres = options.systems.includes("postgres")
  const w8 = onPostgres && options.systems.includes("raw") && selected(options, "W8")
  const w9 = onPostgres && selected(options, "W9")
  const w10 = onPostgres && selected(options, "W10")
  // W11: projections on the PostgreSQL store (the raw loops run when raw is among the systems).
  const w11 = onPostgres && selected(options, "W11")
  // W12: followers on a hot standby, on a PostgreSQL 15 primary and standby it starts itself (from the
  // machine's binaries): only when named in --only, and skipped, saying why, where the binaries are missing.
  const w12 = onPostgres && named(options, "W12")
  // W13: commands with and without snapshots, on the PostgreSQL store and PGlite side by side (either alone if
  // the other is not among --systems). A --quick run that does not name W13 leaves PGlite out: opening one
  // costs ~5 s, a tenth of the smoke run's minute.
  const w13Stores = (["postgres", "pglite"] as const).filter(
    (store): store is W13Store =>
      options.systems.includes(store) && !(store === "pglite" && options.quick && !named(options, "W13"))
  )
  const w13 = w13Stores.length > 0 && selected(options, "W13")
  const needsServer =
    (w13 && onPostgres) ||
    w7 ||
    w8 ||
    w9 ||
    w10 ||
    w11 ||
    workloads.some((w) => w.systems.includes("postgres") || w.systems.includes("raw") || w.systems.includes("emmett"))

  const admin = adminOf(options.url)
  const database = `eventcore_bench_${process.pid}`
  let interrupted = false
  const systems = new Map<SystemName, System>()
  /** The children of the workload measured in processes of their own, while it runs. */
  const children = new Set<OwnProcess>()
  process.once("SIGINT", () => {
    interrupted = true
    progress.done()
    process.stderr.write("interrupted: dropping the bench databases\n")
    // Emmett's pg pool first (at most 2 s): a pooled pg connection that the
    // database's drop ends raises an unhandled 'error' and kills the process.
    const emmett = systems.get("emmett")
    const closed = emmett === undefined ? Promise.resolve() : emmett.close().catch(() => {})
    void Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000))])
      .then(() => admin.close())
      .finally(() => process.exit(130))
  })

  const measurements: Array<Measurement> = []
  const longStream: Array<LongStreamResult> = []
  let roundTrips: RoundTrips | undefined
  let catchUpResult: CatchUpResult | undefined
  let deliveryResult: DeliveryResult | undefined
  let liveSubscribersResult: LiveSubscribersResult | undefined
  let throughputResult: ThroughputResult | undefined
  let lagResult: LagResult | undefined
  let replicasOutcome: ReplicasOutcome | undefined
  let snapshotsResult: SnapshotsResult | undefined
  /** The tables grow through the run: their size as each workload starts (after its seeding). */
  const sizes: Array<{ before: string; system: SystemName; streams: number; events: number }> = []
  let server: ServerInfo | undefined
  try {
    if (needsServer) server = await admin.info()
    const url = needsServer ? await admin.create(database) : options.url
    const emmettUrl = workloads.some((workload) => workload.systems.includes("emmett"))
      ? await admin.create(emmettDatabase(database))
      : undefined
    const databases: Databases = { url, emmettUrl, poolSize: poolSize(options) }
    const wanted = new Set(
      workloads.filter((workload) => workload.ownProcess !== true).flatMap((workload) => workload.systems)
    )
    for (const name of options.systems.filter((s) => wanted.has(s))) {
      progress.status(`opening ${name}`)
      systems.set(name, await openSystem(name, databases))
    }

    const cells = workloads.reduce((n, w) => n + w.concurrencies.length * w.systems.length, 0) * options.repetitions
    const cellSeconds = options.durationSeconds + options.warmupSeconds
    let done = 0
    const then = [
      w7 ? `W7 (${options.w7Events.toLocaleString("en")} events)` : "",
      w8 ? `W8 (${options.w8Events.toLocaleString("en")} events)` : "",
      w9 ? `W9 (${options.w9Seconds} s)` : "",
      w10 ? `W10 (${options.repetitions * 2} cells × ${cellSeconds} s)` : "",
      w11 ? `W11 (${options.w11Events.toLocaleString("en")} events, then ${options.w11Seconds} s of appends)` : "",
      w13
        ? `W13 (${w13Stores.join(" and ")}: commands at ${options.w13Lengths.map((n) => n.toLocaleString("en")).join(", ")} events, up to ${options.w13Ops} per cell or ${options.w13BudgetSeconds} s)`
        : "",
      w12
        ? `W12 (${options.w12Events.toLocaleString("en")} events on a standby and its primary, then ${options.w12Seconds} s of appends)`
        : ""
    ].filter((part) => part !== "")
    progress.log(
      `${cells} cells × ${cellSeconds} s ≈ ${Math.ceil((cells * cellSeconds) / 60)} min of measurement` +
        (then.length > 0 ? `, then ${then.join(", ")}` : "")
    )

    // A variant (W2.personal) is measured beside the workload it varies, within each repetition, so that the
    // machine's drift falls on both alike and their ratio is taken between neighbouring cells.
    const groups: Array<Array<Workload>> = []
    for (const workload of workloads) {
      const group = groups.find((members) => members[0]?.id === workload.variantOf)
      if (group === undefined || workload.ownProcess === true || group[0]?.ownProcess === true) groups.push([workload])
      else group.push(workload)
    }
    for (const group of groups) {
      const runners = new Map<string, (cell: RunOptions) => Promise<Sample>>()
      const runnerKey = (workload: Workload, name: SystemName) => `${workload.id} ${name}`
      // The in-memory store keeps every event on this process's heap, where the garbage collector of every
      // system's operations walks it: a fresh one per workload (per group: its members share the store).
      const memory = systems.get("memory")
      if (memory !== undefined && group.some((w) => w.ownProcess !== true && w.systems.includes("memory"))) {
        await memory.close()
        systems.set("memory", await openSystem("memory", databases))
      }
      for (const workload of group) {
        for (const name of workload.systems) {
          if (workload.ownProcess === true) {
            progress.status(`${workload.id}: seeding ${name} in a process of its own`)
            const child = await startOwnProcess(workload, name, databases, options)
            children.add(child)
            runners.set(runnerKey(workload, name), child.run)
            if (child.size !== null) sizes.push({ before: workload.id, system: name, ...child.size })
          } else {
            const system = systems.get(name) as System
            progress.status(`${workload.id}: seeding ${name}`)
            const operation = await workload.prepare(system)
            runners.set(runnerKey(workload, name), (cell) => run(operation, cell))
            if (system.size !== undefined) sizes.push({ before: workload.id, system: name, ...(await system.size()) })
          }
        }
      }
      for (const concurrency of [...new Set(group.flatMap((workload) => workload.concurrencies))]) {
        for (let repetition = 1; repetition <= options.repetitions; repetition++) {
          for (const workload of group.filter((member) => member.concurrencies.includes(concurrency))) {
            for (const name of workload.systems) {
              const measure = runners.get(runnerKey(workload, name))
              if (measure === undefined || interrupted) continue
              const label = `[${done + 1}/${cells}] ${workload.id} c${concurrency} ${name} rep ${repetition}/${options.repetitions}`
              const left = (cells - done) * cellSeconds
              const eta = `~${clock(left)} left`
              if (options.warmupSeconds > 0) {
                progress.status(`${label}: warm-up  (${eta})`)
                await measure({ concurrency, seconds: options.warmupSeconds })
              }
              const sample = await measure({
                concurrency,
                seconds: options.durationSeconds,
                onProgress: (ops, elapsed) =>
                  progress.status(`${label}: ${elapsed.toFixed(1)} s, ${rate(ops / elapsed)} ops/s  (${eta})`)
              })
              measurements.push({
                workload: workload.id,
                concurrency,
                system: name,
                repetition,
                sample,
                loadAverage: os.loadavg()[0] ?? 0
              })
              done += 1
              progress.log(
                `${label}: ${rate(sample.opsPerSec)} ops/s, ${rate(sample.eventsPerSec)} events/s, ` +
                  `p50 ${sample.p50Ms.toFixed(2)} ms, p99 ${sample.p99Ms.toFixed(2)} ms` +
                  (sample.conflicts > 0 ? `, conflicts ${(sample.conflictRate * 100).toFixed(1)}%` : "") +
                  (sample.errors > 0 ? `, ${sample.errors} errors (${sample.firstError})` : "")
              )
            }
          }
        }
      }
      for (const child of children) await child.close()
      children.clear()
      if (group.some((w) => w.id === "W6.transfer" && w.systems.includes("postgres"))) {
        progress.status("W6: counting statements per command")
        roundTrips = await countRoundTrips(url)
        progress.log(
          `W6: a transfer is ${roundTrips.transfer.statements} statements, ${roundTrips.transfer.roundTrips} round trips`
        )
      }
    }

    for (const system of systems.values()) await system.close()
    systems.clear()

    if (w7 && !interrupted) {
      if (options.systems.includes("postgres")) {
        const result = await longStreamPostgres(admin, `${database}_w7`, options, progress)
        longStream.push(result)
        progress.log(
          `W7 postgres: ${rate(result.eventsPerSec)} events/s, peak RSS ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MB`
        )
      }
      if (options.systems.includes("pglite") && options.w7PgliteEvents > 0) {
        const result = await longStreamPglite(options, progress)
        longStream.push(result)
        progress.log(
          `W7 pglite: ${rate(result.eventsPerSec)} events/s, peak RSS ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MB`
        )
      }
    }

    if (w8 && !interrupted) {
      catchUpResult = await catchUp(admin, `${database}_w8`, options, progress)
      progress.log(
        `W8: streamAll ${rate(catchUpResult.storeEventsPerSec)} events/s, raw ${rate(catchUpResult.rawEventsPerSec)} events/s, ${catchUpResult.ratio.toFixed(2)}×`
      )
    }
    if (w9 && !interrupted) {
      deliveryResult = await delivery(admin, `${database}_w9`, options, poolSize(options), progress)
      const { inProcess, otherProcess } = deliveryResult
      progress.log(
        `W9: ${rate(deliveryResult.appends.opsPerSec)} appends/s; delivery p50/p99/max ` +
          `${inProcess.p50Ms.toFixed(1)}/${inProcess.p99Ms.toFixed(1)}/${inProcess.maxMs.toFixed(1)} ms in this process, ` +
          `${otherProcess.p50Ms.toFixed(1)}/${otherProcess.p99Ms.toFixed(1)}/${otherProcess.maxMs.toFixed(1)} ms in another` +
          (inProcess.missing + otherProcess.missing > 0
            ? `; MISSING ${inProcess.missing} here, ${otherProcess.missing} there`
            : "")
      )
    }
    if (w10 && !interrupted) {
      liveSubscribersResult = await liveSubscribers(admin, `${database}_w10`, options, poolSize(options), progress)
      progress.log(
        `W10: ${rate(liveSubscribersResult.without.opsPerSec)} appends/s without subscribers, ` +
          `${rate(liveSubscribersResult.with.opsPerSec)} with ${liveSubscribersResult.subscribers}: ` +
          `${(liveSubscribersResult.drop * 100).toFixed(1)}% drop`
      )
    }
    if (w11 && !interrupted) {
      throughputResult = await projectionThroughput(admin, `${database}_w11`, options, poolSize(options), progress)
      for (const cell of throughputResult.cells) {
        progress.log(
          `W11: batches of ${cell.batchSize}: ${sideLabel.rows} ${rate(cell.rows)} events/s` +
            (cell.rawBatched === null
              ? ""
              : `, ${sideLabel["raw-batched"]} ${rate(cell.rawBatched)}, ${cell.ratio?.toFixed(2)}×`) +
            (cell.perEvent === null
              ? ""
              : `; ${sideLabel["per-event"]} ${rate(cell.perEvent)}, ${cell.ratioPerEvent?.toFixed(1)}×`) +
            cell.personal
              .map(
                (personal) =>
                  `; ${sideLabel[personal.side]} ${rate(personal.eventsPerSec)}, ${personal.ratio.toFixed(2)}×`
              )
              .join("")
        )
      }
      const trips = throughputResult.roundTrips
      if (trips !== undefined) {
        progress.log(
          `W11: ${trips.per1000.toFixed(2)} round trips per 1,000 events (row projection), ${trips.sessionPer1000.toFixed(2)} on its session`
        )
      }
      const pglite = throughputResult.pglite
      if (pglite !== undefined) {
        progress.log(
          `W11 PGlite (${pglite.events.toLocaleString("en")} events): ${sideLabel.rows} ${rate(pglite.rows)} events/s, ` +
            `${sideLabel["per-event"]} ${rate(pglite.perEvent)}`
        )
      }
    }
    if (w11 && !interrupted) {
      lagResult = await projectionLag(admin, `${database}_w11_lag`, options, poolSize(options), progress)
      progress.log(
        `W11 lag: ${rate(lagResult.withPerSec)} appends/s with the projection, ${rate(lagResult.withoutPerSec)} ` +
          `without (medians of ${lagResult.repetitions}), ${(lagResult.slowdown * 100).toFixed(1)}% slower; ` +
          `lag p50/p99/max ${lagResult.lag.p50}/${lagResult.lag.p99}/${lagResult.lag.max} acknowledged appends ` +
          "past the checkpoint; " +
          (lagResult.caughtUp
            ? `caught up at worst ${lagResult.caughtUpMs.toFixed(0)} ms after the last append`
            : "NOT caught up within 60 s of the last append")
      )
    }
    if (w13 && !interrupted) {
      snapshotsResult = await snapshots(admin, `${database}_w13`, w13Stores, options, poolSize(options), progress)
      for (const cell of snapshotsResult.writes.cells) {
        progress.log(
          `W13 writes ${cell.store}: p99 ${cell.periodic.p99Ms.toFixed(2)} ms with snapshot writes, ${cell.never.p99Ms.toFixed(2)} ms without (${cell.p99Ratio.toFixed(2)}×)`
        )
      }
    }
    if (w12 && !interrupted) {
      const unavailable = replicasUnavailable()
      if (unavailable !== undefined) {
        replicasOutcome = { skipped: unavailable }
        progress.log(`W12 skipped: ${unavailable}`)
      } else {
        const result = await replicas(database, options, poolSize(options), progress)
        replicasOutcome = result
        const { catchUp, live } = result
        const latency = (side: "standby" | "primary") =>
          `${live[side].p50Ms.toFixed(1)}/${live[side].p99Ms.toFixed(1)}/${live[side].maxMs.toFixed(1)} ms on the ${side}`
        progress.log(
          `W12: streamAll ${rate(catchUp.standbyEventsPerSec)} events/s on the standby, ${rate(catchUp.primaryEventsPerSec)} on the primary, ${catchUp.ratio.toFixed(2)}×; ` +
            `${rate(live.appends.opsPerSec)} appends/s, delivery p50/p99/max ${latency("standby")}, ${latency("primary")}` +
            (live.standby.missing + live.primary.missing > 0
              ? `; MISSING ${live.standby.missing} on the standby, ${live.primary.missing} on the primary`
              : "")
        )
      }
    }
  } finally {
    for (const child of children) await child.close().catch(() => {})
    for (const system of systems.values()) await system.close().catch(() => {})
    await admin.close()
  }

  const rows = summarize(workloads, measurements)
  const wantsEmmett = workloads.some((workload) => workload.systems.includes("emmett"))
  // Issue #15's goals speak of full runs: 3+ repetitions of 5+ s at the default sizes.
  const full =
    !options.quick &&
    options.repetitions >= 3 &&
    options.durationSeconds >= 5 &&
    options.readSize >= 1000 &&
    options.streams >= 1000
  const meta = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallSeconds: Math.round(progress.elapsed()),
    hostname: os.hostname(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
    commit: gitCommit(),
    postgres: server ?? null,
    emmett: wantsEmmett ? `@event-driven-io/emmett-postgresql ${emmettVersion()}, default options` : null,
    loadAverage: { start: loadAtStart, end: os.loadavg() },
    parameters: {
      ...options,
      poolSize: poolSize(options),
      workloads: workloads.map((w) => w.id),
      w7,
      w8,
      w9,
      w10,
      w11,
      w12,
      w13
    }
  }
  const log = {
    catchUp: catchUpResult,
    delivery: deliveryResult,
    liveSubscribers: liveSubscribersResult,
    projections:
      throughputResult === undefined && lagResult === undefined
        ? undefined
        : { throughput: throughputResult, lag: lagResult },
    replicas: replicasOutcome
  }
  const report: Report = {
    meta,
    rows,
    targets: targets(rows, roundTrips, longStream, log, full, snapshotsResult),
    snapshots: snapshotsResult,
    roundTrips,
    longStream,
    sizes,
    ...log
  }
  const environment = [
    `${meta.startedAt} on ${meta.hostname}: ${meta.cpus} CPUs (${meta.cpuModel}), ${meta.totalMemoryMB} MB, Node ${meta.node}, commit ${meta.commit ?? "unknown"}`,
    server === undefined
      ? replicasOutcome !== undefined && !("skipped" in replicasOutcome)
        ? "PostgreSQL: the server of --url not used (W12 ran on a primary and standby of its own: see its section)"
        : "PostgreSQL: not used"
      : `PostgreSQL ${server.serverVersion}: ${Object.entries(server.settings)
          .map(([name, value]) => `${name}=${value}`)
          .join(", ")}`,
    `${options.repetitions} repetitions × (${options.warmupSeconds} s warm-up + ${options.durationSeconds} s), pools of ${poolSize(options)} connections, W2/W6 ${options.streams} streams, W4 ${options.readSize} events, W5 ${options.hotWriters} writers (max ${options.maxAttempts} attempts, immediate retry), W7 ${options.w7Events.toLocaleString("en")} events, W8 ${options.w8Events.toLocaleString("en")} events in pages of ${options.w8PageSize}, W9 ${options.w9Seconds} s at c${options.liveWriters}, W10 c${options.liveWriters} with 0 and ${options.w10Subscribers} subscribers, W11 ${options.w11Events.toLocaleString("en")} events over ${options.w11Accounts.toLocaleString("en")} accounts in batches of ${options.w11BatchSizes.join(" and ")} (budget ${options.w11BudgetSeconds} s), lag ${options.w11Seconds} s at c${options.liveWriters}${w12 ? `, W12 ${options.w12Events.toLocaleString("en")} events in pages of ${options.w8PageSize}, then ${options.w12Seconds} s at c${options.liveWriters}` : ""}${w13 ? `, W13 at ${options.w13Lengths.map((n) => n.toLocaleString("en")).join(", ")} events (${options.w13Ops} commands per cell, budget ${options.w13BudgetSeconds} s), writes every ${options.w13WriteEvery} events at c${options.w13Concurrency} on ${options.w13WriteStreams} streams of ${options.w13WriteLength.toLocaleString("en")}` : ""}${options.quick ? " (--quick)" : ""}`,
    ...(wantsEmmett
      ? [
          `Emmett: @event-driven-io/emmett-postgresql ${emmettVersion()} with its default options (a \`pg\` pool of 10), on a database of its own`
        ]
      : []),
    `load average at the start ${loadAtStart.map((l) => l.toFixed(2)).join(" / ")} (1 / 5 / 15 min)` +
      (measurements.length === 0
        ? ""
        : `; 1 min at the end of each W1-W6 cell: median ${median(measurements.map((m) => m.loadAverage)).toFixed(2)}, ` +
          `min ${Math.min(...measurements.map((m) => m.loadAverage)).toFixed(2)}, max ${Math.max(...measurements.map((m) => m.loadAverage)).toFixed(2)}`) +
      `; at the end ${meta.loadAverage.end.map((l) => l.toFixed(2)).join(" / ")}`,
    `wall time ${Math.round(progress.elapsed())} s`
  ]
  const name = `${localDate(startedAt)}-${os.hostname()}${options.quick ? "-quick" : ""}`
  const text = markdown(report, `eventcore bench ${localDate(startedAt)} ${os.hostname()}`, environment)
  mkdirSync(options.outDir, { recursive: true })
  writeFileSync(join(options.outDir, `${name}.md`), `${text}\n`)
  writeFileSync(
    join(options.outDir, `${name}.json`),
    `${JSON.stringify({ ...report, measurements }, (_, value) => (typeof value === "bigint" ? String(value) : value), 2)}\n`
  )
  progress.done()
  process.stdout.write(`${text}\n`)
  process.stderr.write(
    `results: ${join(options.outDir, `${name}.md`)} and .json (${Math.round(progress.elapsed())} s)\n`
  )
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`\nbench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
)
