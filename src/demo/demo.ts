/**
 * The bank demo: opens accounts, runs random transfers from concurrent fibers
 * as two-stream commands with retries, then checks the invariants that
 * atomic multi-stream appends must keep. Given a database for the read model,
 * it also keeps the bank's balances in a table with the `Balances` projection
 * while the transfers run, and checks that table against the streams.
 */
import { inArray } from "drizzle-orm"
import { Clock, type Context, Effect, Either, Fiber, Random, Ref, Schedule, Schema } from "effect"
import { EventStore, execute, LogPosition, Projection, StoreError } from "../index.js"
import { AccountEvent, accountOf, accountStream, applyAccountEvent, initialState, Open, Transfer } from "./domain.js"
import { Balances, balances, createBalances } from "./readModel.js"

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
  /**
   * The database of the bank's read model (readModel.ts): the demo creates its
   * table `bank_balances`, runs the `Balances` projection while the transfers
   * run (the store must then provide `Projection.ReadModelStore`), shows its
   * lag, waits for it to catch up and checks the table against the streams.
   * Without it, no read model.
   */
  readonly readModel?: Context.Tag.Service<Projection.ReadModel>
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
  /** With a read model: the most events of the log the projection was seen behind while the transfers ran. */
  readonly projectionLagMax?: number
  readonly invariants: ReadonlyArray<{ readonly name: string; readonly ok: boolean; readonly detail: string }>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number)

interface Progress {
  readonly done: number
  readonly conflicts: number
  readonly retried: number
}

/** The projection's lag as last seen, and the most seen; undefined before it has a status. */
interface Lag {
  readonly current: number | undefined
  readonly max: number | undefined
}

const render = (progress: Progress, lag: Lag, total: number, seconds: number, interactive: boolean) => {
  const rate = seconds > 0 ? Math.round(progress.done / seconds) : 0
  const counts =
    `${progress.done}/${total} commands, ${rate}/s, ${progress.conflicts} conflicts, ${progress.retried} retries` +
    (lag.current === undefined ? "" : `, projection lag ${lag.current} events`)
  if (!interactive) return `progress: ${counts}`
  const width = 30
  const filled = Math.round((progress.done / Math.max(total, 1)) * width)
  return `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${counts}   `
}

/** How often the projection's lag is looked at while the transfers run. */
const lagSampling = "250 millis"

/**
 * The position of the last event readers can read now: the last one after
 * `after` (the last event the demo wrote), or `after` itself while it is not
 * readable yet (waiting for it then waits until it is).
 */
const readableHead = (after: LogPosition.LogPosition) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let position = after
    let head = after
    for (;;) {
      const page = yield* store.readAll({ after: position, maxCount: 1_000 })
      head = page.events.at(-1)?.position ?? head
      position = page.position
      if (page.caughtUp) return head
    }
  })

export const runDemo = (options: DemoOptions) =>
  Effect.gen(function* () {
    const runId = (yield* Random.nextIntBetween(0, 36 ** 5)).toString(36).padStart(5, "0")
    const accounts = Array.from({ length: options.accounts }, (_, i) => `demo-${runId}-${i}`)
    /** The position of the last event the demo wrote. */
    let lastWritten = LogPosition.start
    const wrote = (result: { readonly events: ReadonlyArray<{ readonly position: LogPosition.LogPosition }> }) => {
      for (const event of result.events) lastWritten = LogPosition.max(lastWritten, event.position)
    }

    const readModel = options.readModel
    // The read model's projection, running (in this scope) from before the first account opens.
    const projection =
      readModel === undefined
        ? undefined
        : yield* Effect.zipRight(
            Effect.tryPromise({
              try: () => readModel.db.execute(createBalances),
              catch: (cause) =>
                new StoreError({
                  operation: "demo",
                  message: `cannot create the read model's table bank_balances (${cause instanceof Error ? cause.message : String(cause)})`,
                  cause
                })
            }),
            Effect.forkScoped(Projection.run(Balances))
          )
    const lag = yield* Ref.make<Lag>({ current: undefined, max: undefined })
    const sampleLag = Projection.status.pipe(
      Effect.flatMap((statuses) => {
        const current = statuses.find((status) => status.name === Balances.name)?.lag
        return current === undefined
          ? Effect.void
          : Ref.update(lag, (seen) => ({ current, max: Math.max(seen.max ?? 0, current) }))
      }),
      // The lag is for show: a failed look is no reason to stop the transfers.
      Effect.ignore
    )

    options.print(`opening ${accounts.length} accounts with ${(options.initialBalance / 100).toFixed(2)} each`)
    // Opening with the deposit is one atomic append, so it can be retried after a
    // lost connection: AccountAlreadyOpen then means the first try committed.
    yield* Effect.forEach(
      accounts,
      (account) =>
        execute(Open, { account, owner: account, initialDeposit: options.initialBalance }).pipe(
          Effect.retry({ while: (error) => error._tag === "StoreError", times: 5 }),
          Effect.map(wrote),
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
    if (projection !== undefined) yield* sampleLag
    const started = yield* Clock.currentTimeMillis

    const lagSampler =
      projection === undefined ? undefined : yield* Effect.fork(Effect.repeat(sampleLag, Schedule.spaced(lagSampling)))
    const reporter = yield* Effect.fork(
      Effect.repeat(
        Effect.gen(function* () {
          const line = render(
            yield* Ref.get(progress),
            yield* Ref.get(lag),
            options.transfers,
            ((yield* Clock.currentTimeMillis) - started) / 1000,
            options.interactive
          )
          if (options.interactive) options.write(line)
          else options.print(line)
        }),
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
      if (Either.isRight(outcome)) wrote(outcome.right)
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
    if (lagSampler !== undefined) yield* Fiber.interrupt(lagSampler)
    yield* Fiber.interrupt(reporter)
    if (projection !== undefined) yield* sampleLag
    // The read model catches up while the streams are read back.
    const catchingUp = projection === undefined ? undefined : yield* Effect.fork(catchUp(projection, lastWritten))
    const final = yield* Ref.get(progress)
    const lagSeen = yield* Ref.get(lag)
    if (options.interactive) options.write(`${render(final, lagSeen, options.transfers, seconds, true)}\n`)

    options.print("checking invariants")
    const invariants = yield* checkInvariants(accounts, options.initialBalance)
    const readModelCheck =
      readModel === undefined || catchingUp === undefined
        ? []
        : [yield* checkReadModel(readModel, yield* Fiber.join(catchingUp), invariants.balances)]
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
      ...(lagSeen.max === undefined ? {} : { projectionLagMax: lagSeen.max }),
      invariants: [...invariants.checks, ...readModelCheck]
    } satisfies DemoReport
  }).pipe(Effect.scoped)

/** How long the read model may take to catch up with the last transfer before its check fails. */
const catchUpTimeout = "60 seconds"

/**
 * Waits for the projection to reach the readable head, and says how long that
 * took; or why it did not (it failed, or took too long).
 */
const catchUp = (projection: Fiber.Fiber<never, unknown>, lastWritten: LogPosition.LogPosition) =>
  Effect.gen(function* () {
    const started = performance.now()
    // Reads are safe to repeat after a lost connection.
    const head = yield* Effect.retry(readableHead(lastWritten), { times: 5 })
    const caughtUp = yield* Effect.either(
      // The projection's fiber ends only by failing: then there is nothing to wait for.
      Effect.raceFirst(Projection.waitFor(Balances, head, { timeout: catchUpTimeout }), Fiber.join(projection))
    )
    return Either.isRight(caughtUp)
      ? Either.right(performance.now() - started)
      : Either.left(caughtUp.left instanceof Error ? caughtUp.left.message : String(caughtUp.left))
  })

/** Compares the rows of `bank_balances` with the balances folded from the streams, once caught up. */
const checkReadModel = (
  readModel: Context.Tag.Service<Projection.ReadModel>,
  caughtUp: Either.Either<number, string>,
  folded: ReadonlyMap<string, number>
) =>
  Effect.gen(function* () {
    const name = "read model equals balances"
    if (Either.isLeft(caughtUp)) return { name, ok: false, detail: caughtUp.left }
    // Reads are safe to repeat after a lost connection.
    const rows = yield* Effect.tryPromise({
      try: () =>
        readModel.db
          .select()
          .from(balances)
          .where(inArray(balances.account, [...folded.keys()])),
      catch: (cause) =>
        new StoreError({
          operation: "demo",
          message: `cannot read the read model's table bank_balances (${cause instanceof Error ? cause.message : String(cause)})`,
          cause
        })
    }).pipe(Effect.retry({ times: 5 }))
    const stored = new Map(rows.map((row) => [row.account, row.cents]))
    const wrong = [...folded].flatMap(([account, balance]) => {
      const cents = stored.get(account)
      return cents === balance
        ? []
        : [`${account}: ${cents === undefined ? "no row" : cents} in bank_balances, ${balance} in its stream`]
    })
    return {
      name,
      ok: wrong.length === 0,
      detail:
        wrong.length === 0
          ? `${folded.size} rows, caught up ${(caughtUp.right / 1000).toFixed(1)} s after the last transfer`
          : wrong.slice(0, 3).join(", ")
    }
  })

/** Reads every account back through the store and checks what atomic transfers must preserve. */
const checkInvariants = (accounts: ReadonlyArray<string>, initialBalance: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const decode = Schema.decodeUnknownEither(AccountEvent)
    let total = 0
    let eventsWritten = 0
    const folded = new Map<string, number>()
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
      folded.set(account, balance)
      total += balance
      if (balance < 0) negative.push(`${account}: ${balance}`)
    }
    const expectedTotal = accounts.length * initialBalance
    const sample = (items: ReadonlyArray<string>) => items.slice(0, 3).join(", ")
    return {
      eventsWritten,
      balances: folded as ReadonlyMap<string, number>,
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
    ["latency p99", `${report.p99Millis.toFixed(1)} ms`],
    ...(report.projectionLagMax === undefined
      ? []
      : [["projection lag, most seen", `${report.projectionLagMax} events`] as [string, string]])
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = ["", "summary", ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`), "", "invariants"]
  const names = Math.max(24, ...report.invariants.map((check) => check.name.length))
  for (const check of report.invariants) {
    lines.push(`  ${check.ok ? "ok  " : "FAIL"}  ${check.name.padEnd(names)} ${check.detail}`)
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
