/**
 * The bank demo: opens accounts, runs random transfers from concurrent fibers
 * as two-stream commands with retries, then checks the invariants that
 * atomic multi-stream appends must keep.
 */
import { Clock, Effect, Either, Fiber, Random, Ref, Schedule, Schema } from "effect"
import { EventStore, execute } from "eventcore"
import { AccountEvent, accountOf, accountStream, applyAccountEvent, initialState, Open, Transfer } from "./domain.js"

export interface DemoOptions {
  readonly accounts: number
  readonly transfers: number
  readonly concurrency: number
  /** Cents each account starts with. */
  readonly initialBalance: number
  /** Redraws one progress line in place (a terminal) instead of printing periodic lines. */
  readonly interactive: boolean
  readonly print: (line: string) => void
  /** Writes without a newline (the interactive progress line). */
  readonly write: (text: string) => void
}

export interface DemoReport {
  readonly succeeded: number
  readonly rejected: number
  readonly failed: number
  readonly conflictsRetried: number
  readonly eventsWritten: number
  readonly seconds: number
  readonly p50Millis: number
  readonly p99Millis: number
  readonly invariants: ReadonlyArray<{ readonly name: string; readonly ok: boolean; readonly detail: string }>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number)

interface Progress {
  readonly done: number
  readonly conflicts: number
  readonly retried: number
}

const render = (progress: Progress, total: number, seconds: number, interactive: boolean) => {
  const rate = seconds > 0 ? Math.round(progress.done / seconds) : 0
  const counts = `${progress.done}/${total} commands, ${rate}/s, ${progress.conflicts} conflicts, ${progress.retried} retries`
  if (!interactive) return `progress: ${counts}`
  const width = 30
  const filled = Math.round((progress.done / Math.max(total, 1)) * width)
  return `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${counts}   `
}

export const runDemo = (options: DemoOptions) =>
  Effect.gen(function* () {
    const runId = (yield* Random.nextIntBetween(0, 36 ** 5)).toString(36).padStart(5, "0")
    const accounts = Array.from({ length: options.accounts }, (_, i) => `demo-${runId}-${i}`)

    options.print(`opening ${accounts.length} accounts with ${(options.initialBalance / 100).toFixed(2)} each`)
    // Opening with the deposit is one atomic append, so it can be retried after a
    // lost connection: AccountAlreadyOpen then means the first try committed.
    yield* Effect.forEach(
      accounts,
      (account) =>
        execute(Open, { account, owner: account, initialDeposit: options.initialBalance }).pipe(
          Effect.retry({ while: (error) => error._tag === "StoreError", times: 5 }),
          Effect.catchTag("AccountAlreadyOpen", () => Effect.void)
        ),
      { concurrency: options.concurrency, discard: true }
    )

    options.print(
      `running ${options.transfers} transfers from ${options.concurrency} concurrent fibers (two-stream commands, retried on conflict)`
    )
    const progress = yield* Ref.make<Progress>({ done: 0, conflicts: 0, retried: 0 })
    const latencies: Array<number> = []
    const retry = Schedule.exponential("2 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(12)))
    const started = yield* Clock.currentTimeMillis

    const reporter = yield* Effect.fork(
      Effect.repeat(
        Effect.flatMap(Ref.get(progress), (p) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              const line = render(p, options.transfers, (now - started) / 1000, options.interactive)
              if (options.interactive) options.write(line)
              else options.print(line)
            })
          )
        ),
        Schedule.spaced(options.interactive ? "100 millis" : "1 second")
      )
    )

    const oneTransfer = Effect.gen(function* () {
      const from = accounts[yield* Random.nextIntBetween(0, accounts.length)] as string
      const offset = yield* Random.nextIntBetween(1, accounts.length)
      const to = accounts[(accounts.indexOf(from) + offset) % accounts.length] as string
      const amount = yield* Random.nextIntBetween(1, Math.floor(options.initialBalance * 0.8))
      const begin = performance.now()
      const outcome = yield* Effect.either(execute(Transfer, { from, to, amount }, { retry }))
      latencies.push(performance.now() - begin)
      const result = Either.isRight(outcome)
        ? ("succeeded" as const)
        : outcome.left._tag === "InsufficientFunds"
          ? ("rejected" as const)
          : ("failed" as const)
      const retried = Either.isRight(outcome) ? outcome.right.attempts - 1 : 0
      const conflicts = retried + (Either.isLeft(outcome) && outcome.left._tag === "VersionConflict" ? 1 : 0)
      yield* Ref.update(progress, (p) => ({
        done: p.done + 1,
        conflicts: p.conflicts + conflicts,
        retried: p.retried + retried
      }))
      return result
    })

    const outcomes = yield* Effect.forEach(Array.from({ length: options.transfers }), () => oneTransfer, {
      concurrency: options.concurrency
    })
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    yield* Fiber.interrupt(reporter)
    const final = yield* Ref.get(progress)
    if (options.interactive) options.write(`${render(final, options.transfers, seconds, true)}\n`)

    options.print("checking invariants")
    const invariants = yield* checkInvariants(accounts, options.initialBalance)
    const sorted = latencies.sort((a, b) => a - b)
    return {
      succeeded: outcomes.filter((o) => o === "succeeded").length,
      rejected: outcomes.filter((o) => o === "rejected").length,
      failed: outcomes.filter((o) => o === "failed").length,
      conflictsRetried: final.retried,
      eventsWritten: invariants.eventsWritten,
      seconds,
      p50Millis: percentile(sorted, 50),
      p99Millis: percentile(sorted, 99),
      invariants: invariants.checks
    } satisfies DemoReport
  })

/** Reads every account back through the store and checks what atomic transfers must preserve. */
const checkInvariants = (accounts: ReadonlyArray<string>, initialBalance: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const decode = Schema.decodeUnknownEither(AccountEvent)
    let total = 0
    let eventsWritten = 0
    const negative: Array<string> = []
    const gaps: Array<string> = []
    const undecodable: Array<string> = []
    for (const account of accounts) {
      // Reads are safe to repeat after a lost connection.
      const read = yield* store
        .readStream(accountStream(account))
        .pipe(Effect.retry({ while: (error) => error._tag === "StoreError", times: 5 }))
      eventsWritten += read.events.length
      let state = initialState
      read.events.forEach((recorded, i) => {
        if (recorded.streamVersion !== i + 1) gaps.push(`${account}@${recorded.streamVersion}`)
        const event = decode({ ...(recorded.data as object), _tag: recorded.eventType })
        if (Either.isLeft(event)) undecodable.push(`${account}@${recorded.streamVersion}`)
        else state = applyAccountEvent(state, event.right, recorded)
      })
      if (read.version !== read.events.length)
        gaps.push(`${account}: version ${read.version}, ${read.events.length} events`)
      const balance = accountOf(state, account).balance
      total += balance
      if (balance < 0) negative.push(`${account}: ${balance}`)
    }
    const expectedTotal = accounts.length * initialBalance
    const sample = (items: ReadonlyArray<string>) => items.slice(0, 3).join(", ")
    return {
      eventsWritten,
      checks: [
        {
          name: "total money unchanged",
          ok: total === expectedTotal,
          detail: `${total} cents, expected ${expectedTotal}`
        },
        {
          name: "no negative balance",
          ok: negative.length === 0,
          detail: negative.length === 0 ? "all >= 0" : sample(negative)
        },
        {
          name: "versions gap-free",
          ok: gaps.length === 0,
          detail: gaps.length === 0 ? `${eventsWritten} events in ${accounts.length} streams` : sample(gaps)
        },
        {
          name: "every event decodes",
          ok: undecodable.length === 0,
          detail: undecodable.length === 0 ? `${eventsWritten} decoded` : sample(undecodable)
        }
      ]
    }
  })

/** The summary table printed after a run. */
export const formatReport = (report: DemoReport, backend: string): ReadonlyArray<string> => {
  const total = report.succeeded + report.rejected + report.failed
  const rows: Array<[string, string]> = [
    ["store", backend],
    ["commands succeeded", String(report.succeeded)],
    ["rejected by rule (insufficient funds)", String(report.rejected)],
    ["failed (retries exhausted or errors)", String(report.failed)],
    ["conflicts retried", String(report.conflictsRetried)],
    ["events written", String(report.eventsWritten)],
    ["commands/s", (total / Math.max(report.seconds, 0.001)).toFixed(0)],
    ["latency p50", `${report.p50Millis.toFixed(1)} ms`],
    ["latency p99", `${report.p99Millis.toFixed(1)} ms`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = ["", "summary", ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`), "", "invariants"]
  for (const check of report.invariants) {
    lines.push(`  ${check.ok ? "ok  " : "FAIL"}  ${check.name.padEnd(24)} ${check.detail}`)
  }
  const ok = report.invariants.every((check) => check.ok)
  lines.push("", ok ? "all invariants hold" : "INVARIANTS BROKEN")
  return lines
}

export const defaultDemoOptions = {
  accounts: 20,
  transfers: 1_000,
  concurrency: 8,
  initialBalance: 100_000
} as const

export const demoPassed = (report: DemoReport) => report.invariants.every((check) => check.ok)
