/**
 * W12: followers on a hot standby (issue #16). The store reads its global log
 * on a standby when given `replicaUrl` (`readAll`, `streamAll`, `subscribe`);
 * appends stay on the primary. W12 measures what that costs a follower,
 * against the same follower reading on the primary, on a PostgreSQL 15
 * primary and hot standby that it starts itself (.ci/replication.sh, from the
 * machine's binaries, fsync off on both) in a fresh temporary directory, and
 * stops at the end, also when a part fails or the bench is interrupted.
 *
 * 1. Catch-up: a log of `options.w12Events` events, seeded on the primary as
 *    W8 seeds its log (catch-up.ts's `seedLog`), replayed on the standby
 *    (`wait-replay`), then read whole by `streamAll` in a child process
 *    (long-stream-child.ts, W8's reader) on a store whose log is read on the
 *    standby, and on one reading on the primary; alternating over the
 *    repetitions (standby first in odd ones), each in a fresh child.
 * 2. Replica lag seen by subscribers: W9's method (delivery.ts). W1 appends at
 *    `options.liveWriters` for `options.w12Seconds` through one store on the
 *    primary, while two subscribers follow the log, each in a process of its
 *    own (subscriber-child.ts) on a store of its own: one reading on the
 *    standby, one on the primary. Neither is the writers' store, so both
 *    learn of the appends by polling (as W9's subscriber in another process),
 *    and they differ only in where they read. Latency per event and
 *    subscriber: delivery minus the append's acknowledgement, on the clock the
 *    processes share. Meanwhile the primary's `pg_stat_replication` is sampled
 *    every 50 ms for the standby's `replay_lag` and how many bytes of WAL it
 *    had not replayed.
 */
import { execFile, execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { type Child, startChild } from "../lib/child.js"
import { run, type Sample, succeeded } from "../lib/measure.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import { type Admin, adminOf, urlOf } from "../lib/server.js"
import { Latencies, median } from "../lib/stats.js"
import { postgresSystem } from "../systems/eventcore.js"
import type { System } from "../systems/system.js"
import { logStreams, seedLog } from "./catch-up.js"
import { appendOne, type DeliveryLatency, latencyOf } from "./delivery.js"
import { type ReaderResult, runReader } from "./long-stream.js"
import type { SubscriberResult } from "./subscriber-child.js"

const script = fileURLToPath(new URL("../../.ci/replication.sh", import.meta.url))
/** Where .ci/replication.sh takes the binaries from. */
const binaries = process.env.PGR_BIN ?? "/usr/lib/postgresql/15/bin"

/** Why W12 cannot run on this machine, or undefined when it can. */
export const replicasUnavailable = (): string | undefined => {
  if (!existsSync(join(binaries, "initdb"))) {
    return `${join(binaries, "initdb")} is missing: W12 starts a PostgreSQL 15 primary and hot standby of its own from ${binaries} (PGR_BIN)`
  }
  if (!existsSync(script)) return `${script} is missing: W12 starts its primary and standby with it`
  return undefined
}

/** The settings of each node that shape W12's figures. */
const reported = [
  "server_version",
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "shared_buffers",
  "wal_level",
  "hot_standby_feedback",
  "max_standby_streaming_delay"
] as const

export interface PairInfo {
  /** Seconds .ci/replication.sh took to start both (initdb, pg_basebackup, streaming). */
  readonly startSeconds: number
  readonly primary: Readonly<Record<string, string>>
  readonly standby: Readonly<Record<string, string>>
}

export interface ReplicaCatchUpRun extends ReaderResult {
  /** Where `streamAll` read: a store with `replicaUrl` (standby) or without (primary). */
  readonly side: "standby" | "primary"
  readonly repetition: number
}

export interface ReplicaCatchUp {
  readonly events: number
  readonly pageSize: number
  readonly streams: number
  readonly transactions: number
  readonly seedSeconds: number
  /** How long after the seeding the standby had replayed it all (`wait-replay`). */
  readonly replaySeconds: number
  readonly runs: ReadonlyArray<ReplicaCatchUpRun>
  /** Medians over the repetitions. */
  readonly standbyEventsPerSec: number
  readonly primaryEventsPerSec: number
  /** The standby's median over the primary's. */
  readonly ratio: number
  /** The ratio within each repetition (the two ran back to back). */
  readonly ratioByRepetition: ReadonlyArray<number>
}

export interface ReplicaSubscriber extends DeliveryLatency {
  readonly peakRssBytes: number
  /** The standby's subscriber: its reads cancelled by recovery conflicts and run again. */
  readonly replicaRetries: number | null
}

export interface ReplicaLive {
  readonly seconds: number
  readonly writers: number
  readonly poolSize: number
  /** The appends measured (warm-up excluded): each one event, acknowledged. */
  readonly appends: Sample
  readonly standby: ReplicaSubscriber
  readonly primary: ReplicaSubscriber
  /** How long after the last acknowledgement both subscribers had delivered every event. */
  readonly drainMs: number
  /** The primary's `pg_stat_replication.replay_lag` (0 when it reports none), sampled every 50 ms while the writers ran. */
  readonly replayLagMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly samples: number }
  /** WAL the primary had written and the standby had not replayed, in the same samples. */
  readonly replayBehindBytes: { readonly p50: number; readonly max: number }
}

export interface ReplicasResult {
  readonly pair: PairInfo
  readonly catchUp: ReplicaCatchUp
  readonly live: ReplicaLive
}

/** W12 as the report carries it: its results, or why it did not run. */
export type ReplicasOutcome = ReplicasResult | { readonly skipped: string }

// The pair: started and stopped through .ci/replication.sh.

interface Pair {
  /** The mkdtemp directory (mode 0755: the servers' user must reach below it) and the pair's own under it. */
  readonly parent: string
  readonly dir: string
  primary: string
  standby: string
}

const runScript = promisify(execFile)
const live = new Set<Pair>()

/** Stops a pair and removes its directories; synchronous, so that it can run as the process exits. */
const stopPair = (pair: Pair) => {
  try {
    execFileSync(script, ["stop", pair.dir], { stdio: ["ignore", "ignore", "pipe"] })
  } catch (error) {
    process.stderr.write(`W12: stopping the primary and standby in ${pair.dir} failed: ${String(error)}\n`)
  }
  rmSync(pair.parent, { recursive: true, force: true })
  live.delete(pair)
  if (live.size === 0) {
    process.off("exit", stopAll)
    process.off("SIGTERM", onTerm)
  }
}

const stopAll = () => {
  for (const pair of [...live]) stopPair(pair)
}
const onTerm = () => {
  stopAll()
  process.exit(143)
}

const failure = (error: unknown) => {
  const stderr = (error as { stderr?: unknown }).stderr
  return typeof stderr === "string" && stderr.trim() !== "" ? stderr.trim().slice(-2000) : String(error)
}

const startPair = async (): Promise<Pair> => {
  const parent = mkdtempSync(join(tmpdir(), "eventcore-bench-w12-"))
  // The servers run as an unprivileged user (eventcore-ci when the bench is root), who must reach their directory.
  chmodSync(parent, 0o755)
  const pair: Pair = { parent, dir: join(parent, "pg"), primary: "", standby: "" }
  if (live.size === 0) {
    // Whatever ends the bench (an error, Ctrl-C's process.exit, SIGTERM) stops the servers.
    process.on("exit", stopAll)
    process.once("SIGTERM", onTerm)
  }
  live.add(pair)
  try {
    const { stdout } = await runScript(script, ["start", pair.dir], { encoding: "utf8" })
    const urls = new Map(
      stdout
        .trim()
        .split("\n")
        .map((line) => line.split(" ") as [string, string])
    )
    pair.primary = urls.get("primary") ?? ""
    pair.standby = urls.get("standby") ?? ""
    if (pair.primary === "" || pair.standby === "") throw new Error(`no primary and standby URLs in: ${stdout}`)
    return pair
  } catch (error) {
    stopPair(pair)
    throw new Error(`W12: .ci/replication.sh start failed: ${failure(error)}`)
  }
}

/** Until the standby has replayed all the WAL the primary has written. */
const waitReplay = async (pair: Pair) => {
  try {
    await runScript(script, ["wait-replay", pair.dir], { encoding: "utf8" })
  } catch (error) {
    throw new Error(`W12: the standby did not replay the primary's WAL: ${failure(error)}`)
  }
}

const settingsOf = async (url: string): Promise<Record<string, string>> => {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const rows = await sql<Array<{ name: string; setting: string }>>`
      select name, current_setting(name) as setting from pg_settings where name = any(${[...reported]})
      union all select 'in_recovery', pg_is_in_recovery()::text`
    return Object.fromEntries(rows.map((row) => [row.name, row.setting]))
  } finally {
    await sql.end({ timeout: 5 })
  }
}

// 1. Catch-up.

const catchUpOnReplica = async (
  pair: Pair,
  admins: { readonly primary: Admin; readonly standby: Admin },
  database: string,
  options: Options,
  progress: Progress
): Promise<ReplicaCatchUp> => {
  const events = options.w12Events
  const pageSize = options.w8PageSize
  const url = await admins.primary.create(database)
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    const { transactions, seedSeconds } = await seedLog(url, events, "W12", progress)
    progress.status("W12: waiting for the standby to replay the log")
    const replaying = performance.now()
    await waitReplay(pair)
    const replaySeconds = (performance.now() - replaying) / 1000
    progress.log(`W12: the standby had replayed the log ${replaySeconds.toFixed(1)} s after the seeding`)
    const standbyUrl = urlOf(pair.standby, database)

    const runs: Array<ReplicaCatchUpRun> = []
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      const order = repetition % 2 === 1 ? (["standby", "primary"] as const) : (["primary", "standby"] as const)
      for (const side of order) {
        const label = `W12 streamAll on the ${side} rep ${repetition}/${options.repetitions}`
        const result = await runReader(
          [
            "--read",
            "log",
            "--system",
            "postgres",
            "--url",
            url,
            "--page-size",
            `${pageSize}`,
            ...(side === "standby" ? ["--replica-url", standbyUrl] : [])
          ],
          (n) => progress.status(`${label}: ${n.toLocaleString("en")} / ${events.toLocaleString("en")}`),
          options.w8BudgetSeconds
        )
        if (!result.finished) {
          await admins.primary.terminate(database)
          await admins.standby.terminate(database)
        } else if (result.events !== events) throw new Error(`${label} read ${result.events} events of ${events}`)
        runs.push({ ...result, side, repetition })
        progress.log(
          `${label}: ${Math.round(result.eventsPerSec).toLocaleString("en")} events/s` +
            (result.replicaRetries ? `, ${result.replicaRetries} reads run again after recovery conflicts` : "") +
            (result.finished
              ? ""
              : ` — STOPPED after ${options.w8BudgetSeconds} s, ${result.events.toLocaleString("en")} of ${events.toLocaleString("en")} events read`)
        )
      }
    }
    const of = (side: "standby" | "primary") => runs.filter((run) => run.side === side)
    const standbyEventsPerSec = median(of("standby").map((run) => run.eventsPerSec))
    const primaryEventsPerSec = median(of("primary").map((run) => run.eventsPerSec))
    return {
      events,
      pageSize,
      streams: Math.min(logStreams, events),
      transactions,
      seedSeconds,
      replaySeconds,
      runs,
      standbyEventsPerSec,
      primaryEventsPerSec,
      ratio: standbyEventsPerSec / primaryEventsPerSec,
      ratioByRepetition: of("standby").flatMap((standby) => {
        const primary = of("primary").find((run) => run.repetition === standby.repetition)
        return primary === undefined ? [] : [standby.eventsPerSec / primary.eventsPerSec]
      })
    }
  } finally {
    await admins.primary.drop(database)
  }
}

// 2. Replica lag seen by subscribers.

/** The clock the processes share, in milliseconds (W9's). */
const now = () => performance.timeOrigin + performance.now()

const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`W12: ${what} within ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

type SubscriberChild = Child<Omit<SubscriberResult, "type">>

/** A subscriber in a process of its own (W9's), reading on the standby or on the primary. */
const startSubscriber = async (side: "standby" | "primary", url: string, standbyUrl: string) => {
  const delivered = new Map<string, number>()
  let ready: () => void = () => {}
  const caughtUp = new Promise<void>((resolve) => {
    ready = resolve
  })
  const child: SubscriberChild = await startChild<Omit<SubscriberResult, "type">>(
    `W12 subscriber on the ${side}`,
    new URL("./subscriber-child.ts", import.meta.url),
    ["--url", url, ...(side === "standby" ? ["--replica-url", standbyUrl] : [])],
    (message) => {
      if (message.type === "caughtUp") ready()
      if (message.type === "delivered") {
        const at = message.at as number
        for (const id of message.ids as ReadonlyArray<string>) delivered.set(id, at)
      }
    }
  )
  return { child, delivered, caughtUp }
}

const replicaLag = async (
  pair: Pair,
  admin: Admin,
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<ReplicaLive> => {
  const url = await admin.create(database)
  let system: System | undefined
  const children: Array<SubscriberChild> = []
  const watcher = postgres(pair.primary, { max: 1, onnotice: () => {} })
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    // The standby's store checks the schema there as it opens: the migration must have been replayed.
    await waitReplay(pair)
    const standbyUrl = urlOf(pair.standby, database)
    system = await postgresSystem(url, poolSize)
    const runEffect = system.run as NonNullable<System["run"]>

    progress.status("W12: starting the subscribers")
    const standby = await startSubscriber("standby", url, standbyUrl)
    children.push(standby.child)
    const primary = await startSubscriber("primary", url, standbyUrl)
    children.push(primary.child)
    await within(Promise.all([standby.caughtUp, primary.caughtUp]), 60_000, "the subscribers did not catch up")

    const acknowledged = new Map<string, number>()
    let recording = false
    const operation = async () => {
      const eventId = await runEffect(appendOne("w12"))
      const at = now()
      if (recording) acknowledged.set(eventId, at)
      return succeeded(1)
    }
    if (options.warmupSeconds > 0) {
      progress.status("W12: warm-up")
      await run(operation, { concurrency: options.liveWriters, seconds: options.warmupSeconds })
    }
    recording = true
    const lags: Array<number> = []
    const behind: Array<number> = []
    let watching = true
    const watch = (async () => {
      while (watching) {
        const [row] = await watcher<Array<{ ms: number; bytes: number }>>`
          select coalesce(extract(epoch from replay_lag) * 1000, 0)::float8 as ms,
                 pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 as bytes
          from pg_stat_replication order by backend_start limit 1`
        if (row !== undefined) {
          lags.push(row.ms)
          behind.push(row.bytes)
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    const appends = await run(operation, {
      concurrency: options.liveWriters,
      seconds: options.w12Seconds,
      onProgress: (ops, elapsed) =>
        progress.status(
          `W12: ${elapsed.toFixed(1)} s, ${Math.round(ops / elapsed).toLocaleString("en")} appends/s, ` +
            `delivered ${standby.delivered.size.toLocaleString("en")} on the standby, ${primary.delivered.size.toLocaleString("en")} on the primary`
        )
    })
    recording = false
    watching = false
    await watch
    let lastAck = 0
    for (const at of acknowledged.values()) lastAck = Math.max(lastAck, at)
    // Until both subscribers have delivered every acknowledged event (or 30 s have passed).
    const deadline = performance.now() + 30_000
    const undelivered = () =>
      [...acknowledged.keys()].some((id) => !standby.delivered.has(id) || !primary.delivered.has(id))
    while (undelivered() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    const drainMs = Math.max(0, now() - lastAck)

    const finish = async (subscriber: typeof standby): Promise<ReplicaSubscriber> => {
      subscriber.child.stop()
      const { result } = await within(subscriber.child.done, 30_000, "a subscriber process did not end")
      return {
        ...latencyOf(acknowledged, subscriber.delivered),
        peakRssBytes: result.peakRssBytes,
        replicaRetries: result.replicaRetries ?? null
      }
    }
    const standbyResult = await finish(standby)
    const primaryResult = await finish(primary)
    children.length = 0
    const lagLatencies = new Latencies()
    for (const ms of lags) lagLatencies.add(ms)
    const [p50, p99, max] = lagLatencies.percentiles(50, 99, 100) as [number, number, number]
    return {
      seconds: options.w12Seconds,
      writers: options.liveWriters,
      poolSize,
      appends,
      standby: standbyResult,
      primary: primaryResult,
      drainMs,
      replayLagMs: { p50, p99, max, samples: lags.length },
      replayBehindBytes: { p50: median(behind), max: Math.max(0, ...behind) }
    }
  } finally {
    for (const child of children) {
      child.stop()
      await child.done.catch(() => {})
    }
    await system?.close()
    await watcher.end({ timeout: 5 })
    await admin.drop(database)
  }
}

/**
 * Starts a primary and a hot standby, runs both parts on databases of their own there, and stops the
 * servers (also when a part fails).
 */
export const replicas = async (
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<ReplicasResult> => {
  progress.status("W12: starting a PostgreSQL 15 primary and hot standby (.ci/replication.sh)")
  const starting = performance.now()
  const pair = await startPair()
  let admins: { primary: Admin; standby: Admin } | undefined
  try {
    const startSeconds = (performance.now() - starting) / 1000
    progress.log(`W12: primary ${pair.primary} and standby ${pair.standby} up in ${startSeconds.toFixed(1)} s`)
    admins = { primary: adminOf(pair.primary), standby: adminOf(pair.standby) }
    const info: PairInfo = {
      startSeconds,
      primary: await settingsOf(pair.primary),
      standby: await settingsOf(pair.standby)
    }
    const catchUp = await catchUpOnReplica(pair, admins, `${database}_w12`, options, progress)
    const live = await replicaLag(pair, admins.primary, `${database}_w12_live`, options, poolSize, progress)
    return { pair: info, catchUp, live }
  } finally {
    await admins?.standby.close().catch(() => {})
    await admins?.primary.close().catch(() => {})
    progress.status("W12: stopping the primary and standby")
    stopPair(pair)
  }
}
