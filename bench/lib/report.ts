/**
 * The results: medians per system × workload, the ratios of the PostgreSQL
 * store (and of Emmett, the peer) to the raw baseline and of the PostgreSQL
 * store to Emmett, the targets, and the files they are written to.
 */
import type { CatchUpResult } from "../workloads/catch-up.js"
import type { DeliveryResult } from "../workloads/delivery.js"
import type { LiveSubscribersResult } from "../workloads/live-subscribers.js"
import type { LongStreamResult } from "../workloads/long-stream.js"
import { type ProjectionsResult, sideLabel, type ThroughputRun } from "../workloads/projection.js"
import type { ReplicasOutcome, ReplicasResult } from "../workloads/replicas.js"
import type { RoundTrips } from "../workloads/round-trips.js"
import { type LatencyCell, type SnapshotsResult, shapeLabel, type W13Shape } from "../workloads/snapshots.js"
import type { Workload } from "../workloads/workloads.js"
import type { Sample } from "./measure.js"
import type { SystemName } from "./options.js"
import { median } from "./stats.js"

/** One measured cell. */
export interface Measurement {
  readonly workload: string
  readonly concurrency: number
  readonly system: SystemName
  readonly repetition: number
  readonly sample: Sample
  /** The machine's 1-minute load average when the cell ended (other processes share it). */
  readonly loadAverage: number
}

/** The medians over repetitions of one workload × concurrency × system. */
export interface Row {
  readonly workload: string
  readonly title: string
  readonly concurrency: number
  readonly system: SystemName
  readonly repetitions: number
  readonly opsPerSec: number
  readonly eventsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly conflictRate: number
  readonly attemptsPerOp: number
  readonly maxAttempts: number
  /** The longest time without a successful operation, over all repetitions. */
  readonly longestStallMs: number
  readonly gaveUp: number
  /** Operations that gave up over all operations that ended (succeeded or gave up), all repetitions. */
  readonly gaveUpRate: number
  readonly errors: number
  /** PostgreSQL store and Emmett: median ops/s over the raw baseline's median ops/s. */
  readonly vsRaw?: number
  /** PostgreSQL store and Emmett: the ratio within each repetition (the two ran back to back). */
  readonly vsRawByRepetition?: ReadonlyArray<number>
  /** PostgreSQL store only: median ops/s over Emmett's median ops/s. */
  readonly vsEmmett?: number
  /** PostgreSQL store only: the ratio to Emmett within each repetition. */
  readonly vsEmmettByRepetition?: ReadonlyArray<number>
  /** A variant (W2.personal): the workload it varies, and median ops/s over that workload's on the same system. */
  readonly variantOf?: string
  readonly vsVariantOf?: number
  /** The ratio within each repetition (the two ran one after the other). */
  readonly vsVariantOfByRepetition?: ReadonlyArray<number>
}

export interface Target {
  readonly target: string
  readonly measured: string
  /** Null: not judged (see `unjudged`). */
  readonly met: boolean | null
  /** Why `met` is null (default: the run was smaller than the target speaks of). */
  readonly unjudged?: string
}

export const summarize = (workloads: ReadonlyArray<Workload>, measurements: ReadonlyArray<Measurement>) => {
  const rows: Array<Row> = []
  const cell = (workload: string, concurrency: number, system: SystemName) =>
    measurements.filter((m) => m.workload === workload && m.concurrency === concurrency && m.system === system)
  for (const workload of workloads) {
    for (const concurrency of workload.concurrencies) {
      for (const system of workload.systems) {
        const samples = cell(workload.id, concurrency, system)
        if (samples.length === 0) continue
        const of = (pick: (sample: Sample) => number) => median(samples.map((m) => pick(m.sample)))
        const ended = samples.reduce((sum, m) => sum + m.sample.ops + m.sample.gaveUp, 0)
        const gaveUp = samples.reduce((sum, m) => sum + m.sample.gaveUp, 0)
        let row: Row = {
          workload: workload.id,
          title: workload.title,
          concurrency,
          system,
          repetitions: samples.length,
          opsPerSec: of((s) => s.opsPerSec),
          eventsPerSec: of((s) => s.eventsPerSec),
          p50Ms: of((s) => s.p50Ms),
          p99Ms: of((s) => s.p99Ms),
          conflictRate: of((s) => s.conflictRate),
          attemptsPerOp: of((s) => s.attemptsPerOp),
          maxAttempts: Math.max(...samples.map((m) => m.sample.maxAttempts)),
          longestStallMs: Math.max(...samples.map((m) => m.sample.longestStallMs ?? Number.NaN)),
          gaveUp,
          gaveUpRate: ended === 0 ? 0 : gaveUp / ended,
          errors: samples.reduce((sum, m) => sum + m.sample.errors, 0)
        }
        /** This system's median ops/s over `other`'s, overall and within each repetition. */
        const against = (other: ReadonlyArray<Measurement>) => ({
          ratio: row.opsPerSec / median(other.map((m) => m.sample.opsPerSec)),
          byRepetition: samples.flatMap((m) => {
            const pair = other.find((r) => r.repetition === m.repetition)
            return pair === undefined ? [] : [m.sample.opsPerSec / pair.sample.opsPerSec]
          })
        })
        const raw = cell(workload.baseline ?? workload.id, concurrency, "raw")
        if ((system === "postgres" || system === "emmett") && raw.length > 0) {
          const { ratio, byRepetition } = against(raw)
          row = { ...row, vsRaw: ratio, vsRawByRepetition: byRepetition }
        }
        const emmett = cell(workload.id, concurrency, "emmett")
        if (system === "postgres" && emmett.length > 0) {
          const { ratio, byRepetition } = against(emmett)
          row = { ...row, vsEmmett: ratio, vsEmmettByRepetition: byRepetition }
        }
        const variantOf = workload.variantOf
        const varied = variantOf === undefined ? [] : cell(variantOf, concurrency, system)
        if (variantOf !== undefined && varied.length > 0) {
          const { ratio, byRepetition } = against(varied)
          row = { ...row, variantOf, vsVariantOf: ratio, vsVariantOfByRepetition: byRepetition }
        }
        rows.push(row)
      }
    }
  }
  return rows
}

const postgresRows = (rows: ReadonlyArray<Row>, prefix: string) =>
  rows.filter((row) => row.system === "postgres" && row.vsRaw !== undefined && row.workload.startsWith(prefix))

const ratioTarget = (rows: ReadonlyArray<Row>, prefixes: ReadonlyArray<string>, floor: number, label: string) => {
  const relevant = prefixes.flatMap((prefix) => postgresRows(rows, prefix))
  if (relevant.length === 0) return []
  return [
    {
      target: `${label}: PostgresEventStore >= ${floor} × raw`,
      measured: relevant.map((row) => `${row.workload} c${row.concurrency} ${row.vsRaw?.toFixed(2)}`).join(", "),
      met: relevant.every((row) => (row.vsRaw ?? 0) >= floor)
    }
  ]
}

/** Issue #15's goals are stated at these concurrencies. */
const issue15Concurrencies = [1, 8]

/**
 * Issue #15's goals (eventcore against Emmett and raw), judged only on full runs
 * (`full`) and only when every workload was measured at c1 and c8.
 */
const issue15Targets = (rows: ReadonlyArray<Row>, full: boolean): ReadonlyArray<Target> => {
  const list: Array<Target> = []
  const judge = (relevant: ReadonlyArray<Row>, workloads: ReadonlyArray<string>, met: (row: Row) => boolean) => {
    const complete = workloads.every((workload) =>
      issue15Concurrencies.every((c) => relevant.some((row) => row.workload === workload && row.concurrency === c))
    )
    if (!full) return { met: null }
    if (!complete) return { met: null, unjudged: "not measured at both c1 and c8" }
    return { met: relevant.every(met) }
  }
  const at = (workloads: ReadonlyArray<string>, has: (row: Row) => boolean) =>
    rows.filter(
      (row) =>
        row.system === "postgres" &&
        workloads.includes(row.workload) &&
        issue15Concurrencies.includes(row.concurrency) &&
        has(row)
    )
  const writes = ["W1", "W2", "W3"]
  const vsEmmett = at(writes, (row) => row.vsEmmett !== undefined)
  if (vsEmmett.length > 0) {
    list.push({
      target: "#15 W1-W3 at c1 and c8: PostgresEventStore >= 1.5 × Emmett",
      measured: vsEmmett.map((row) => `${row.workload} c${row.concurrency} ${row.vsEmmett?.toFixed(2)}`).join(", "),
      ...judge(vsEmmett, writes, (row) => (row.vsEmmett ?? 0) >= 1.5)
    })
  }
  const vsRaw = at(writes, (row) => row.vsRaw !== undefined)
  if (vsRaw.length > 0) {
    list.push({
      target: "#15 W1-W3 at c1 and c8: PostgresEventStore >= 0.75 × raw",
      measured: vsRaw.map((row) => `${row.workload} c${row.concurrency} ${row.vsRaw?.toFixed(2)}`).join(", "),
      ...judge(vsRaw, writes, (row) => (row.vsRaw ?? 0) >= 0.75)
    })
  }
  const reads = at(["W4.readStream"], (row) => row.vsRaw !== undefined)
  if (reads.length > 0) {
    list.push({
      target: "#15 W4.readStream at c1 and c8: readStream >= 0.8 × raw",
      measured: reads.map((row) => `c${row.concurrency} ${row.vsRaw?.toFixed(2)}`).join(", "),
      ...judge(reads, ["W4.readStream"], (row) => (row.vsRaw ?? 0) >= 0.8)
    })
  }
  const hot = rows.find((row) => row.workload === "W5" && row.system === "postgres")
  const hotRaw = rows.find((row) => row.workload === "W5" && row.system === "raw")
  if (hot?.vsRaw !== undefined && hotRaw !== undefined) {
    list.push({
      target: "#15 W5 hot stream: PostgresEventStore successful appends/s >= 0.8 × raw",
      measured: `${hot.vsRaw.toFixed(2)} (${fmt(hot.opsPerSec)} vs ${fmt(hotRaw.opsPerSec)}/s)`,
      met: full ? hot.vsRaw >= 0.8 : null
    })
    list.push({
      target: "#15 W5 hot stream: no writer gives up more often than on raw (operations that gave up / ended)",
      measured: `PostgresEventStore ${hot.gaveUp} gave up (${pct(hot.gaveUpRate)}), raw ${hotRaw.gaveUp} (${pct(hotRaw.gaveUpRate)})`,
      met: full ? hot.gaveUpRate <= hotRaw.gaveUpRate : null
    })
  }
  return list
}

/** A hot stream that goes this long without any successful append is livelocked. */
const livelockMs = 1000

const maxAttemptsOf = (row: Row) => (row.maxAttempts > 0 ? `${row.maxAttempts} attempts` : "-")

/** W8-W12: the global log, projections following it, and followers on a hot standby. */
export interface LogResults {
  readonly catchUp: CatchUpResult | undefined
  readonly delivery: DeliveryResult | undefined
  readonly liveSubscribers: LiveSubscribersResult | undefined
  readonly projections: ProjectionsResult | undefined
  readonly replicas: ReplicasOutcome | undefined
}

/** W8's store side keeps a flat RSS when its second half peaks at most this much above its first. */
const flatSlackBytes = 32 * 2 ** 20

const logTargets = (log: LogResults): ReadonlyArray<Target> => {
  const list: Array<Target> = []
  const { catchUp, delivery, liveSubscribers, projections, replicas } = log
  if (catchUp !== undefined) {
    const full = catchUp.events >= 1_000_000
    const stopped = catchUp.runs.filter((run) => !run.finished)
    list.push({
      target: "W8: streamAll >= 0.8 × raw keyset scan (events/s)",
      measured:
        `${catchUp.ratio.toFixed(2)} (${fmt(catchUp.storeEventsPerSec)} vs ${fmt(catchUp.rawEventsPerSec)} events/s; by repetition ${catchUp.ratioByRepetition.map((r) => r.toFixed(2)).join(", ")})` +
        (stopped.length === 0
          ? ""
          : `; ${stopped.map((run) => `${run.system === "postgres" ? "streamAll" : "raw"} rep ${run.repetition}`).join(", ")} stopped at the time budget`),
      met: catchUp.ratio >= 0.8
    })
    const peak = catchUp.storePeak
    list.push({
      target: `W8: streamAll's RSS stays flat over ${catchUp.events.toLocaleString("en")} events (second half's peak <= first half's + ${mb(flatSlackBytes)} MB)`,
      measured: `${mbOrDash(peak.firstHalfPeakRssBytes)} MB, then ${mbOrDash(peak.secondHalfPeakRssBytes)} MB (peak ${mb(Math.max(peak.peakRssBytes, peak.maxRssBytes ?? 0))} MB, ${mb(peak.rssBeforeBytes)} MB before reading)`,
      met: full && peak.finished ? peak.secondHalfPeakRssBytes <= peak.firstHalfPeakRssBytes + flatSlackBytes : null,
      ...(peak.finished ? {} : { unjudged: "the store's reader was stopped" })
    })
  }
  if (delivery !== undefined) {
    const full = delivery.seconds >= 10
    for (const [label, latency, limit] of [
      ["this process", delivery.inProcess, 50],
      ["another process", delivery.otherProcess, 250]
    ] as const) {
      list.push({
        target: `W9: delivery p99 < ${limit} ms, subscriber in ${label} (c${delivery.writers} appends)`,
        measured: `p50 ${ms(latency.p50Ms)} ms, p99 ${ms(latency.p99Ms)} ms, max ${ms(latency.maxMs)} ms; ${fmt(latency.delivered)} events, ${latency.missing} missing`,
        met: latency.missing > 0 ? false : full ? latency.p99Ms < limit : null
      })
    }
  }
  if (liveSubscribers !== undefined) {
    list.push({
      target: `W10: W1 c${liveSubscribers.writers} with ${liveSubscribers.subscribers} live subscribers drops <= 10% of appends/s`,
      measured: `${pct(liveSubscribers.drop)} (${fmt(liveSubscribers.with.opsPerSec)} vs ${fmt(liveSubscribers.without.opsPerSec)}/s; by repetition ${liveSubscribers.dropByRepetition.map(pct).join(", ")})`,
      met: liveSubscribers.drop <= 0.1
    })
  }
  const throughput = projections?.throughput
  if (throughput !== undefined) {
    const full = throughput.events >= 100_000
    for (const cell of throughput.cells) {
      const stopped = throughput.runs.filter((run) => !run.finished)
      const note =
        stopped.length === 0
          ? ""
          : `; ${stopped.map((run) => `${sideLabel[run.side]} (${run.batchSize}) rep ${run.repetition}`).join(", ")} stopped at the time budget`
      if (cell.ratio !== null && cell.rawBatched !== null) {
        list.push({
          target: `W11: the row projection >= 0.8 × a raw batched postgres.js loop (events/s), batches of ${fmt(cell.batchSize)}`,
          measured: `${cell.ratio.toFixed(2)} (${fmt(cell.rows)} vs ${fmt(cell.rawBatched)} events/s; by repetition ${cell.ratioByRepetition.map((r) => r.toFixed(2)).join(", ")})${note}`,
          met: full ? cell.ratio >= 0.8 : null
        })
      }
      if (cell.ratioPerEvent !== null && cell.perEvent !== null) {
        list.push({
          target: `W11: the row projection >= 10 × the per-event form (events/s), batches of ${fmt(cell.batchSize)}`,
          measured: `${cell.ratioPerEvent.toFixed(1)} (${fmt(cell.rows)} vs ${fmt(cell.perEvent)} events/s)${note}`,
          met: full ? cell.ratioPerEvent >= 10 : null
        })
      }
    }
    const trips = throughput.roundTrips
    if (trips !== undefined) {
      list.push({
        target: "W11: round trips per 1,000 events projected by the row projection <= 4",
        measured: `${trips.per1000.toFixed(2)} (${fmt(trips.roundTrips)} over ${fmt(trips.events)} events in batches of ${fmt(trips.batchSize)}; ${trips.sessionPer1000.toFixed(2)} on the projection's session, the rest reading the log; ${trips.syncsPer1000.toFixed(2)} syncs)`,
        met: full ? trips.per1000 <= 4 : null
      })
    }
  }
  const lag = projections?.lag
  if (lag !== undefined) {
    const full = lag.seconds >= 10
    const missed = lag.byRepetition.filter((rep) => !rep.caughtUp).length
    list.push({
      target: `W11: a row projection of W1 c${lag.writers} is caught up < 1 s after the last append`,
      measured: lag.caughtUp
        ? `${fmt(lag.caughtUpMs)} ms, the worst of ${lag.repetitions} phase${lag.repetitions === 1 ? "" : "s"} (${lag.byRepetition.map((rep) => fmt(rep.caughtUpMs)).join(", ")} ms)`
        : `not caught up within 60 s after ${missed} of ${lag.repetitions} phases`,
      met: !lag.caughtUp ? false : full ? lag.caughtUpMs < 1000 : null
    })
    list.push({
      target: `W11: its p99 lag while W1 c${lag.writers} runs is < 1 s of appends`,
      measured: `p99 ${fmt(lag.lag.p99)} acknowledged appends past its checkpoint = ${(lag.lag.p99 / lag.withPerSec).toFixed(2)} s at ${fmt(lag.withPerSec)} appends/s (p50 ${fmt(lag.lag.p50)}, max ${fmt(lag.lag.max)}; ${fmt(lag.lag.samples)} samples over ${lag.repetitions} phase${lag.repetitions === 1 ? "" : "s"})`,
      met: full ? lag.lag.p99 < lag.withPerSec : null
    })
    list.push({
      target: `W11: W1 c${lag.writers} with the projection running <= 10% slower than without`,
      measured: `${pct(lag.slowdown)} (medians ${fmt(lag.withPerSec)} vs ${fmt(lag.withoutPerSec)} appends/s; with / without by repetition ${lag.byRepetition.map((rep) => rep.ratio.toFixed(2)).join(", ")})`,
      met: full ? lag.slowdown <= 0.1 : null
    })
  }
  if (replicas !== undefined && !("skipped" in replicas)) {
    const { standby, primary, writers } = replicas.live
    list.push({
      target: `W12: a subscriber reading on the hot standby delivers every event acknowledged by the primary (c${writers} appends)`,
      measured: `${fmt(standby.delivered)} delivered, ${standby.missing} missing (the primary's subscriber: ${fmt(primary.delivered)}, ${primary.missing} missing)`,
      met: standby.missing === 0 && primary.missing === 0
    })
  }
  return list
}

export const targets = (
  rows: ReadonlyArray<Row>,
  roundTrips: RoundTrips | undefined,
  longStream: ReadonlyArray<LongStreamResult>,
  log: LogResults,
  /** Whether the run is as large as issue #15's goals speak of (not --quick, 3+ repetitions of 5+ s, full sizes). */
  full: boolean,
  snapshots: SnapshotsResult | undefined
): ReadonlyArray<Target> => {
  const list: Array<Target> = [
    ...ratioTarget(rows, ["W1", "W2", "W3"], 0.85, "W1-W3"),
    ...ratioTarget(rows, ["W4"], 0.8, "W4 (vs raw SELECT + JSON decode)")
  ]
  const hot = rows.filter((row) => row.workload === "W5")
  const hotPostgres = hot.find((row) => row.system === "postgres")
  if (hotPostgres !== undefined) {
    list.push({
      target: `W5: no livelock (PostgresEventStore never goes ${livelockMs / 1000} s without a successful append)`,
      measured: hot
        .map(
          (row) =>
            `${row.system}: longest stall ${fmt(row.longestStallMs)} ms, max ${row.maxAttempts} attempts, ${row.gaveUp} writers gave up after ${maxAttemptsOf(row)}`
        )
        .join("; "),
      met: hotPostgres.opsPerSec > 0 && hotPostgres.longestStallMs < livelockMs
    })
    if (hotPostgres.vsRaw !== undefined) {
      list.push({
        target: "W5: PostgresEventStore successful appends/s >= 0.8 × raw (same retry policy)",
        measured: `${hotPostgres.vsRaw.toFixed(2)} (${fmt(hotPostgres.opsPerSec)} vs ${fmt(hotPostgres.opsPerSec / hotPostgres.vsRaw)}/s)`,
        met: hotPostgres.vsRaw >= 0.8
      })
    }
  }
  list.push(...issue15Targets(rows, full))
  if (roundTrips !== undefined) {
    const { statements, roundTrips: wire } = roundTrips.transfer
    list.push({
      target: "W6: a transfer costs at most 3 round trips",
      measured: `${statements} statements (postgres.js debug hook), ${wire} round trips on the wire`,
      met: wire <= 3 && (statements ?? 0) <= 3
    })
  }
  const long = longStream.find((result) => result.system === "postgres")
  if (long !== undefined) {
    const peak = Math.max(long.peakRssBytes, long.maxRssBytes ?? 0)
    list.push({
      target: `W7: peak RSS < 300 MB streaming ${long.events.toLocaleString("en")} events`,
      measured: `${mb(peak)} MB`,
      met: long.events >= 1_000_000 ? peak < 300 * 2 ** 20 : null
    })
  }
  return [...list, ...logTargets(log), ...snapshotTargets(snapshots)]
}

/** W13's cell of `store`, `shape`, `length` and `variant`, if it ran. */
const snapshotCell = (
  result: SnapshotsResult,
  store: string,
  shape: W13Shape,
  length: number,
  variant: LatencyCell["variant"]
) =>
  result.cells.find(
    (cell) => cell.store === store && cell.shape === shape && cell.length === length && cell.variant === variant
  )

/**
 * Issue #26's goals: with snapshots, the longest stream at most 2 × the shortest (judged when they are
 * 100,000 and 10 events); with snapshots on the shortest, no slower than without, within the noise (the
 * median p50 with them at most the slowest repetition's p50 without); the periodic writes raise p99 by at
 * most 10% (judged with the default policy, 100 events). None judged on --quick runs.
 */
const snapshotTargets = (result: SnapshotsResult | undefined): ReadonlyArray<Target> => {
  if (result === undefined) return []
  const list: Array<Target> = []
  const shortest = result.lengths[0] as number
  const longest = result.lengths[result.lengths.length - 1] as number
  const judged = !result.quick && result.repetitions >= 3
  for (const store of result.stores) {
    for (const shape of ["one", "two"] as const) {
      const short = snapshotCell(result, store, shape, shortest, "snapshot")
      const long = snapshotCell(result, store, shape, longest, "snapshot")
      if (short !== undefined && long !== undefined && longest > shortest) {
        const ratio = long.p50Ms / short.p50Ms
        list.push({
          target: `W13 ${store} ${shapeLabel[shape]}: with snapshots, ${fmt(longest)} events <= 2 × ${fmt(shortest)} events (p50)`,
          measured: `${ratio.toFixed(2)}× (${ms(long.p50Ms)} vs ${ms(short.p50Ms)} ms; p99 ${(long.p99Ms / short.p99Ms).toFixed(2)}×, ${ms(long.p99Ms)} vs ${ms(short.p99Ms)} ms)`,
          met: judged && longest >= 100_000 && shortest <= 10 ? ratio <= 2 : null
        })
      }
      const without = snapshotCell(result, store, shape, shortest, "none")
      if (short !== undefined && without !== undefined) {
        const slowest = Math.max(
          ...result.runs
            .filter(
              (run) => run.store === store && run.shape === shape && run.length === shortest && run.variant === "none"
            )
            .map((run) => run.p50Ms)
        )
        list.push({
          target: `W13 ${store} ${shapeLabel[shape]}: with snapshots at ${fmt(shortest)} events no slower than without (p50 <= the slowest repetition without)`,
          measured: `${ms(short.p50Ms)} vs ${ms(without.p50Ms)} ms (${(short.p50Ms / without.p50Ms).toFixed(2)}×; slowest without ${ms(slowest)} ms); p99 ${ms(short.p99Ms)} vs ${ms(without.p99Ms)} ms`,
          met: judged ? short.p50Ms <= slowest : null
        })
      }
    }
  }
  const { writes } = result
  for (const cell of writes.cells) {
    list.push({
      target: `W13 ${cell.store}: snapshot writes every ${writes.every} events raise p99 by <= 10% (c${writes.concurrency})`,
      measured: `${change(cell.p99Ratio)} (${ms(cell.periodic.p99Ms)} vs ${ms(cell.never.p99Ms)} ms; by repetition ${cell.p99RatioByRepetition.map(change).join(", ")})`,
      met: judged && writes.every === 100 ? cell.p99Ratio <= 1.1 : null
    })
  }
  return list
}

const fmt = (value: number, digits = 0) =>
  Number.isNaN(value)
    ? "-"
    : value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits })
const ms = (value: number) => (Number.isNaN(value) ? "-" : value < 10 ? value.toFixed(2) : value.toFixed(1))
const pct = (value: number) => (Number.isNaN(value) ? "-" : `${(value * 100).toFixed(1)}%`)
/** A change as a signed percentage: +12.5%, -3.0%. */
const change = (ratio: number) => (Number.isNaN(ratio) ? "-" : `${ratio >= 1 ? "+" : ""}${pct(ratio - 1)}`)
export const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0)
/** A half of W8's trace without samples (a run shorter than a second) has no peak. */
const mbOrDash = (bytes: number) => (bytes > 0 ? mb(bytes) : "-")

const table = (
  header: ReadonlyArray<string>,
  right: ReadonlyArray<boolean>,
  lines: ReadonlyArray<ReadonlyArray<string>>
) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${right.map((r) => (r ? "---:" : "---")).join(" | ")} |`,
    ...lines.map((line) => `| ${line.join(" | ")} |`)
  ].join("\n")

export interface Report extends LogResults {
  readonly meta: Record<string, unknown>
  readonly snapshots: SnapshotsResult | undefined
  readonly rows: ReadonlyArray<Row>
  readonly targets: ReadonlyArray<Target>
  readonly roundTrips: RoundTrips | undefined
  readonly longStream: ReadonlyArray<LongStreamResult>
  /** Streams and events each SQL system on the server held as a workload started. */
  readonly sizes: ReadonlyArray<{
    readonly before: string
    readonly system: SystemName
    readonly streams: number
    readonly events: number
  }>
}

export const markdown = (report: Report, title: string, environment: ReadonlyArray<string>): string => {
  const parts: Array<string> = [`# ${title}`, "", ...environment.map((line) => `- ${line}`), ""]
  if (report.rows.length > 0) {
    parts.push(
      "## W1-W6 (medians over repetitions)",
      "",
      "ops/s counts successful operations; latency is per successful operation, retries included; conflicts are conflicting attempts / all attempts; stall is the longest time without any successful operation (worst repetition); vs raw is the row's system's ops/s (the PostgreSQL store's or Emmett's) over the raw postgres.js baseline's, vs emmett the PostgreSQL store's over Emmett's (ratios of medians; the per-repetition ratios are in the JSON).",
      "",
      table(
        [
          "workload",
          "c",
          "system",
          "ops/s",
          "events/s",
          "p50 ms",
          "p99 ms",
          "conflicts",
          "attempts/op",
          "stall ms",
          "vs raw",
          "vs emmett"
        ],
        [false, true, false, true, true, true, true, true, true, true, true, true],
        report.rows.map((row) => [
          row.workload,
          String(row.concurrency),
          row.system,
          fmt(row.opsPerSec),
          fmt(row.eventsPerSec),
          ms(row.p50Ms),
          ms(row.p99Ms),
          pct(row.conflictRate),
          fmt(row.attemptsPerOp, 2),
          fmt(row.longestStallMs),
          row.vsRaw === undefined ? "" : `**${row.vsRaw.toFixed(2)}**`,
          row.vsEmmett === undefined ? "" : `**${row.vsEmmett.toFixed(2)}**`
        ])
      ),
      "",
      "Workloads:",
      "",
      ...[...new Map(report.rows.map((row) => [row.workload, row.title]))].map(([id, t]) => `- ${id}: ${t}`),
      ""
    )
    if (report.sizes.length > 0) {
      parts.push(
        "Tables grow through the run (streams / events on the server as each workload started): " +
          report.sizes
            .map((size) => `${size.before} ${size.system} ${fmt(size.streams)} / ${fmt(size.events)}`)
            .join("; "),
        ""
      )
    }
    const trouble = report.rows.filter((row) => row.errors > 0 || row.gaveUp > 0)
    for (const row of trouble) {
      parts.push(`- ${row.workload} c${row.concurrency} ${row.system}: ${row.errors} errors, ${row.gaveUp} gave up`)
    }
    if (trouble.length > 0) parts.push("")
    parts.push(...emmettSection(report.rows))
  }
  if (report.roundTrips !== undefined) {
    parts.push(
      "## Statements and round trips per operation (PostgreSQL)",
      "",
      `Statements: a postgres.js client with the \`debug\` hook under \`PostgresEventStore.make(client)\`. Round trips: a proxy on the wire counts each time the server answers after the client sent something; syncs: ReadyForQuery messages (one per Sync'ed exchange). Averages over ${report.roundTrips.repeat} operations after a warm-up.`,
      "",
      table(
        ["operation", "statements", "round trips", "syncs"],
        [false, true, true, true],
        report.roundTrips.operations.map((cost) => [
          cost.operation,
          cost.statements === null ? "-" : fmt(cost.statements, 1),
          fmt(cost.roundTrips, 1),
          fmt(cost.syncs, 1)
        ])
      ),
      "",
      "The statements of one transfer:",
      "",
      ...report.roundTrips.transferStatements.map((statement) => `- \`${statement.slice(0, 140)}…\``),
      ""
    )
  }
  if (report.longStream.length > 0) {
    parts.push(
      "## W7 long stream (streamEvents, child process)",
      "",
      table(
        [
          "system",
          "events",
          "page size",
          "seconds",
          "events/s",
          "RSS before MB",
          "peak RSS MB (sampled)",
          "max RSS MB (time -v)"
        ],
        [false, true, true, true, true, true, true, true],
        report.longStream.map((result) => [
          result.system,
          fmt(result.events),
          result.pageSize === null ? "default (500)" : String(result.pageSize),
          result.seconds.toFixed(1),
          fmt(result.eventsPerSec),
          mb(result.rssBeforeBytes),
          mb(result.peakRssBytes),
          result.maxRssBytes === null ? "-" : mb(result.maxRssBytes)
        ])
      ),
      ""
    )
  }
  parts.push(...logSections(report))
  parts.push(...snapshotSections(report.snapshots))
  parts.push(...personalSection(report))
  if (report.targets.length > 0) {
    parts.push(
      "## Targets",
      "",
      table(
        ["target", "measured", "met"],
        [false, false, false],
        report.targets.map((t) => [
          t.target,
          t.measured,
          t.met === null ? `n/a (${t.unjudged ?? "smaller run"})` : t.met ? "yes" : "**no**"
        ])
      ),
      ""
    )
  }
  return parts.join("\n")
}

/**
 * Issue 29: what encrypting personal values costs, measured in one run: W2 beside W2.personal, and W11's row
 * projection over the plain log beside the logs of personal data (ratios of medians, and within each repetition).
 */
const personalSection = (report: Report): ReadonlyArray<string> => {
  const byRepetition = (values: ReadonlyArray<number>) => values.map((value) => value.toFixed(2)).join(", ")
  const writes = report.rows.flatMap((row) => {
    const plain = report.rows.find(
      (other) =>
        other.workload === row.variantOf && other.concurrency === row.concurrency && other.system === row.system
    )
    if (row.vsVariantOf === undefined || plain === undefined) return []
    return [
      [
        `${plain.workload} → ${row.workload} (${row.system})`,
        `c${row.concurrency}`,
        `${fmt(plain.opsPerSec)} ops/s`,
        `${fmt(row.opsPerSec)} ops/s`,
        `**${row.vsVariantOf.toFixed(2)}**`,
        byRepetition(row.vsVariantOfByRepetition ?? []),
        `${ms(plain.p50Ms)} → ${ms(row.p50Ms)}`
      ]
    ]
  })
  const throughput = report.projections?.throughput
  const reads = (throughput?.cells ?? []).flatMap((cell) =>
    cell.personal.map((personal) => [
      `W11 ${sideLabel.rows} → ${sideLabel[personal.side]}`,
      `batches of ${fmt(cell.batchSize)}`,
      `${fmt(cell.rows)} events/s`,
      `${fmt(personal.eventsPerSec)} events/s`,
      `**${personal.ratio.toFixed(2)}**`,
      byRepetition(personal.ratioByRepetition),
      "-"
    ])
  )
  if (writes.length === 0 && reads.length === 0) return []
  const logs = throughput?.logs ?? []
  return [
    "## Personal data: plain vs personal (issue 29)",
    "",
    "W2.personal is W2 with one personal value more in each appended event (a ~20-character name whose subject is the stream, `PersonalData.value`), on streams of its own in the same store, measured beside W2 within each repetition: the append encrypts it (AES-256-GCM) after one more statement for the subject's key (`subject_keys_for`); W2's version read returns no event, so opens nothing. W11's row projection (`Balances`) catches up over the plain log and over the same events with personal values (subject: the account), each log in a database of its own, sides rotating within each repetition: names personal, the holder's name of each AccountOpened (the bank's one personal value; the log opens every account first, so these are all in its first pages), and every event personal, the amounts too (every page opens a value per event: one more statement per page for the keys, and a decryption per event). Ratios: personal over plain, of medians and within each repetition.",
    "",
    table(
      ["comparison", "at", "plain", "personal", "personal / plain", "by repetition", "p50 ms"],
      [false, false, true, true, true, false, true],
      [...writes, ...reads]
    ),
    "",
    ...(logs.length === 0
      ? []
      : [
          `W11's logs: ${logs
            .map(
              (log) =>
                `${log.side === "rows" ? "plain" : sideLabel[log.side].replace(`${sideLabel.rows}, `, "")} ${fmt(log.personalEvents)} of ${fmt(log.events)} events with a personal value, events table ${(log.bytes / 2 ** 20).toFixed(1)} MB (seeded in ${log.seedSeconds.toFixed(1)} s)`
            )
            .join("; ")}.`,
          ""
        ])
  ]
}

/** eventcore's PostgreSQL store, Emmett and raw side by side, where all three ran (issue #15). */
const emmettSection = (rows: ReadonlyArray<Row>): ReadonlyArray<string> => {
  const lines = rows.flatMap((row) => {
    if (row.system !== "postgres" || row.vsEmmett === undefined) return []
    const of = (system: SystemName) =>
      rows.find((r) => r.workload === row.workload && r.concurrency === row.concurrency && r.system === system)
    const emmett = of("emmett")
    const raw = of("raw")
    const ratio = (value: number | undefined) => (value === undefined ? "-" : `**${value.toFixed(2)}**`)
    const byRepetition = (values: ReadonlyArray<number> | undefined) =>
      values === undefined ? "-" : values.map((value) => value.toFixed(2)).join(", ")
    return [
      [
        row.workload,
        String(row.concurrency),
        raw === undefined ? "-" : fmt(raw.opsPerSec),
        fmt(row.opsPerSec),
        emmett === undefined ? "-" : fmt(emmett.opsPerSec),
        ratio(row.vsRaw),
        ratio(emmett?.vsRaw),
        ratio(row.vsEmmett),
        byRepetition(row.vsEmmettByRepetition)
      ]
    ]
  })
  if (lines.length === 0) return []
  return [
    "## eventcore vs Emmett (issue #15)",
    "",
    "Medians of ops/s from the table above: eventcore is the PostgreSQL store, Emmett is `@event-driven-io/emmett-postgresql` with its default options on a database of its own (W2's and W5's version read is Emmett's `readStream` of the whole stream: it has no read of the version alone).",
    "",
    table(
      [
        "workload",
        "c",
        "raw ops/s",
        "eventcore ops/s",
        "Emmett ops/s",
        "eventcore/raw",
        "Emmett/raw",
        "eventcore/Emmett",
        "eventcore/Emmett by repetition"
      ],
      [false, true, true, true, true, true, true, true, false],
      lines
    ),
    ""
  ]
}

const logSections = ({
  catchUp,
  delivery,
  liveSubscribers,
  projections,
  replicas
}: LogResults): ReadonlyArray<string> => {
  const parts: Array<string> = []
  if (catchUp !== undefined) {
    parts.push(
      "## W8 catch-up on the global log (child processes)",
      "",
      `${fmt(catchUp.events)} events (${fmt(catchUp.streams)} streams, ${fmt(catchUp.transactions)} transactions, seeded in ${catchUp.seedSeconds.toFixed(1)} s), pages of ${fmt(catchUp.pageSize)}; \`streamAll\` consumed event by event (\`Stream.runForEach\`) against a raw postgres.js keyset scan of the same table in the same order (\`(transaction_id, global_position) > (last)\`, prepared, rows JSON-decoded). Each run in a fresh child process; medians over ${catchUp.runs.length / 2} repetitions, alternating which goes first.`,
      "",
      table(
        [
          "system",
          "rep",
          "events read",
          "seconds",
          "events/s",
          "RSS before MB",
          "peak RSS MB, 1st half / 2nd half",
          "max RSS MB (time -v)"
        ],
        [false, true, true, true, true, true, true, true],
        catchUp.runs.map((run) => [
          run.system === "postgres" ? "streamAll" : "raw",
          String(run.repetition),
          run.finished ? fmt(run.events) : `${fmt(run.events)} (**stopped** at the time budget)`,
          run.seconds.toFixed(2),
          fmt(run.eventsPerSec),
          mb(run.rssBeforeBytes),
          `${mbOrDash(run.firstHalfPeakRssBytes)} / ${mbOrDash(run.secondHalfPeakRssBytes)}`,
          run.maxRssBytes === null ? "-" : mb(run.maxRssBytes)
        ])
      ),
      "",
      `Medians: streamAll ${fmt(catchUp.storeEventsPerSec)} events/s, raw ${fmt(catchUp.rawEventsPerSec)} events/s, **${catchUp.ratio.toFixed(2)}×**.`,
      ""
    )
  }
  if (delivery !== undefined) {
    const row = (label: string, latency: DeliveryLatencyRow) => [
      label,
      fmt(latency.delivered),
      String(latency.missing),
      fmt(latency.beforeAcknowledged),
      ms(latency.p50Ms),
      ms(latency.p99Ms),
      ms(latency.maxMs)
    ]
    parts.push(
      "## W9 delivery latency (acknowledged append → subscriber)",
      "",
      `${delivery.writers} writers appending one event to a new stream each for ${delivery.seconds} s through one store (pool of ${delivery.poolSize}): ${fmt(delivery.appends.opsPerSec)} appends/s, append p50 ${ms(delivery.appends.p50Ms)} ms, p99 ${ms(delivery.appends.p99Ms)} ms. One \`subscribe()\` on that store (woken by its appends) and one in another process on a store of its own (polling); ${delivery.inProcess.missing + delivery.otherProcess.missing === 0 ? `both had delivered every event ${delivery.drainMs.toFixed(0)} ms after the last acknowledgement` : `the bench stopped waiting for them ${(delivery.drainMs / 1000).toFixed(0)} s after the last acknowledgement, with events still undelivered (missing)`}. Events delivered before their writer heard back count as 0 ms.${delivery.othersOldestTransactionMs === undefined ? "" : ` Readers wait for every transaction on the server older than what they read: other databases' oldest open transaction (sampled every 50 ms while the writers ran) had been open for ${ms(delivery.othersOldestTransactionMs.median)} ms (median), ${ms(delivery.othersOldestTransactionMs.max)} ms at most.`}`,
      "",
      table(
        ["subscriber", "events", "missing", "before ack", "p50 ms", "p99 ms", "max ms"],
        [false, true, true, true, true, true, true],
        [row("this process", delivery.inProcess), row("another process", delivery.otherProcess)]
      ),
      ""
    )
  }
  if (liveSubscribers !== undefined) {
    parts.push(
      "## W10 appends with live subscribers",
      "",
      `W1 at c${liveSubscribers.writers} (pool of ${liveSubscribers.poolSize}) with no subscriber and with ${liveSubscribers.subscribers} \`subscribe()\` on the same store, alternating within each repetition. Events per live read: events delivered over \`CaughtUp\` messages (one per read that brought events and reached the head), median over the subscribers. Drain: how long after the appends stopped the subscribers had delivered them all.`,
      "",
      table(
        [
          "subscribers",
          "rep",
          "ops/s",
          "p50 ms",
          "p99 ms",
          "delivered (min over subscribers) / appended",
          "events per live read",
          "drain ms",
          "load"
        ],
        [true, true, true, true, true, true, true, true, true],
        liveSubscribers.cells.map((cell) => [
          String(cell.subscribers),
          String(cell.repetition),
          fmt(cell.sample.opsPerSec),
          ms(cell.sample.p50Ms),
          ms(cell.sample.p99Ms),
          cell.delivered.length === 0 ? "-" : `${fmt(Math.min(...cell.delivered))} / ${fmt(cell.appended)}`,
          cell.catchUps === undefined || cell.catchUps.length === 0
            ? "-"
            : fmt(median(cell.delivered.map((n, i) => n / Math.max(1, cell.catchUps[i] ?? 0))), 1),
          cell.drainMs === null ? "-" : fmt(cell.drainMs),
          cell.loadAverage.toFixed(1)
        ])
      ),
      "",
      `Medians: ${fmt(liveSubscribers.without.opsPerSec)} appends/s without, ${fmt(liveSubscribers.with.opsPerSec)} with ${liveSubscribers.subscribers} subscribers: **${pct(liveSubscribers.drop)} drop** (by repetition ${liveSubscribers.dropByRepetition.map(pct).join(", ")}).`,
      ""
    )
  }
  parts.push(...projectionSections(projections))
  parts.push(...replicaSections(replicas))
  return parts
}

const replicaSections = (replicas: ReplicasOutcome | undefined): ReadonlyArray<string> => {
  if (replicas === undefined) return []
  const title = "## W12 followers on a hot standby (issue #16)"
  if ("skipped" in replicas) return [title, "", `Skipped: ${replicas.skipped}.`, ""]
  const { pair, catchUp, live } = replicas
  const setting = (name: string) => `${name}=${pair.primary[name] ?? "?"}`
  const retries = (value: number | null | undefined) => (value === null || value === undefined ? "-" : fmt(value))
  const latency = (label: string, subscriber: ReplicasResult["live"]["standby"]) => [
    label,
    fmt(subscriber.delivered),
    String(subscriber.missing),
    fmt(subscriber.beforeAcknowledged),
    ms(subscriber.p50Ms),
    ms(subscriber.p99Ms),
    ms(subscriber.maxMs),
    retries(subscriber.replicaRetries)
  ]
  const missing = live.standby.missing + live.primary.missing
  const delta = (value: number) => `${value >= 0 ? "+" : ""}${ms(value)}`
  return [
    title,
    "",
    `A PostgreSQL ${pair.primary.server_version ?? "?"} primary and a hot standby streaming from it (asynchronous), started by the bench with \`.ci/replication.sh\` in a temporary directory (${pair.startSeconds.toFixed(1)} s) on the bench's machine, and stopped after W12; both ${[
      "fsync",
      "synchronous_commit",
      "full_page_writes",
      "shared_buffers",
      "hot_standby_feedback",
      "max_standby_streaming_delay"
    ]
      .map(setting)
      .join(
        ", "
      )} (the standby: in recovery ${pair.standby.in_recovery ?? "?"}). A follower's store reads the log on the standby when given \`replicaUrl\`; appends stay on the primary.`,
    "",
    "### Catch-up (streamAll, child processes)",
    "",
    `${fmt(catchUp.events)} events (${fmt(catchUp.streams)} streams, ${fmt(catchUp.transactions)} transactions, seeded on the primary in ${catchUp.seedSeconds.toFixed(1)} s as W8 seeds its log, and replayed on the standby ${catchUp.replaySeconds.toFixed(1)} s after), pages of ${fmt(catchUp.pageSize)}; \`streamAll\` consumed event by event (\`Stream.runForEach\`, W8's reader) on a store with \`replicaUrl\` (reading on the standby) and on one without (reading on the primary). Each run in a fresh child process; medians over ${catchUp.runs.length / 2} repetitions, alternating which goes first. Reads run again: reads the standby cancelled on a conflict with recovery, which the store retried.`,
    "",
    table(
      ["reads on", "rep", "events read", "seconds", "events/s", "peak RSS MB", "reads run again"],
      [false, true, true, true, true, true, true],
      catchUp.runs.map((run) => [
        run.side,
        String(run.repetition),
        run.finished ? fmt(run.events) : `${fmt(run.events)} (**stopped** at the time budget)`,
        run.seconds.toFixed(2),
        fmt(run.eventsPerSec),
        mb(Math.max(run.peakRssBytes, run.maxRssBytes ?? 0)),
        run.side === "standby" ? retries(run.replicaRetries) : "-"
      ])
    ),
    "",
    `Medians: standby ${fmt(catchUp.standbyEventsPerSec)} events/s, primary ${fmt(catchUp.primaryEventsPerSec)} events/s, standby/primary **${catchUp.ratio.toFixed(2)}×** (by repetition ${catchUp.ratioByRepetition.map((r) => r.toFixed(2)).join(", ")}).`,
    "",
    "### Replica lag seen by subscribers (acknowledged append → subscriber)",
    "",
    `${live.writers} writers appending one event to a new stream each for ${live.seconds} s through one store on the primary (pool of ${live.poolSize}): ${fmt(live.appends.opsPerSec)} appends/s, append p50 ${ms(live.appends.p50Ms)} ms, p99 ${ms(live.appends.p99Ms)} ms. Two \`subscribe()\`, each in a process of its own on a store of its own: one reading the log on the standby, one on the primary; neither is the writers' store, so both learn of the appends by polling (as W9's subscriber in another process) and differ only in where they read. Latency is W9's: delivery minus the append's acknowledgement, on the clock the processes share; events delivered before their writer heard back count as 0 ms. ${missing === 0 ? `Both had delivered every event ${live.drainMs.toFixed(0)} ms after the last acknowledgement.` : `The bench stopped waiting ${(live.drainMs / 1000).toFixed(0)} s after the last acknowledgement, with events still undelivered (missing).`} The standby's \`replay_lag\` as the primary reports it (\`pg_stat_replication\`, sampled every 50 ms while the writers ran, ${fmt(live.replayLagMs.samples)} samples, 0 when it reports none): p50 ${ms(live.replayLagMs.p50)} ms, p99 ${ms(live.replayLagMs.p99)} ms, max ${ms(live.replayLagMs.max)} ms; WAL written and not yet replayed: median ${fmt(live.replayBehindBytes.p50 / 1024, 1)} kB, max ${fmt(live.replayBehindBytes.max / 1024, 1)} kB.`,
    "",
    table(
      ["subscriber reads on", "events", "missing", "before ack", "p50 ms", "p99 ms", "max ms", "reads run again"],
      [false, true, true, true, true, true, true, true],
      [latency("standby", live.standby), latency("primary", live.primary)]
    ),
    "",
    `Standby minus primary: p50 ${delta(live.standby.p50Ms - live.primary.p50Ms)} ms, p99 ${delta(live.standby.p99Ms - live.primary.p99Ms)} ms, max ${delta(live.standby.maxMs - live.primary.maxMs)} ms.`,
    ""
  ]
}

const projectionSections = (projections: ProjectionsResult | undefined): ReadonlyArray<string> => {
  const parts: Array<string> = []
  const throughput = projections?.throughput
  if (throughput !== undefined) {
    const rate = (value: number | null) => (value === null ? "-" : fmt(value))
    const ratio = (value: number | null) => (value === null ? "-" : `**${value.toFixed(2)}**`)
    const runsTable = (runs: ReadonlyArray<ThroughputRun>, budget: number) =>
      table(
        ["side", "batch", "rep", "events", "seconds", "events/s", "load"],
        [false, true, true, true, true, true, true],
        runs.map((run) => [
          sideLabel[run.side],
          fmt(run.batchSize),
          String(run.repetition),
          run.finished ? fmt(run.events) : `${fmt(run.events)} (**stopped** at ${budget} s)`,
          run.seconds.toFixed(2),
          fmt(run.eventsPerSec),
          run.loadAverage.toFixed(1)
        ])
      )
    parts.push(
      "## W11 projection throughput",
      "",
      `${fmt(throughput.events)} account events over ${fmt(throughput.accounts)} accounts (${throughput.transactions} transactions, seeded in ${throughput.seedSeconds.toFixed(1)} s), projected from the start of the log into \`bank_balances\` until caught up: the bank's \`Balances\` (a row projection: per batch one select of the touched rows, a fold in memory, one upsert, with the checkpoint's compare-and-set in the batch's transaction), the same read model in the per-event form (\`Projection.make({ handle })\`, one Drizzle upsert per event, at its default batch of 100), and a raw postgres.js loop doing the row projection's work per page (read the page, then in one transaction select the touched rows, fold, one multi-row upsert and the compare-and-set). The row projection also runs over two logs of personal data (issue 29; the section on personal data below). Medians over the repetitions, sides rotating; every finished run's read model checked against the fold of the log.`,
      "",
      table(
        [
          "batch",
          `${sideLabel.rows} events/s`,
          `${sideLabel["raw-batched"]} events/s`,
          "rows / raw",
          `${sideLabel["per-event"]} events/s`,
          "rows / per-event"
        ],
        [true, true, true, true, true, true],
        throughput.cells.map((cell) => [
          fmt(cell.batchSize),
          rate(cell.rows),
          rate(cell.rawBatched),
          ratio(cell.ratio),
          rate(cell.perEvent),
          ratio(cell.ratioPerEvent)
        ])
      ),
      "",
      runsTable(throughput.runs, throughput.budgetSeconds),
      ""
    )
    const trips = throughput.roundTrips
    if (trips !== undefined) {
      parts.push(
        `Round trips: one more run of the row projection (batches of ${fmt(trips.batchSize)}, a pool of 2) through a proxy counting round trips on the wire (a server answer after the client sent; the projection's session and every connection of the store's pool, which reads the log; \`waitFor\` polls on a pool of its own beside the proxy): ${fmt(trips.roundTrips)} over ${fmt(trips.events)} events, **${trips.per1000.toFixed(2)} per 1,000 events**, of which ${trips.sessionPer1000.toFixed(2)} on the session (${trips.syncsPer1000.toFixed(2)} sync'ed exchanges).`,
        ""
      )
    }
    const pglite = throughput.pglite
    if (pglite !== undefined) {
      parts.push(
        "### On PGlite",
        "",
        `${fmt(pglite.events)} account events over ${fmt(pglite.accounts)} accounts, in memory: the row projection ${fmt(pglite.rows)} events/s, the per-event form ${fmt(pglite.perEvent)} events/s (**${(pglite.rows / pglite.perEvent).toFixed(1)}×**).`,
        "",
        runsTable(pglite.runs, throughput.budgetSeconds),
        ""
      )
    }
  }
  const lag = projections?.lag
  if (lag !== undefined) {
    const warmup = lag.warmupSeconds > 0 ? `, each after a warm-up of ${lag.warmupSeconds} s` : ""
    parts.push(
      "## W11 projection lag behind W1",
      "",
      `${lag.writers} writers appending one event to a new stream each through one store (pool of ${lag.poolSize}), in ${lag.repetitions} repetition${lag.repetitions === 1 ? "" : "s"} of two phases of ${lag.seconds} s${warmup}: one while a row projection in this process on that store (batches of ${lag.batchSize}) writes one row per event, one with it stopped, their order alternating (with it first in odd repetitions). Before a phase with it, the projection is started and \`Projection.waitFor\` waits until it has projected the whole log, so no backlog of a phase without it is projected while measuring. Medians over the phases: ${fmt(lag.withPerSec)} appends/s with the projection, ${fmt(lag.withoutPerSec)} without, so ${pct(lag.slowdown)} slower with it (the median phase with it: append p50 ${ms(lag.appends.p50Ms)} ms, p99 ${ms(lag.appends.p99Ms)} ms; without: p50 ${ms(lag.withoutProjection.p50Ms)} ms, p99 ${ms(lag.withoutProjection.p99Ms)} ms).`,
      "",
      `Lag: every ${lag.sampleIntervalMs} ms a connection of its own reads the projection's checkpoint (its one row of \`eventcore.projections\`, next to nothing for the server); a sample's lag is the number of appends acknowledged before the read whose position is past that checkpoint, i.e. acknowledged appends not yet projected (no longer \`Projection.status\`'s lag, which counted the log's events after the checkpoint with a query heavy enough to slow the phase it sampled). Percentiles over the ${fmt(lag.lag.samples)} samples of every phase with the projection. Caught up: from a phase's last acknowledged append to \`Projection.waitFor\` seeing the projection past it, the worst over the phases. At the end, after a last catch-up, the read model must hold a row per appended event.`,
      "",
      table(
        [
          "lag p50 appends",
          "lag p99 appends",
          "lag max appends",
          "p99 in s of appends",
          "caught up after ms",
          "appended / projected"
        ],
        [true, true, true, true, true, true],
        [
          [
            fmt(lag.lag.p50),
            fmt(lag.lag.p99),
            fmt(lag.lag.max),
            (lag.lag.p99 / lag.withPerSec).toFixed(2),
            lag.caughtUp ? fmt(lag.caughtUpMs) : "**not within 60 s**",
            `${fmt(lag.appended)} / ${fmt(lag.projected)}`
          ]
        ]
      ),
      "",
      table(
        [
          "rep",
          "first",
          "with appends/s",
          "without appends/s",
          "with / without",
          "lag p50 / p99 / max",
          "caught up ms"
        ],
        [true, false, true, true, true, true, true],
        lag.byRepetition.map((rep) => [
          String(rep.repetition),
          rep.first,
          fmt(rep.with.opsPerSec),
          fmt(rep.without.opsPerSec),
          rep.ratio.toFixed(2),
          `${fmt(rep.lag.p50)} / ${fmt(rep.lag.p99)} / ${fmt(rep.lag.max)}`,
          rep.caughtUp ? fmt(rep.caughtUpMs) : "**not within 60 s**"
        ])
      ),
      ""
    )
  }
  return parts
}

type DeliveryLatencyRow = DeliveryResult["inProcess"]

const snapshotSections = (result: SnapshotsResult | undefined): ReadonlyArray<string> => {
  if (result === undefined) return []
  const { writes } = result
  const p50p99 = (cell: LatencyCell | undefined) =>
    cell === undefined
      ? "-"
      : `${ms(cell.p50Ms)} / ${ms(cell.p99Ms)}${cell.stopped > 0 ? ` (${fmt(cell.ops)} commands)` : ""}`
  const lines = (["one", "two"] as const).flatMap((shape) =>
    result.lengths.map((length) => [
      shapeLabel[shape],
      fmt(length),
      ...result.stores.flatMap((store) => [
        p50p99(snapshotCell(result, store, shape, length, "none")),
        p50p99(snapshotCell(result, store, shape, length, "snapshot"))
      ]),
      [
        ...new Set(
          result.stores.map((store) =>
            fmt(snapshotCell(result, store, shape, length, "snapshot")?.lengthAtEnd ?? Number.NaN)
          )
        )
      ].join(" / ")
    ])
  )
  const shortest = result.lengths[0] as number
  const longest = result.lengths[result.lengths.length - 1] as number
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? "-" : `**${(a / b).toFixed(2)}**`
  const ratios = result.stores.flatMap((store) =>
    (["one", "two"] as const).map((shape) => {
      const short = snapshotCell(result, store, shape, shortest, "snapshot")
      const long = snapshotCell(result, store, shape, longest, "snapshot")
      const without = snapshotCell(result, store, shape, shortest, "none")
      const longWithout = snapshotCell(result, store, shape, longest, "none")
      return [
        store,
        shapeLabel[shape],
        longest > shortest ? `${ratio(long?.p50Ms, short?.p50Ms)} / ${ratio(long?.p99Ms, short?.p99Ms)}` : "-",
        `${ratio(short?.p50Ms, without?.p50Ms)} / ${ratio(short?.p99Ms, without?.p99Ms)}`,
        `${ratio(longWithout?.p50Ms, long?.p50Ms)}`
      ]
    })
  )
  return [
    "## W13 commands on long streams, with and without snapshots (issue #26)",
    "",
    `\`execute\` at c1 of the bank's Deposit (one stream) and Transfer (two streams, each of the length shown), without snapshots and with them (a copy of the command with \`Snapshot.make({ state, version: 1 })\`: a new snapshot once a command folded 100 events beyond the last, written in the background). Each length has a pool of streams (pairs) used in turn (${result.poolSizes.map((pool) => `${fmt(pool.streams)} at ${fmt(pool.length)} events`).join(", ")}), seeded by SQL through \`eventcore.append\`, each given a first snapshot before measuring. Every command appends an event, so the streams grow through the run (last column: the mean length at the end) and the snapshots are rewritten every 100 events. A cell runs ${fmt(result.ops)} commands one after another, or fewer once ${result.budgetSeconds} s have passed (the count is shown then); medians of p50 and p99 over ${result.repetitions} repetitions, without and with snapshots alternating on the same streams${result.warmupSeconds > 0 ? `, after a warm-up of ${result.warmupSeconds} s per command and variant on the shortest streams` : ""}.`,
    "",
    table(
      [
        "command",
        "events",
        ...result.stores.flatMap((store) => [`${store} without, p50 / p99 ms`, `${store} with snapshots`]),
        result.stores.length > 1 ? `grew to (${result.stores.join(" / ")})` : "grew to"
      ],
      [false, true, ...result.stores.flatMap(() => [true, true]), true],
      lines
    ),
    "",
    table(
      [
        "store",
        "command",
        `with snapshots, ${fmt(longest)} / ${fmt(shortest)} events, p50 / p99`,
        `with / without snapshots at ${fmt(shortest)} events, p50 / p99`,
        `without / with at ${fmt(longest)} events, p50`
      ],
      [false, false, true, true, true],
      ratios
    ),
    "",
    table(
      ["store", "streams for", "streams", "events", "seeded in s", "events/s", "first snapshots", "in s"],
      [false, false, true, true, true, true, true, true],
      result.seeding.map((seed) => [
        seed.store,
        seed.part === "latency" ? "latency" : "write comparison",
        fmt(seed.streams),
        fmt(seed.events),
        seed.seconds.toFixed(1),
        fmt(seed.events / seed.seconds),
        fmt(seed.primed),
        seed.primeSeconds.toFixed(1)
      ])
    ),
    "",
    "### Snapshot writes and the commands around them",
    "",
    `The snapshotting Deposit at c${writes.concurrency} (PostgreSQL: a pool of ${writes.poolSize}), with the policy of a snapshot every ${writes.every} folded events against one that never writes after the first (\`after.events\` of a billion), each on ${writes.streams} streams of ${fmt(writes.length)} events; each worker runs ${writes.every} commands on each of its own streams (no conflicts). On both sides every stream's tail after its snapshot runs through 1..${writes.every} events once per cell: the never-writing side's streams get a fresh snapshot before each cell (not timed), the writing side's start at tails spread over 1..${writes.every}, so each writes one snapshot per cell, at a different moment. Sides alternate within each repetition.`,
    "",
    table(
      ["store", "rep", "snapshots", "commands", "ops/s", "p50 ms", "p99 ms", "max ms", "written", "load"],
      [false, true, false, true, true, true, true, true, true, true],
      writes.runs.map((run) => [
        run.store,
        String(run.repetition),
        run.variant === "periodic" ? `every ${writes.every} events` : "never again",
        run.finished ? fmt(run.ops) : `${fmt(run.ops)} (**stopped** at ${writes.budgetSeconds} s)`,
        fmt(run.opsPerSec),
        ms(run.p50Ms),
        ms(run.p99Ms),
        ms(run.maxMs),
        fmt(run.snapshotsWritten),
        run.loadAverage.toFixed(1)
      ])
    ),
    "",
    ...writes.cells.map(
      (cell) =>
        `- ${cell.store}: p99 ${ms(cell.periodic.p99Ms)} ms with the writes, ${ms(cell.never.p99Ms)} ms without: **${change(cell.p99Ratio)}** (by repetition ${cell.p99RatioByRepetition.map(change).join(", ")}); p50 ${change(cell.p50Ratio)}; ${fmt(cell.periodic.opsPerSec)} vs ${fmt(cell.never.opsPerSec)} commands/s.`
    ),
    ""
  ]
}
