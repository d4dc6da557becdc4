/**
 * `npm run soak`: the bank demo, round after round for 10 minutes (or
 * SOAK_SECONDS), on PostgreSQL (DATABASE_URL, default the local server), while
 * a second connection terminates a random store backend every 0.2-1 s (or
 * SOAK_TERMINATE_MS, a range in milliseconds such as `50-300`). A round is
 * 2,000 transfers (or SOAK_TRANSFERS: a few dozen make the short rounds of a CI
 * run). Every round must pass the invariant check, and the process must not
 * exit on an unhandled rejection. Creates and drops a database of its own.
 */
import { Effect, Fiber, Logger, LogLevel, Random, Schedule } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { formatReport, runDemo } from "../../src/demo/demo.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const seconds = Number(process.env.SOAK_SECONDS ?? 600)
/** The pause between two terminations: a random whole number of milliseconds in this range. */
const pause = (() => {
  const text = process.env.SOAK_TERMINATE_MS ?? "200-1000"
  const [min = Number.NaN, max = Number.NaN] = text.split("-").map(Number)
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || min > max) {
    throw new Error(`SOAK_TERMINATE_MS must be a range of milliseconds such as 50-300, not "${text}"`)
  }
  return { min, max }
})()
const transfers = (() => {
  const text = process.env.SOAK_TRANSFERS ?? "2000"
  const count = Number(text)
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`SOAK_TRANSFERS must be a whole number of transfers per round such as 50, not "${text}"`)
  }
  return count
})()
const database = `eventcore_soak_${process.pid}`
const databaseUrl = Object.assign(new URL(url), { pathname: `/${database}` }).toString()

const admin = postgres(url, { max: 1, onnotice: () => {} })
await admin.unsafe(`create database "${database}"`)
const killer = postgres(databaseUrl, { max: 1, onnotice: () => {} })

const terminateOne = Effect.promise(
  () => killer`
    select pg_terminate_backend(pid) as terminated from pg_stat_activity
    where datname = ${database} and application_name = 'eventcore' and pid <> pg_backend_pid()
    order by random() limit 1`
).pipe(Effect.map((rows) => rows.length))

const program = Effect.gen(function* () {
  let terminations = 0
  const terminator = yield* Effect.fork(
    Effect.repeat(
      Effect.flatMap(Random.nextIntBetween(pause.min, pause.max + 1), (ms) =>
        Effect.zipRight(
          Effect.sleep(ms),
          Effect.map(terminateOne, (n) => {
            terminations += n
          })
        )
      ),
      Schedule.forever
    )
  )
  const started = Date.now()
  const totals = { rounds: 0, succeeded: 0, rejected: 0, failed: 0, retried: 0, events: 0, broken: 0 }
  while (Date.now() - started < seconds * 1000) {
    const report = yield* runDemo({
      accounts: 20,
      transfers,
      concurrency: 8,
      initialBalance: 100_000,
      interactive: false,
      print: () => {},
      write: () => {}
    })
    totals.rounds++
    totals.succeeded += report.succeeded
    totals.rejected += report.rejected
    totals.failed += report.failed
    totals.retried += report.conflictsRetried
    totals.events += report.eventsWritten
    const ok = report.invariants.every((check) => check.ok)
    if (!ok) {
      totals.broken++
      for (const line of formatReport(report, "PostgreSQL")) console.log(line)
    }
    console.log(
      `round ${totals.rounds}: ${report.succeeded} ok, ${report.rejected} rejected, ${report.failed} failed, ` +
        `${report.conflictsRetried} retried, invariants ${ok ? "hold" : "BROKEN"}; ${terminations} backends terminated so far`
    )
  }
  yield* Fiber.interrupt(terminator)
  const elapsed = (Date.now() - started) / 1000
  console.log(
    `soak: ${elapsed.toFixed(0)} s, ${totals.rounds} rounds, ${totals.succeeded} transfers succeeded, ` +
      `${totals.rejected} rejected by rule, ${totals.failed} failed (connection terminated or retries exhausted), ` +
      `${totals.retried} conflicts retried, ${totals.events} events, ${terminations} backends terminated, ` +
      `${totals.broken} rounds with broken invariants`
  )
  return totals.broken === 0
})

try {
  const ok = await Effect.runPromise(
    program.pipe(
      Effect.provide(
        PostgresEventStore.layer({
          url: databaseUrl,
          autoMigrate: true,
          maxConnections: 8,
          acquireTimeout: "10 seconds"
        })
      ),
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
  )
  process.exitCode = ok ? 0 : 1
} finally {
  await killer.end()
  await admin.unsafe(`drop database if exists "${database}" with (force)`)
  await admin.end()
}
