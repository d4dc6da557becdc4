/**
 * W8: catching up on the global log. `streamAll` over a log of
 * `options.w8Events` events (1,000,000 by default) against a raw postgres.js
 * keyset scan of the same table in the same order, each in a child process of
 * its own (long-stream-child.ts, the machinery of W7), so that the store's
 * peak RSS is its alone and both read in the same conditions. The two are
 * interleaved over the repetitions (store first in odd ones, raw first in even
 * ones) and compared by their medians.
 *
 * The log is seeded in one database of its own: statements of 10,000 events
 * each (each its own transaction, so the log spans many transaction ids), the
 * events spread round-robin over 1,000 streams, ~200 bytes of JSON each.
 *
 * A reader that has not finished after `options.w8BudgetSeconds` is stopped,
 * its sessions on the server ended, and its rate taken over what it read (a
 * store whose pages cost more as the log grows would otherwise hold the bench
 * for hours).
 */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { type ReaderResult, runReader } from "./long-stream.js"

/** Streams the log's events are spread over. */
export const logStreams = 1000
const streams = logStreams
/** Events per seeding transaction: 10,000 (100 transactions for a million), fewer for a small log. */
const chunkOf = (events: number) => Math.max(1000, Math.min(10_000, Math.ceil(events / 100)))

export interface CatchUpRun extends ReaderResult {
  readonly system: "postgres" | "raw"
  readonly repetition: number
  /** Peak RSS over the first and the second half of the events read: flat memory keeps them level. */
  readonly firstHalfPeakRssBytes: number
  readonly secondHalfPeakRssBytes: number
}

export interface CatchUpResult {
  readonly events: number
  readonly pageSize: number
  readonly streams: number
  /** Transactions the log was written in. */
  readonly transactions: number
  readonly seedSeconds: number
  readonly runs: ReadonlyArray<CatchUpRun>
  /** Medians over the repetitions. */
  readonly storeEventsPerSec: number
  readonly rawEventsPerSec: number
  /** The store's median over raw's median. */
  readonly ratio: number
  /** The ratio within each repetition (the two ran back to back). */
  readonly ratioByRepetition: ReadonlyArray<number>
  /** The store's run with the highest peak RSS (the child's own sampling, or GNU time's account if higher). */
  readonly storePeak: CatchUpRun
}

const halves = (result: ReaderResult) => {
  const half = result.events / 2
  const peak = (entries: ReadonlyArray<readonly [number, number]>) => Math.max(0, ...entries.map(([, rss]) => rss))
  // An entry covers the events read since the one before: it belongs to the half it ends in.
  return {
    firstHalfPeakRssBytes: peak(result.rssTrace.filter(([events]) => events <= half)),
    secondHalfPeakRssBytes: peak(result.rssTrace.filter(([events]) => events > half))
  }
}

/**
 * Seeds the migrated database at `url` with W8's log: `events` events of ~200 bytes of JSON, round-robin
 * over 1,000 streams, one statement (its own transaction) per `chunkOf(events)` events, then vacuums and
 * analyzes the table. W12 seeds its log on the primary the same way.
 */
export const seedLog = async (
  url: string,
  events: number,
  label: string,
  progress: Progress
): Promise<{ readonly transactions: number; readonly seedSeconds: number }> => {
  const seeding = performance.now()
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  let transactions = 0
  const chunk = chunkOf(events)
  try {
    for (let first = 1; first <= events; first += chunk) {
      progress.status(`${label}: seeding the log, ${(first - 1).toLocaleString("en")} / ${events.toLocaleString("en")}`)
      // Event g goes to stream (g - 1) % streams at version (g - 1) / streams + 1: each stream's versions
      // continue from one statement to the next, as the trigger requires.
      await sql`
        insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
        select gen_random_uuid(), 'log-' || ((g - 1) % ${streams}), (g - 1) / ${streams} + 1, 'Recorded',
               jsonb_build_object('n', g, 'note', repeat('x', 160), 'ok', true)
        from generate_series(${first}::int, ${Math.min(events, first + chunk - 1)}::int) g`
      transactions += 1
    }
    await sql`vacuum analyze eventcore.events`
  } finally {
    await sql.end({ timeout: 5 })
  }
  const seedSeconds = (performance.now() - seeding) / 1000
  progress.log(
    `${label}: seeded ${events.toLocaleString("en")} events (${transactions} transactions, ${Math.min(streams, events)} streams) in ${seedSeconds.toFixed(1)} s`
  )
  return { transactions, seedSeconds }
}

/** Seeds a database of its own with the log, reads it `options.repetitions` times each way, drops the database. */
export const catchUp = async (
  admin: Admin,
  database: string,
  options: Options,
  progress: Progress
): Promise<CatchUpResult> => {
  const events = options.w8Events
  const pageSize = options.w8PageSize
  const url = await admin.create(database)
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    const { transactions, seedSeconds } = await seedLog(url, events, "W8", progress)

    const runs: Array<CatchUpRun> = []
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      const order = repetition % 2 === 1 ? (["postgres", "raw"] as const) : (["raw", "postgres"] as const)
      for (const system of order) {
        const label = `W8 ${system === "postgres" ? "streamAll" : "raw keyset scan"} rep ${repetition}/${options.repetitions}`
        const result = await runReader(
          ["--read", "log", "--system", system, "--url", url, "--page-size", `${pageSize}`],
          (n) => progress.status(`${label}: ${n.toLocaleString("en")} / ${events.toLocaleString("en")}`),
          options.w8BudgetSeconds
        )
        if (!result.finished) await admin.terminate(database)
        else if (result.events !== events) throw new Error(`${label} read ${result.events} events of ${events}`)
        const run: CatchUpRun = { ...result, system, repetition, ...halves(result) }
        runs.push(run)
        progress.log(
          `${label}: ${Math.round(result.eventsPerSec).toLocaleString("en")} events/s, ` +
            `peak RSS ${(Math.max(result.peakRssBytes, result.maxRssBytes ?? 0) / 2 ** 20).toFixed(0)} MB` +
            (result.finished
              ? ""
              : ` — STOPPED after ${options.w8BudgetSeconds} s, ${result.events.toLocaleString("en")} of ${events.toLocaleString("en")} events read`)
        )
      }
    }
    const of = (system: "postgres" | "raw") => runs.filter((run) => run.system === system)
    const storeEventsPerSec = median(of("postgres").map((run) => run.eventsPerSec))
    const rawEventsPerSec = median(of("raw").map((run) => run.eventsPerSec))
    const peakOf = (run: CatchUpRun) => Math.max(run.peakRssBytes, run.maxRssBytes ?? 0)
    return {
      events,
      pageSize,
      streams: Math.min(streams, events),
      transactions,
      seedSeconds,
      runs,
      storeEventsPerSec,
      rawEventsPerSec,
      ratio: storeEventsPerSec / rawEventsPerSec,
      ratioByRepetition: of("postgres").flatMap((store) => {
        const raw = of("raw").find((run) => run.repetition === store.repetition)
        return raw === undefined ? [] : [store.eventsPerSec / raw.eventsPerSec]
      }),
      storePeak: of("postgres").reduce((a, b) => (peakOf(b) > peakOf(a) ? b : a))
    }
  } finally {
    await admin.drop(database)
  }
}
