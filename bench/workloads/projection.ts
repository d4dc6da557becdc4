/**
 * W11: projections, on databases of their own.
 *
 * Throughput: a log of `options.w11Events` account events (100,000 by
 * default) over `options.w11Accounts` account streams, seeded by raw SQL as
 * W8 seeds its log, projected from the start into `bank_balances` until
 * caught up, three ways side by side (sides rotating within each repetition):
 * - "rows": the bank's `Balances` (src/demo/readModel.ts), a row projection:
 *   per batch one select of the touched rows, a fold in memory, one upsert,
 *   with the checkpoint in the batch's transaction; in batches of each of
 *   `options.w11BatchSizes`;
 * - "per-event": the same read model as `Projection.make({ handle })`, one
 *   Drizzle upsert per event (test/support/balances.ts's `upsertBalance`), at
 *   its default batch size (100), once per repetition;
 * - "raw, batched": a raw postgres.js loop doing the row projection's work per
 *   page: read the page (same filter, same order, below the oldest running
 *   transaction as the store reads), then in one transaction one select of the
 *   touched rows, the fold in memory, one multi-row upsert and the
 *   compare-and-set of a checkpoint row in `eventcore.projections`;
 * - the row projection over the same log with personal values, which its reads
 *   decrypt (issue 29, `PersonalSide`), each in a database of its own.
 * Projections are timed until `Projection.waitFor` sees the checkpoint at the
 * head of the log. Before every run the read model is emptied, the checkpoint
 * moved back to the start and both tables vacuumed; after it, the read model
 * must hold the fold of the log. Then one more run of the row projection
 * through a counting proxy (lib/wire.ts): round trips per 1,000 events.
 * On PGlite (when among `--systems`, not in `--quick`): the row projection and
 * the per-event form over a log of its own (at most 20,000 events).
 *
 * Lag: W1 at `options.liveWriters` writers (one event to a new stream per
 * append) through one store, in `options.repetitions` pairs of phases of
 * `options.w11Seconds`: one while a row projection of those events (one row
 * per event into `bench_w11_orders`) runs on the same store in this process,
 * one with it stopped, their order alternating. Before a phase with it, the
 * projection is started and waited for until it has projected the whole log
 * (no backlog of the phase without is projected while measured); then the
 * warm-up. Every 50 ms a connection of its own reads the projection's
 * checkpoint (one row: next to nothing for the server, whichever phase);
 * a sample's lag is the appends acknowledged by then whose position is past
 * that checkpoint. After a phase with the projection, the time from its last
 * acknowledged append to `Projection.waitFor` seeing the projection past it.
 * At the end, once caught up, the read model must hold a row per event.
 */
import os from "node:os"
import { performance } from "node:perf_hooks"
import { PGlite } from "@electric-sql/pglite"
import { sql as drizzleSql } from "drizzle-orm"
import { integer, pgTable, text, uuid } from "drizzle-orm/pg-core"
import { drizzle } from "drizzle-orm/postgres-js"
import { Cause, type Duration, Effect, Fiber, Layer, Logger, LogLevel, ManagedRuntime, Schema } from "effect"
import {
  EventStore,
  LogPosition,
  PersonalData,
  PgliteEventStore,
  PostgresEventStore,
  Projection,
  StreamId,
  StreamWrites
} from "eventcore"
import postgres from "postgres"
import { AccountEvent } from "../../src/demo/domain.js"
import { Balances, balances, createBalances } from "../../src/demo/readModel.js"
import { run, type Sample, succeeded } from "../lib/measure.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import { Latencies, median } from "../lib/stats.js"
import { wireCounter } from "../lib/wire.js"
import { benchEvent, freshStreamId } from "./payload.js"

/** Warnings (a projection re-owning its name, say) would scribble over the progress line. */
const quiet = Logger.minimumLogLevel(LogLevel.None)

const storeRuntime = (url: string, maxConnections: number) =>
  ManagedRuntime.make(Layer.merge(PostgresEventStore.layer({ url, maxConnections }), quiet))

type StoreRuntime = ManagedRuntime.ManagedRuntime<EventStore.EventStore | Projection.ReadModelStore, unknown>

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The position of the last event of the log (nothing writes while W11's throughput runs). */
export const headOf = async (sql: postgres.Sql): Promise<LogPosition.LogPosition> => {
  const [row] = await sql<[{ tx: string; gp: string }?]>`
    select transaction_id::text as tx, global_position::text as gp from eventcore.events
    order by transaction_id desc, global_position desc limit 1`
  return row === undefined ? LogPosition.start : LogPosition.make(BigInt(row.tx), BigInt(row.gp))
}

// ---------------------------------------------------------------------------------------------
// Throughput

/**
 * The row projection over a log of personal data (issue 29): W11's log, the same events with personal values
 * the store encrypts (subject: the account), each in a database of its own. "rows-names": the holder's name of
 * each AccountOpened, the bank's one personal value (1% of the events, and all of them in the log's first
 * pages: the log opens every account before it moves money); "rows-all": one value in every event, the amounts
 * of deposits and transfers too (each page of the log opens a value per event: the most a read opens).
 */
export type PersonalSide = "rows-names" | "rows-all"

export type ThroughputSide = "rows" | "per-event" | "raw-batched" | PersonalSide

export const personalSides: ReadonlyArray<PersonalSide> = ["rows-names", "rows-all"]

export const sideLabel: Record<ThroughputSide, string> = {
  rows: "row projection",
  "per-event": "per-event form",
  "raw-batched": "raw, batched",
  "rows-names": "row projection, names personal",
  "rows-all": "row projection, every event personal"
}

export interface ThroughputRun {
  readonly side: ThroughputSide
  readonly batchSize: number
  readonly repetition: number
  /** Events projected: all of them, or as many as the checkpoint had passed when the run was stopped. */
  readonly events: number
  readonly seconds: number
  readonly eventsPerSec: number
  /** False when the run was stopped at the time budget. */
  readonly finished: boolean
  readonly loadAverage: number
}

export interface ThroughputCell {
  readonly batchSize: number
  /** Medians over the repetitions, events/s. */
  readonly rows: number
  readonly rawBatched: number | null
  /** Rows over raw, batched: the target's ratio (>= 0.8). */
  readonly ratio: number | null
  readonly ratioByRepetition: ReadonlyArray<number>
  /** The per-event form (at its own batch size) and rows over it (target >= 10). */
  readonly perEvent: number | null
  readonly ratioPerEvent: number | null
  /** The row projection over each log of personal data, and its ratio to the plain log's (within each repetition too). */
  readonly personal: ReadonlyArray<{
    readonly side: PersonalSide
    readonly eventsPerSec: number
    readonly ratio: number
    readonly ratioByRepetition: ReadonlyArray<number>
  }>
}

/** A log as the projections read it: its events, how many hold personal values, and the events table's size. */
export interface LogSize {
  readonly side: "rows" | PersonalSide
  readonly events: number
  readonly personalEvents: number
  readonly bytes: number
}

export interface RoundTripCount {
  readonly batchSize: number
  readonly events: number
  /** On the wire, through the counting proxy, all connections of the store's pool. */
  readonly roundTrips: number
  /** Of which on the projection's own session: its batches' transactions. */
  readonly sessionRoundTrips: number
  readonly syncs: number
  readonly per1000: number
  readonly sessionPer1000: number
  readonly syncsPer1000: number
}

export interface PgliteThroughput {
  readonly events: number
  readonly accounts: number
  readonly runs: ReadonlyArray<ThroughputRun>
  readonly rows: number
  readonly perEvent: number
}

export interface ThroughputResult {
  readonly events: number
  readonly accounts: number
  readonly transactions: number
  readonly seedSeconds: number
  readonly budgetSeconds: number
  readonly runs: ReadonlyArray<ThroughputRun>
  readonly cells: ReadonlyArray<ThroughputCell>
  readonly roundTrips: RoundTripCount | undefined
  readonly pglite: PgliteThroughput | undefined
  /** The plain log and each log of personal data, and the seconds each personal one took to seed. */
  readonly logs: ReadonlyArray<LogSize & { readonly seedSeconds: number }>
}

/** The raw loop's checkpoint, a row of eventcore.projections like the projections'. */
export const rawName = "bench-raw-balances"
export const eventTypes = ["AccountOpened", "MoneyDeposited", "TransferSent", "TransferReceived"]
export const prefix = "account-"
/** Events per seeding transaction, as W8's. */
const chunkOf = (events: number) => Math.max(1000, Math.min(10_000, Math.ceil(events / 100)))

const seedStatement = (first: number, last: number, accounts: number) => `
  insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
  select gen_random_uuid(), 'account-a' || ((g - 1) % ${accounts}), (g - 1) / ${accounts} + 1,
         case when (g - 1) / ${accounts} = 0 then 'AccountOpened'
              when g % 3 = 0 then 'MoneyDeposited' when g % 3 = 1 then 'TransferSent' else 'TransferReceived' end,
         case when (g - 1) / ${accounts} = 0 then jsonb_build_object('owner', 'owner of a' || ((g - 1) % ${accounts}))
              when g % 3 = 0 then jsonb_build_object('amount', 100 + g % 1000)
              when g % 3 = 1 then jsonb_build_object('to', 'a' || (g % ${accounts}), 'amount', 1 + g % 100)
              else jsonb_build_object('from', 'a' || (g % ${accounts}), 'amount', 1 + g % 100) end
  from generate_series(${first}::int, ${last}::int) g`

/**
 * The log: event g goes to account (g - 1) % accounts at version (g - 1) / accounts + 1: an
 * AccountOpened first, then deposits and transfers in and out by turns.
 */
export const seedLog = async (
  execute: (statement: string) => Promise<unknown>,
  events: number,
  accounts: number,
  progress: Progress
) => {
  const chunk = chunkOf(events)
  let transactions = 0
  for (let first = 1; first <= events; first += chunk) {
    progress.status(`W11: seeding the log, ${(first - 1).toLocaleString("en")} / ${events.toLocaleString("en")}`)
    await execute(seedStatement(first, Math.min(events, first + chunk - 1), accounts))
    transactions += 1
  }
  await execute("vacuum analyze eventcore.events")
  return transactions
}

/** Event g of the log, as `seedStatement` writes it: its account, version, type and data. */
const accountEvent = (g: number, accounts: number) => {
  const account = `a${(g - 1) % accounts}`
  const version = Math.floor((g - 1) / accounts) + 1
  const other = `a${g % accounts}`
  if (version === 1) return { account, version, type: "AccountOpened", data: { owner: `owner of ${account}` } }
  if (g % 3 === 0) return { account, version, type: "MoneyDeposited", data: { amount: 100 + (g % 1000) } }
  if (g % 3 === 1) return { account, version, type: "TransferSent", data: { to: other, amount: 1 + (g % 100) } }
  return { account, version, type: "TransferReceived", data: { from: other, amount: 1 + (g % 100) } }
}

/** Events `first..last` appended through the store, in one append, their personal values marked for `side`. */
const appendPersonal = (first: number, last: number, accounts: number, side: PersonalSide) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let writes = StreamWrites.empty
    const declared = new Set<string>()
    for (let g = first; g <= last; g++) {
      const { account, version, type, data } = accountEvent(g, accounts)
      const streamId = StreamId.unsafeMake(`${prefix}${account}`)
      if (!declared.has(streamId)) {
        declared.add(streamId)
        writes = yield* StreamWrites.expect(writes, streamId, version === 1 ? "no_stream" : version - 1)
      }
      const personal =
        "owner" in data
          ? { owner: PersonalData.value(account, data.owner) }
          : side === "rows-all"
            ? { ...data, amount: PersonalData.value(account, data.amount) }
            : data
      writes = yield* StreamWrites.append(writes, { streamId, eventType: type, data: personal })
    }
    yield* store.append(writes)
  })

/**
 * W11's log with personal values (`PersonalSide`): the transactions that hold any go through the store's
 * append, which encrypts them (and makes each account's key on its first), the others through
 * `seedStatement` as `seedLog` writes them.
 */
const seedPersonalLog = async (
  runtime: StoreRuntime,
  sql: postgres.Sql,
  side: PersonalSide,
  events: number,
  accounts: number,
  progress: Progress
) => {
  const chunk = chunkOf(events)
  for (let first = 1; first <= events; first += chunk) {
    progress.status(
      `W11: seeding the log of ${sideLabel[side]}, ${(first - 1).toLocaleString("en")} / ${events.toLocaleString("en")}`
    )
    const last = Math.min(events, first + chunk - 1)
    if (side === "rows-all" || first <= accounts) await runtime.runPromise(appendPersonal(first, last, accounts, side))
    else await sql.unsafe(seedStatement(first, last, accounts))
  }
  await sql`vacuum analyze eventcore.events`
}

/** The log's size, and how many of its events hold personal values (their subjects in the metadata). */
const logSize = async (sql: postgres.Sql, side: LogSize["side"]): Promise<LogSize> => {
  const [row] = await sql<[{ events: number; personal: number; bytes: string }]>`
    select count(*)::int as events, (count(*) filter (where metadata ? ${PersonalData.subjectsMetadataKey}))::int as personal,
           pg_total_relation_size('eventcore.events')::text as bytes
    from eventcore.events`
  return { side, events: row.events, personalEvents: row.personal, bytes: Number(row.bytes) }
}

interface Fold {
  readonly accounts: number
  readonly cents: string
}

const expectedFoldQuery = `
  select count(distinct stream_id)::int as accounts,
         coalesce(sum(case event_type when 'AccountOpened' then 0 when 'TransferSent' then -(data->>'amount')::int
                                      else (data->>'amount')::int end), 0)::text as cents
  from eventcore.events where starts_with(stream_id, '${prefix}')`
const readModelFoldQuery = "select count(*)::int as accounts, coalesce(sum(cents), 0)::text as cents from bank_balances"

/** The balances the log folds to: how many accounts, and the sum of their cents. */
export const expectedFold = async (sql: postgres.Sql): Promise<Fold> => (await sql.unsafe<[Fold]>(expectedFoldQuery))[0]

export const readModelFold = async (sql: postgres.Sql): Promise<Fold> =>
  (await sql.unsafe<[Fold]>(readModelFoldQuery))[0]

export interface RawRow {
  readonly tx: string
  readonly gp: string
  readonly stream_id: string
  readonly event_type: string
  readonly data: { readonly amount?: number }
}

/** What an account's event does to its balance (the projection's `change`). */
export const change = (row: RawRow): number =>
  row.event_type === "AccountOpened"
    ? 0
    : row.event_type === "TransferSent"
      ? -(row.data.amount as number)
      : (row.data.amount as number)

/**
 * The raw baseline of the row projection: reads a page after its position (the projection's filter,
 * below the oldest running transaction), then in one transaction selects the rows the page touches,
 * folds the page into them in memory, writes them in one multi-row upsert and moves its checkpoint
 * by compare-and-set (the upsert and the compare-and-set pipelined); until it has passed `head` or
 * `deadline`.
 */
export const rawBatchedLoop = async (
  sql: postgres.Sql,
  options: { readonly batchSize: number; readonly head: LogPosition.LogPosition; readonly deadline: number }
): Promise<{ events: number; finished: boolean }> => {
  const owner = `${os.hostname()}/${process.pid}/bench`
  let position = LogPosition.start
  let events = 0
  while (position < options.head) {
    if (performance.now() > options.deadline) return { events, finished: false }
    const { transaction, position: global } = LogPosition.parts(position)
    const rows = await sql<Array<RawRow>>`
      select e.transaction_id::text as tx, e.global_position::text as gp, e.stream_id, e.event_type, e.data
      from eventcore.events e
      where (e.transaction_id, e.global_position) > (${transaction.toString()}::text::xid8, ${global.toString()}::bigint)
        and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
        and e.event_type = any(${eventTypes}) and starts_with(e.stream_id, ${prefix})
      order by e.transaction_id, e.global_position limit ${options.batchSize}`
    const last = rows.at(-1)
    if (last === undefined) {
      // A transaction elsewhere on the server holds the horizon back: as the store, wait for it.
      await sleep(20)
      continue
    }
    const to = LogPosition.make(BigInt(last.tx), BigInt(last.gp))
    const keys = [...new Set(rows.map((row) => row.stream_id.slice(prefix.length)))]
    const moved = await sql.begin(async (tx) => {
      const current = await tx<Array<{ account: string; cents: number }>>`
        select account, cents from bank_balances where account = any(${keys})`
      const folded = new Map(current.map((row) => [row.account, row.cents]))
      for (const row of rows) {
        const account = row.stream_id.slice(prefix.length)
        folded.set(account, (folded.get(account) ?? 0) + change(row))
      }
      const [, advanced] = await Promise.all([
        tx`insert into bank_balances (account, cents)
           select * from unnest(${[...folded.keys()]}::text[], ${[...folded.values()]}::int[])
           on conflict (account) do update set cents = excluded.cents`,
        tx`update eventcore.projections set position = ${to}, status = 'running', owner = ${owner}, error = null,
                  updated_at = now()
           where name = ${rawName} and position = ${position} returning 1`
      ])
      return advanced
    })
    if (moved.length === 0) throw new Error("W11: the raw loop's checkpoint moved under it")
    position = to
    events += rows.length
  }
  return { events, finished: true }
}

/** The same read model in the per-event form: one Drizzle upsert per event (test/support/balances.ts). */
export const PerEventBalances = Projection.make({
  name: "bench-per-event-balances",
  event: AccountEvent,
  filter: { streamPrefix: prefix },
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) => {
      const cents = event._tag === "AccountOpened" ? 0 : event._tag === "TransferSent" ? -event.amount : event.amount
      return Effect.orDie(
        Effect.tryPromise(() =>
          db
            .insert(balances)
            .values({ account: recorded.streamId.slice(prefix.length), cents })
            .onConflictDoUpdate({ target: balances.account, set: { cents: drizzleSql`${balances.cents} + ${cents}` } })
        )
      )
    }),
  reset: Effect.flatMap(Projection.ReadModel, ({ db }) => Effect.orDie(Effect.tryPromise(() => db.delete(balances))))
})

type BalancesProjection = typeof Balances | typeof PerEventBalances

/** `Projection.run` from the start until `waitFor` sees it at `head`, or the budget runs out. */
const projectionRun = async (
  runtime: StoreRuntime,
  projection: BalancesProjection,
  options: {
    readonly batchSize: number
    readonly head: LogPosition.LogPosition
    readonly budgetSeconds: number
    /** Where `waitFor` reads the checkpoint (default: `runtime`). */
    readonly waitOn?: StoreRuntime
  }
): Promise<{ seconds: number; finished: boolean; lag: number }> => {
  const waitOn = options.waitOn ?? runtime
  const started = performance.now()
  const fiber = runtime.runFork(
    Projection.run(projection as typeof Balances, { batchSize: options.batchSize }) as Effect.Effect<
      never,
      unknown,
      EventStore.EventStore | Projection.ReadModelStore
    >
  )
  try {
    const caughtUp = await waitOn.runPromise(
      Effect.raceFirst(
        Projection.waitFor(projection, options.head, { timeout: `${options.budgetSeconds} seconds` }).pipe(
          Effect.as(true),
          Effect.catchTag("ProjectionTimeout", () => Effect.succeed(false))
        ),
        Effect.flatMap(Fiber.await(fiber), (exit) =>
          Effect.dieMessage(
            `W11: Projection.run ended: ${exit._tag === "Failure" ? Cause.pretty(exit.cause) : "without an error"}`
          )
        )
      )
    )
    const seconds = (performance.now() - started) / 1000
    if (caughtUp) return { seconds, finished: true, lag: 0 }
    const status = await runtime.runPromise(Projection.status)
    return { seconds, finished: false, lag: status.find((s) => s.name === projection.name)?.lag ?? Number.NaN }
  } finally {
    await runtime.runPromise(Fiber.interrupt(fiber))
  }
}

const rebuildOf = (runtime: StoreRuntime, projection: BalancesProjection) =>
  runtime.runPromise(
    Projection.rebuild(projection as typeof Balances) as Effect.Effect<
      void,
      unknown,
      EventStore.EventStore | Projection.ReadModelStore
    >
  )

const rotate = <A>(items: ReadonlyArray<A>, by: number): ReadonlyArray<A> =>
  items.map((_, i) => items[(i + by) % items.length] as A)

/** The per-event form's batch size: `Projection.run`'s default for `handle`. */
const perEventBatchSize = 100

const checkFold = (label: string, folded: Fold, expected: Fold) => {
  if (folded.accounts !== expected.accounts || folded.cents !== expected.cents) {
    throw new Error(
      `${label}: the read model holds ${folded.accounts} accounts, ${folded.cents} cents; the log folds to ${expected.accounts}, ${expected.cents}`
    )
  }
}

/** The application_name of a projection's own session (src/postgres/sessions.ts). */
const sessionApplication = "eventcore-projection"

/** The row projection once more, through a proxy counting round trips: per 1,000 events. */
const countProjectionRoundTrips = async (
  url: string,
  sql: postgres.Sql,
  batchSize: number,
  events: number,
  head: LogPosition.LogPosition,
  expected: Fold,
  options: Options
): Promise<RoundTripCount> => {
  const wire = await wireCounter(url)
  const runtime = storeRuntime(wire.url, 2)
  // `waitFor` reads the checkpoint on a pool of its own, beside the proxy: the harness's polls are not
  // the projection's round trips. It still wakes on every commit (the signal is the process's).
  const waiter = storeRuntime(url, 1)
  try {
    await rebuildOf(runtime, Balances)
    await sql`vacuum analyze bank_balances, eventcore.projections`
    const before = await wire.counts()
    const outcome = await projectionRun(runtime, Balances, {
      batchSize,
      head,
      budgetSeconds: options.w11BudgetSeconds,
      waitOn: waiter
    })
    const after = await wire.counts()
    const roundTrips = after.roundTrips - before.roundTrips
    const sessionRoundTrips =
      (after.byApplication[sessionApplication] ?? 0) - (before.byApplication[sessionApplication] ?? 0)
    const exchanges = after.exchanges - before.exchanges
    if (outcome.finished) checkFold("W11 round trips", await readModelFold(sql), expected)
    return {
      batchSize,
      events,
      roundTrips,
      sessionRoundTrips,
      syncs: exchanges,
      per1000: (roundTrips / events) * 1000,
      sessionPer1000: (sessionRoundTrips / events) * 1000,
      syncsPer1000: (exchanges / events) * 1000
    }
  } finally {
    await runtime.dispose()
    await waiter.dispose()
    await wire.close()
  }
}

/** The row projection and the per-event form on PGlite, over a log of its own. */
const pgliteThroughput = async (options: Options, progress: Progress): Promise<PgliteThroughput> => {
  const events = Math.min(options.w11Events, 20_000)
  const accounts = Math.min(options.w11Accounts, events)
  const client = await PGlite.create()
  const runtime: StoreRuntime = ManagedRuntime.make(Layer.merge(PgliteEventStore.layerFromClient(client), quiet))
  try {
    // The runtime builds its layer (and with it migrates the database) on first use.
    await runtime.runtime()
    const execute = (statement: string) => client.exec(statement)
    await execute("create table bank_balances (account text primary key, cents integer not null)")
    await seedLog(execute, events, accounts, progress)
    const [last] = (
      await client.query<{ tx: string; gp: string }>(
        `select transaction_id::text as tx, global_position::text as gp from eventcore.events
         order by transaction_id desc, global_position desc limit 1`
      )
    ).rows
    const head = LogPosition.make(BigInt(last?.tx ?? 0), BigInt(last?.gp ?? 0))
    const expected = (await client.query<Fold>(expectedFoldQuery)).rows[0] as Fold
    const runs: Array<ThroughputRun> = []
    const sides: ReadonlyArray<ThroughputSide> = ["rows", "per-event"]
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      for (const side of rotate(sides, repetition - 1)) {
        const projection = side === "rows" ? Balances : PerEventBalances
        const batchSize = side === "rows" ? (options.w11BatchSizes[0] ?? 1000) : perEventBatchSize
        const label = `W11 PGlite ${sideLabel[side]}, batches of ${batchSize}, rep ${repetition}/${options.repetitions}`
        progress.status(`${label}: resetting`)
        await rebuildOf(runtime, projection)
        await client.exec("delete from bank_balances")
        await client.exec("vacuum analyze bank_balances, eventcore.projections")
        const outcome = await projectionRun(runtime, projection, {
          batchSize,
          head,
          budgetSeconds: options.w11BudgetSeconds
        })
        const projected = outcome.finished ? events : events - outcome.lag
        if (outcome.finished) {
          checkFold(label, (await client.query<Fold>(readModelFoldQuery)).rows[0] as Fold, expected)
        }
        const result: ThroughputRun = {
          side,
          batchSize,
          repetition,
          events: projected,
          seconds: outcome.seconds,
          eventsPerSec: projected / outcome.seconds,
          finished: outcome.finished,
          loadAverage: os.loadavg()[0] ?? 0
        }
        runs.push(result)
        progress.log(`${label}: ${Math.round(result.eventsPerSec).toLocaleString("en")} events/s`)
      }
    }
    const rate = (side: ThroughputSide) => median(runs.filter((r) => r.side === side).map((r) => r.eventsPerSec))
    return { events, accounts, runs, rows: rate("rows"), perEvent: rate("per-event") }
  } finally {
    await runtime.dispose()
    await client.close()
  }
}

/** Seeds a database of its own with the account log, projects it `options.repetitions` times each way, drops it. */
export const projectionThroughput = async (
  admin: Admin,
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<ThroughputResult> => {
  const url = await admin.create(database)
  let runtime: StoreRuntime | undefined
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const rawSql = postgres(url, { max: 1, onnotice: () => {} })
  /** Each log of personal data, in a database of its own on the same server, read by a store of its own. */
  const personalLogs = new Map<
    PersonalSide,
    {
      readonly database: string
      readonly sql: postgres.Sql
      readonly runtime: StoreRuntime
      head: LogPosition.LogPosition
    }
  >()
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    await drizzle({ client: sql }).execute(createBalances)
    const seeding = performance.now()
    const transactions = await seedLog(
      (statement) => sql.unsafe(statement),
      options.w11Events,
      options.w11Accounts,
      progress
    )
    const seedSeconds = (performance.now() - seeding) / 1000
    progress.log(
      `W11: seeded ${options.w11Events.toLocaleString("en")} account events (${transactions} transactions, ` +
        `${Math.min(options.w11Accounts, options.w11Events)} accounts) in ${seedSeconds.toFixed(1)} s`
    )
    const head = await headOf(sql)
    const expected = await expectedFold(sql)
    await sql`insert into eventcore.projections (name, kind, position, status)
              values (${rawName}, 'projection', ${LogPosition.start}, 'stopped')`
    runtime = storeRuntime(url, poolSize)
    await rawSql`select 1`
    const logs: Array<LogSize & { readonly seedSeconds: number }> = [{ ...(await logSize(sql, "rows")), seedSeconds }]
    for (const side of personalSides) {
      const personalDatabase = `${database}_${side === "rows-names" ? "names" : "all"}`
      const personalUrl = await admin.create(personalDatabase)
      const log = {
        database: personalDatabase,
        sql: postgres(personalUrl, { max: 1, onnotice: () => {} }),
        runtime: storeRuntime(personalUrl, poolSize),
        head: LogPosition.start
      }
      personalLogs.set(side, log)
      await Effect.runPromise(PostgresEventStore.migrate({ url: personalUrl }))
      await drizzle({ client: log.sql }).execute(createBalances)
      const started = performance.now()
      await seedPersonalLog(log.runtime, log.sql, side, options.w11Events, options.w11Accounts, progress)
      const size = { ...(await logSize(log.sql, side)), seedSeconds: (performance.now() - started) / 1000 }
      // The same events as the plain log, with their personal values encrypted, and none of them in the clear.
      const [clear] = await log.sql<[{ names: number }]>`
        select count(*)::int as names from eventcore.events where data::text like '%owner of%'`
      const sealed = side === "rows-all" ? options.w11Events : Math.min(options.w11Accounts, options.w11Events)
      if (size.events !== options.w11Events || size.personalEvents !== sealed || clear.names !== 0) {
        throw new Error(
          `W11: the log of ${sideLabel[side]} holds ${size.events} events, ${size.personalEvents} with personal values and ${clear.names} names in the clear; expected ${options.w11Events}, ${sealed} and 0`
        )
      }
      log.head = await headOf(log.sql)
      logs.push(size)
      progress.log(
        `W11: seeded the log of ${sideLabel[side]}: ${size.personalEvents.toLocaleString("en")} of ${size.events.toLocaleString("en")} events with a personal value, ` +
          `${(size.bytes / 2 ** 20).toFixed(1)} MB (plain: ${((logs[0]?.bytes ?? 0) / 2 ** 20).toFixed(1)} MB) in ${size.seedSeconds.toFixed(1)} s`
      )
    }

    const withRaw = options.systems.includes("raw")
    // Per repetition: the per-event form once (at its own batch size), then at each batch size rows, rows over
    // each log of personal data, and raw.
    const plan: ReadonlyArray<{ side: ThroughputSide; batchSize: number }> = [
      { side: "per-event", batchSize: perEventBatchSize },
      ...options.w11BatchSizes.flatMap((batchSize) =>
        [...(["rows"] as const), ...personalSides, ...(withRaw ? (["raw-batched"] as const) : [])].map((side) => ({
          side,
          batchSize
        }))
      )
    ]
    const runs: Array<ThroughputRun> = []
    const total = options.repetitions * plan.length
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      for (const { side, batchSize } of rotate(plan, repetition - 1)) {
        const label = `[${runs.length + 1}/${total}] W11 ${sideLabel[side]}, batches of ${batchSize}, rep ${repetition}/${options.repetitions}`
        const personal = side === "rows-names" || side === "rows-all" ? personalLogs.get(side) : undefined
        const sideSql = personal?.sql ?? sql
        // The same starting point for every side: an empty, vacuumed read model, the checkpoint at the start.
        progress.status(`${label}: resetting`)
        if (side === "raw-batched") {
          await sql`update eventcore.projections set position = ${LogPosition.start} where name = ${rawName}`
        } else {
          await rebuildOf(personal?.runtime ?? runtime, side === "per-event" ? PerEventBalances : Balances)
        }
        await sideSql`delete from bank_balances`
        await sideSql`vacuum analyze bank_balances, eventcore.projections`
        const started = performance.now()
        const ticker = setInterval(
          () => progress.status(`${label}: ${((performance.now() - started) / 1000).toFixed(0)} s`),
          500
        )
        let events: number
        let seconds: number
        let finished: boolean
        try {
          if (side === "raw-batched") {
            const outcome = await rawBatchedLoop(rawSql, {
              batchSize,
              head,
              deadline: started + options.w11BudgetSeconds * 1000
            })
            seconds = (performance.now() - started) / 1000
            finished = outcome.finished
            events = outcome.events
          } else {
            const outcome = await projectionRun(
              personal?.runtime ?? runtime,
              side === "per-event" ? PerEventBalances : Balances,
              { batchSize, head: personal?.head ?? head, budgetSeconds: options.w11BudgetSeconds }
            )
            seconds = outcome.seconds
            finished = outcome.finished
            events = finished ? options.w11Events : options.w11Events - outcome.lag
          }
        } finally {
          clearInterval(ticker)
        }
        // A log of personal data folds to the plain log's balances: its values read back as they were written.
        if (finished) checkFold(label, await readModelFold(sideSql), expected)
        const result: ThroughputRun = {
          side,
          batchSize,
          repetition,
          events,
          seconds,
          eventsPerSec: events / seconds,
          finished,
          loadAverage: os.loadavg()[0] ?? 0
        }
        runs.push(result)
        progress.log(
          `${label}: ${Math.round(result.eventsPerSec).toLocaleString("en")} events/s (${seconds.toFixed(1)} s)` +
            (finished
              ? ""
              : ` — STOPPED after ${options.w11BudgetSeconds} s, ${events.toLocaleString("en")} of ${options.w11Events.toLocaleString("en")} events`)
        )
      }
    }

    const perEventRuns = runs.filter((run) => run.side === "per-event")
    const perEvent = perEventRuns.length === 0 ? null : median(perEventRuns.map((run) => run.eventsPerSec))
    const cells = options.w11BatchSizes.map((batchSize): ThroughputCell => {
      const of = (side: ThroughputSide) => runs.filter((run) => run.side === side && run.batchSize === batchSize)
      const rate = (side: ThroughputSide) => {
        const list = of(side)
        return list.length === 0 ? null : median(list.map((run) => run.eventsPerSec))
      }
      const rows = rate("rows") as number
      const rawBatched = rate("raw-batched")
      const ratiosByRepetition = (side: ThroughputSide, over: ThroughputSide) =>
        of(side).flatMap((run) => {
          const pair = of(over).find((other) => other.repetition === run.repetition)
          return pair === undefined ? [] : [run.eventsPerSec / pair.eventsPerSec]
        })
      return {
        batchSize,
        rows,
        rawBatched,
        ratio: rawBatched === null ? null : rows / rawBatched,
        ratioByRepetition: ratiosByRepetition("rows", "raw-batched"),
        perEvent,
        ratioPerEvent: perEvent === null ? null : rows / perEvent,
        personal: personalSides.flatMap((side) => {
          const eventsPerSec = rate(side)
          return eventsPerSec === null
            ? []
            : [{ side, eventsPerSec, ratio: eventsPerSec / rows, ratioByRepetition: ratiosByRepetition(side, "rows") }]
        })
      }
    })
    progress.status("W11: counting the row projection's round trips")
    const roundTrips = await countProjectionRoundTrips(
      url,
      sql,
      options.w11BatchSizes[0] ?? 1000,
      options.w11Events,
      head,
      expected,
      options
    )
    const pglite =
      options.systems.includes("pglite") && !options.quick ? await pgliteThroughput(options, progress) : undefined
    return {
      events: options.w11Events,
      accounts: Math.min(options.w11Accounts, options.w11Events),
      transactions,
      seedSeconds,
      budgetSeconds: options.w11BudgetSeconds,
      runs,
      cells,
      roundTrips,
      pglite,
      logs
    }
  } finally {
    for (const log of personalLogs.values()) {
      await log.runtime.dispose()
      await log.sql.end({ timeout: 5 })
      await admin.drop(log.database)
    }
    await runtime?.dispose()
    await sql.end({ timeout: 5 })
    await rawSql.end({ timeout: 5 })
    await admin.drop(database)
  }
}

// ---------------------------------------------------------------------------------------------
// Lag

/** W1's events as the lag projection reads them (the other fields are ignored). */
const OrderPlaced = Schema.TaggedStruct("OrderPlaced", { orderId: Schema.String, amount: Schema.Number })

const orders = pgTable("bench_w11_orders", {
  eventId: uuid("event_id").primaryKey(),
  streamId: text("stream_id").notNull(),
  orderId: text("order_id").notNull(),
  amount: integer("amount").notNull()
})

const createOrders = `create table bench_w11_orders (event_id uuid primary key, stream_id text not null,
  order_id text not null, amount integer not null)`

const lagPrefix = "w11-"

/** One row per W1 event: a row projection keyed by the event's id. */
const Orders = Projection.rows({
  name: "bench-w11-orders",
  event: Schema.Union(OrderPlaced),
  filter: { streamPrefix: lagPrefix },
  table: orders,
  key: (_, recorded) => recorded.eventId,
  evolve: (_, event, recorded) => ({
    eventId: recorded.eventId,
    streamId: recorded.streamId,
    orderId: event.orderId,
    amount: event.amount
  })
})

/** W1's operation: one event to a new stream; its position once acknowledged. */
const appendOne = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const streamId = StreamId.unsafeMake(freshStreamId(lagPrefix.slice(0, -1)))
  const event = benchEvent()
  const writes = yield* StreamWrites.expect(StreamWrites.empty, streamId, "no_stream").pipe(
    Effect.flatMap(StreamWrites.append({ streamId, eventType: event.type, data: event.data }))
  )
  const result = yield* store.append(writes)
  return (result.events[0] as { readonly position: LogPosition.LogPosition }).position
})

/** Percentiles of the lag samples, in appends. */
export interface LagPercentiles {
  readonly samples: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/** One repetition: a phase of appends with the projection running and one without, `first` first. */
export interface LagRepetition {
  readonly repetition: number
  readonly first: "with" | "without"
  readonly with: Sample
  readonly without: Sample
  /** Appends/s with the projection over without. */
  readonly ratio: number
  /** Over the samples taken while the phase with the projection ran. */
  readonly lag: LagPercentiles
  /** Its samples: ms since the phase's measured appends began, lag in appends. */
  readonly trace: ReadonlyArray<readonly [number, number]>
  /** From the phase's last acknowledged append to `waitFor` seeing the projection past it. */
  readonly caughtUpMs: number
  /** False when it was not caught up within 60 s. */
  readonly caughtUp: boolean
}

export interface LagResult {
  /** Of each phase (warm-up excluded). */
  readonly seconds: number
  readonly warmupSeconds: number
  readonly repetitions: number
  readonly writers: number
  readonly poolSize: number
  readonly batchSize: number
  /** The median phase with the projection running and the median one without, by appends/s (the lower middle one of an even count). */
  readonly appends: Sample
  readonly withoutProjection: Sample
  /** Medians of the phases' appends/s, and how much slower they were with the projection: 1 - with / without. */
  readonly withPerSec: number
  readonly withoutPerSec: number
  readonly slowdown: number
  /** Events appended under the prefix, warm-ups included, and rows the projection wrote, after a last catch-up. */
  readonly appended: number
  readonly projected: number
  readonly sampleIntervalMs: number
  /** Acknowledged appends past the checkpoint, over the samples of every phase with the projection. */
  readonly lag: LagPercentiles
  /** The worst over the phases with the projection, and whether it caught up after each. */
  readonly caughtUpMs: number
  readonly caughtUp: boolean
  readonly byRepetition: ReadonlyArray<LagRepetition>
}

const sampleIntervalMs = 50

/** The projection's checkpoint as the sampler read it, and when it sent the read. */
interface Checkpoint {
  readonly at: number
  readonly position: LogPosition.LogPosition
}

/** Acknowledged appends, in the order acknowledged: when, and their event's position. */
interface Acks {
  readonly at: Array<number>
  readonly position: Array<LogPosition.LogPosition>
}

/**
 * Each sample's lag: the appends acknowledged at or before the sample's time whose position is past
 * the checkpoint it read. The appends go, in time order as the samples' times pass them, into a
 * Fenwick tree over their positions' ranks, which counts those at or before a checkpoint in O(log n):
 * 100,000 appends and 400 samples take tens of milliseconds, not 40 million comparisons.
 */
const lagsAt = (acks: Acks, samples: ReadonlyArray<Checkpoint>): Array<number> => {
  const ranked = [...acks.position].sort()
  /** How many appends' positions are at or before `position` (positions compare as strings in log order). */
  const atOrBefore = (position: LogPosition.LogPosition) => {
    let low = 0
    let high = ranked.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((ranked[middle] as LogPosition.LogPosition) <= position) low = middle + 1
      else high = middle
    }
    return low
  }
  const tree = new Int32Array(ranked.length + 1)
  let taken = 0
  return samples.map((sample) => {
    for (; taken < acks.at.length && (acks.at[taken] as number) <= sample.at; taken++) {
      for (let i = atOrBefore(acks.position[taken] as LogPosition.LogPosition); i <= ranked.length; i += i & -i) {
        tree[i] = (tree[i] as number) + 1
      }
    }
    let projected = 0
    for (let i = atOrBefore(sample.position); i > 0; i -= i & -i) projected += tree[i] as number
    return taken - projected
  })
}

const percentilesOf = (lags: ReadonlyArray<number>): LagPercentiles => {
  const latencies = new Latencies()
  for (const lag of lags) latencies.add(lag)
  const [p50, p99, max] = latencies.percentiles(50, 99, 100) as [number, number, number]
  return { samples: lags.length, p50, p99, max }
}

/** The middle sample by appends/s: the lower middle one of an even count. */
const middleOf = (samples: ReadonlyArray<Sample>): Sample =>
  [...samples].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor((samples.length - 1) / 2)] as Sample

export const projectionLag = async (
  admin: Admin,
  database: string,
  options: Options,
  poolSize: number,
  progress: Progress
): Promise<LagResult> => {
  const url = await admin.create(database)
  let runtime: StoreRuntime | undefined
  let fiber: Fiber.RuntimeFiber<never, unknown> | undefined
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  // The sampler's own connection: it neither waits for the store's pool nor holds it up.
  const sampleSql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    await sql.unsafe(createOrders)
    await sampleSql`select 1`
    const store = storeRuntime(url, poolSize)
    runtime = store
    // The row projection's default.
    const batchSize = 1000

    // The acknowledged appends since the last catch-up before a phase with the projection (those before
    // it are all projected by then, so they never count in a sample's lag).
    let acks: Acks = { at: [], position: [] }
    let lastPosition = LogPosition.start
    let lastAckAt = 0
    const operation = async () => {
      const position = await store.runPromise(appendOne)
      lastAckAt = performance.now()
      acks.at.push(lastAckAt)
      acks.position.push(position)
      if (position > lastPosition) lastPosition = position
      return succeeded(1)
    }
    const appendFor = (seconds: number, label: string) =>
      run(operation, {
        concurrency: options.liveWriters,
        seconds,
        onProgress: (ops, elapsed) =>
          progress.status(
            `${label}: ${elapsed.toFixed(1)} s, ${Math.round(ops / elapsed).toLocaleString("en")} appends/s`
          )
      })
    const warmUp = async (label: string) => {
      if (options.warmupSeconds > 0) await appendFor(options.warmupSeconds, `${label}, warm-up`)
    }
    const caughtUpTo = (position: LogPosition.LogPosition, timeout: Duration.DurationInput) =>
      store.runPromise(
        Projection.waitFor(Orders, position, { timeout }).pipe(
          Effect.as(true),
          Effect.catchTag("ProjectionTimeout", () => Effect.succeed(false))
        )
      )
    /** Starts the projection unless it runs, and waits until it has projected everything appended so far. */
    const startCaughtUp = async () => {
      fiber ??= store.runFork(Projection.run(Orders, { batchSize }))
      return caughtUpTo(await headOf(sql), "120 seconds")
    }

    const withProjection = async (label: string) => {
      progress.status(`${label}: the projection catching up`)
      if (!(await startCaughtUp())) throw new Error(`${label}: the projection did not catch up within 120 s`)
      acks = { at: [], position: [] }
      await warmUp(label)
      const samples: Array<Checkpoint> = []
      let sampling = true
      const measuredFrom = performance.now()
      const sampler = (async () => {
        while (sampling) {
          // Taken before the read: every append acknowledged by then was committed before the checkpoint was read.
          const at = performance.now()
          const [row] = await sampleSql<[{ position: LogPosition.LogPosition }?]>`
            select position from eventcore.projections where name = ${Orders.name}`
          if (row !== undefined) samples.push({ at, position: row.position })
          await sleep(Math.max(0, at + sampleIntervalMs - performance.now()))
        }
      })()
      const appends = await appendFor(options.w11Seconds, label)
      sampling = false
      await sampler
      progress.status(`${label}: waiting for the projection to catch up`)
      const caughtUp = await caughtUpTo(lastPosition, "60 seconds")
      const caughtUpMs = performance.now() - lastAckAt
      const lags = lagsAt(acks, samples)
      const trace = samples.map((sample, i) => [Math.round(sample.at - measuredFrom), lags[i] as number] as const)
      return { appends, lags, trace, caughtUp, caughtUpMs }
    }

    const withoutProjection = async (label: string) => {
      if (fiber !== undefined) {
        await store.runPromise(Fiber.interrupt(fiber))
        fiber = undefined
      }
      await warmUp(label)
      return appendFor(options.w11Seconds, label)
    }

    // Sides alternate (with first in odd repetitions), so drift between phases falls on both.
    const byRepetition: Array<LagRepetition> = []
    const allLags: Array<number> = []
    let phases = 0
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      const first = repetition % 2 === 1 ? "with" : "without"
      const label = (side: "with" | "without") =>
        `[${++phases}/${2 * options.repetitions}] W11 lag ${side} the projection, rep ${repetition}/${options.repetitions}`
      let measured: Awaited<ReturnType<typeof withProjection>>
      let without: Sample
      if (first === "with") {
        measured = await withProjection(label("with"))
        without = await withoutProjection(label("without"))
      } else {
        without = await withoutProjection(label("without"))
        measured = await withProjection(label("with"))
      }
      allLags.push(...measured.lags)
      const lag = percentilesOf(measured.lags)
      byRepetition.push({
        repetition,
        first,
        with: measured.appends,
        without,
        ratio: measured.appends.opsPerSec / without.opsPerSec,
        lag,
        trace: measured.trace,
        caughtUpMs: measured.caughtUpMs,
        caughtUp: measured.caughtUp
      })
      progress.log(
        `W11 lag rep ${repetition}/${options.repetitions}: ${Math.round(measured.appends.opsPerSec).toLocaleString("en")} ` +
          `appends/s with the projection, ${Math.round(without.opsPerSec).toLocaleString("en")} without; ` +
          `lag p99 ${lag.p99} appends`
      )
    }

    progress.status("W11 lag: a last catch-up, then counting")
    const finished = await startCaughtUp()
    const [counts] = await sql<[{ appended: number; projected: number }]>`
      select (select count(*)::int from eventcore.events where starts_with(stream_id, ${lagPrefix})) as appended,
             (select count(*)::int from bench_w11_orders) as projected`
    if (finished && counts.appended !== counts.projected) {
      throw new Error(
        `W11 lag: ${counts.appended} events appended under ${lagPrefix} but ${counts.projected} rows projected, caught up`
      )
    }
    const withPerSec = median(byRepetition.map((rep) => rep.with.opsPerSec))
    const withoutPerSec = median(byRepetition.map((rep) => rep.without.opsPerSec))
    return {
      seconds: options.w11Seconds,
      warmupSeconds: options.warmupSeconds,
      repetitions: options.repetitions,
      writers: options.liveWriters,
      poolSize,
      batchSize,
      appends: middleOf(byRepetition.map((rep) => rep.with)),
      withoutProjection: middleOf(byRepetition.map((rep) => rep.without)),
      withPerSec,
      withoutPerSec,
      slowdown: 1 - withPerSec / withoutPerSec,
      appended: counts.appended,
      projected: counts.projected,
      sampleIntervalMs,
      lag: percentilesOf(allLags),
      caughtUpMs: Math.max(...byRepetition.map((rep) => rep.caughtUpMs)),
      caughtUp: byRepetition.every((rep) => rep.caughtUp),
      byRepetition
    }
  } finally {
    if (fiber !== undefined) await runtime?.runPromise(Fiber.interrupt(fiber))
    await runtime?.dispose()
    await sql.end({ timeout: 5 })
    await sampleSql.end({ timeout: 5 })
    await admin.drop(database)
  }
}

export interface ProjectionsResult {
  readonly throughput: ThroughputResult | undefined
  readonly lag: LagResult | undefined
}
