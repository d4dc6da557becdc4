/**
 * Where a projection's time goes: W11's account log (bench/workloads/projection.ts)
 * projected by the bank's balances in the per-event form (W11's `PerEventBalances`), taken apart.
 *
 *  1. `Projection.run(Balances)` from the start until caught up, its handler
 *     timed event by event: time in handlers (the upserts through Drizzle) and
 *     between batches (commit, next read, begin, the runner); then the same
 *     with a handler that writes nothing (read, begin, compare-and-set, commit
 *     and the runner alone); then both again through a proxy that counts round
 *     trips (apart, so that the proxy's own work does not slow the timed runs).
 *  2. Reads alone, the whole log page by page: the store's filtered read (the
 *     projection's filter), its unfiltered read, and W11's raw keyset read.
 *  3. Writes alone, each batch of events in one transaction on one connection,
 *     as the projection's session runs them: Drizzle's upsert awaited event by
 *     event (the handler's: not prepared, so postgres.js describes it first),
 *     the same through a Drizzle prepared statement, postgres.js prepared, and
 *     postgres.js pipelined; each batch ends with the compare-and-set.
 *
 *   npx tsx bench/profile/projection.ts [--events 20000] [--accounts 1000] [--batch 100] [--reps 3]
 *                                       [--cpu-profile FILE.cpuprofile]
 *
 * With --cpu-profile, the first timed pass of `Projection.run(Balances)` is
 * CPU-profiled (node:inspector) into FILE; read it with cpu-summary.ts.
 *
 * Times are medians over `--reps` passes (variants interleaved within a pass);
 * CPU is this process's (user + system) over the same passes.
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { sql as drizzleSql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { EventStore, LogPosition, PostgresEventStore, Projection } from "eventcore"
import postgres from "postgres"
import { AccountEvent } from "../../src/demo/domain.js"
import { balances, createBalances } from "../../src/demo/readModel.js"
import { Progress } from "../lib/progress.js"
import { adminOf } from "../lib/server.js"
import { median } from "../lib/stats.js"
import { cpuMs, timedProjectionRun } from "../lib/timedRun.js"
import { wireCounter } from "../lib/wire.js"
import {
  change,
  eventTypes,
  expectedFold,
  headOf,
  PerEventBalances,
  prefix,
  type RawRow,
  rawName,
  readModelFold,
  seedLog
} from "../workloads/projection.js"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "20000" },
    accounts: { type: "string", default: "1000" },
    batch: { type: "string", default: "100" },
    reps: { type: "string", default: "3" },
    "cpu-profile": { type: "string" },
    url: { type: "string" }
  }
})
const events = Number(values.events)
const accounts = Number(values.accounts)
const batchSize = Number(values.batch)
const reps = Number(values.reps)
const serverUrl = values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const admin = adminOf(serverUrl)
const database = `eventcore_projection_profile_${process.pid}`
const progress = new Progress()
const quiet = Logger.minimumLogLevel(LogLevel.None)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const fmt = (value: number, digits = 2) => value.toFixed(digits)

/** Per pass of one variant: wall ms, CPU ms, batches. */
interface Pass {
  readonly wallMs: number
  readonly cpuMs: number
  readonly batches: number
  readonly extra?: Record<string, number>
}

const results = new Map<string, Array<Pass>>()
const record = (name: string, pass: Pass) => {
  const list = results.get(name) ?? []
  list.push(pass)
  results.set(name, list)
}

const url = await admin.create(database)
try {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  await drizzle({ client: sql }).execute(createBalances)
  await seedLog((statement) => sql.unsafe(statement), events, accounts, progress)
  const head = await headOf(sql)
  const expected = await expectedFold(sql)
  await sql`insert into eventcore.projections (name, kind, position, status)
            values (${rawName}, 'projection', ${LogPosition.start}, 'stopped')`
  const batches = Math.ceil(events / batchSize)
  progress.log(`seeded ${events} events over ${accounts} accounts: ${batches} batches of ${batchSize}`)

  const reset = async () => {
    await sql`delete from bank_balances`
    await sql`update eventcore.projections set position = ${LogPosition.start}`
    await sql`vacuum analyze bank_balances, eventcore.projections`
  }

  // ---- 1. Projection.run, timed and counted --------------------------------------------------
  /** Handler calls: start and end of each, in order. */
  let calls: Array<readonly [number, number]> = []
  const Timed = Projection.make({
    name: PerEventBalances.name,
    event: AccountEvent,
    filter: { streamPrefix: prefix },
    handle: (event, recorded) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.ensuring(
          PerEventBalances.handle(event, recorded),
          Effect.sync(() => {
            calls.push([start, performance.now()])
          })
        )
      })
  })
  const Nothing = Projection.make({
    name: "profile-nothing",
    event: AccountEvent,
    filter: { streamPrefix: prefix },
    handle: () => Effect.void
  })

  const runProjection = async (
    storeUrl: string,
    projection: typeof Timed | typeof Nothing,
    profileTo?: string
  ): Promise<{ wallMs: number; cpuMs: number }> => {
    const runtime = ManagedRuntime.make(
      Layer.merge(PostgresEventStore.layer({ url: storeUrl, maxConnections: 10 }), quiet)
    )
    try {
      await runtime.runPromise(Effect.flatMap(EventStore.EventStore, (store) => store.readAll({ maxCount: 1 })))
      await runtime.runPromise(Projection.rebuild(projection))
      await sql`vacuum analyze bank_balances, eventcore.projections`
      calls = []
      return await timedProjectionRun(runtime, projection, {
        head,
        batchSize,
        ...(profileTo === undefined ? {} : { profileTo })
      })
    } finally {
      await runtime.dispose()
    }
  }

  for (let rep = 1; rep <= reps; rep++) {
    progress.status(`1. Projection.run, pass ${rep}/${reps}`)
    await reset()
    const timed = await runProjection(url, Timed, rep === 1 ? values["cpu-profile"] : undefined)
    const fold = await readModelFold(sql)
    if (fold.accounts !== expected.accounts || fold.cents !== expected.cents) throw new Error("the read model is wrong")
    // Handler time, and the gaps between batches (commit, read, begin, the runner).
    let inHandlers = 0
    for (const [start, end] of calls) inHandlers += end - start
    let gaps = 0
    let within = 0
    for (let b = 0; b < batches; b++) {
      const first = calls[b * batchSize]
      const last = calls[Math.min(calls.length, (b + 1) * batchSize) - 1]
      const next = calls[(b + 1) * batchSize]
      if (first !== undefined && last !== undefined) within += last[1] - first[0]
      if (last !== undefined && next !== undefined) gaps += next[0] - last[1]
    }
    record("Projection.run(Balances)", {
      ...timed,
      batches,
      extra: {
        "ms in handlers per batch": inHandlers / batches,
        "ms first to last handler per batch": within / batches,
        "ms between batches (commit, read, begin, runner)": gaps / Math.max(1, batches - 1)
      }
    })
    progress.status(`1. Projection.run with a handler that writes nothing, pass ${rep}/${reps}`)
    record("Projection.run, handler writes nothing", { ...(await runProjection(url, Nothing)), batches })
  }
  // Round trips, through the counting proxy (not timed).
  const wire = await wireCounter(url)
  const counted: Record<string, number> = {}
  try {
    for (const projection of [Timed, Nothing]) {
      progress.status(`1. counting round trips: ${projection.name}`)
      const before = (await wire.counts()).roundTrips
      await runProjection(wire.url, projection)
      counted[projection.name] = ((await wire.counts()).roundTrips - before) / batches
    }
  } finally {
    await wire.close()
  }

  // ---- 2. Reads alone ------------------------------------------------------------------------
  const runtime = ManagedRuntime.make(Layer.merge(PostgresEventStore.layer({ url, maxConnections: 10 }), quiet))
  const filter = { eventTypes, streamPrefix: prefix }
  const storeWalk = async (filtered: boolean) => {
    let after = LogPosition.start
    let pages = 0
    let read = 0
    while (after < head) {
      const page = await runtime.runPromise(
        Effect.flatMap(EventStore.EventStore, (store) =>
          store.readAll({ after, maxCount: batchSize, ...(filtered ? { filter } : {}) })
        )
      )
      after = page.position
      read += page.events.length
      pages += 1
      if (page.caughtUp) break
    }
    if (read !== events) throw new Error(`read ${read} events of ${events}`)
    return pages
  }
  const rawRead = (client: postgres.Sql, after: LogPosition.LogPosition) => {
    const { transaction, position } = LogPosition.parts(after)
    return client<Array<RawRow>>`
      select e.transaction_id::text as tx, e.global_position::text as gp, e.stream_id, e.event_type, e.data
      from eventcore.events e
      where (e.transaction_id, e.global_position) > (${transaction.toString()}::text::xid8, ${position.toString()}::bigint)
        and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
        and e.event_type = any(${eventTypes}) and starts_with(e.stream_id, ${prefix})
      order by e.transaction_id, e.global_position limit ${batchSize}`
  }
  const positionOf = (row: RawRow) => LogPosition.make(BigInt(row.tx), BigInt(row.gp))
  const rawWalk = async () => {
    let after = LogPosition.start
    let pages = 0
    let read = 0
    while (after < head) {
      const rows = await rawRead(sql, after)
      after = positionOf(rows.at(-1) as RawRow)
      read += rows.length
      pages += 1
    }
    if (read !== events) throw new Error(`read ${read} events of ${events}`)
    return pages
  }
  await storeWalk(true)
  await rawWalk()
  const reads: ReadonlyArray<readonly [string, () => Promise<number>]> = [
    ["read: store, filtered (the projection's read)", () => storeWalk(true)],
    ["read: store, unfiltered", () => storeWalk(false)],
    ["read: raw keyset, filtered", rawWalk]
  ]
  for (let rep = 1; rep <= reps; rep++) {
    for (const [name, walk] of reads) {
      progress.status(`2. ${name}, pass ${rep}/${reps}`)
      const cpu = cpuMs()
      const started = performance.now()
      const pages = await walk()
      record(name, { wallMs: performance.now() - started, cpuMs: cpuMs() - cpu, batches: pages })
    }
  }
  await runtime.dispose()

  // ---- 3. Writes alone -----------------------------------------------------------------------
  // Every batch of the log, read once.
  const pagesOfRows: Array<ReadonlyArray<RawRow>> = []
  for (let after = LogPosition.start; after < head; ) {
    const rows = await rawRead(sql, after)
    pagesOfRows.push(rows)
    after = positionOf(rows.at(-1) as RawRow)
  }
  const advance = `update eventcore.projections set position = $3, status = 'running', owner = $4, error = null,
      updated_at = now() where name = $1 and position = $2 returning 1`
  type Writer = (
    own: postgres.Sql,
    db: ReturnType<typeof drizzle>,
    rows: ReadonlyArray<RawRow>,
    from: string,
    to: string
  ) => Promise<void>
  const upsertOf = (row: RawRow) => ({ account: row.stream_id.slice(prefix.length), cents: change(row) })
  /** As the store's session: begin, the body, the compare-and-set (prepared), commit, each awaited. */
  const inTransaction =
    (body: (own: postgres.Sql, db: ReturnType<typeof drizzle>, rows: ReadonlyArray<RawRow>) => Promise<void>): Writer =>
    async (own, db, rows, from, to) => {
      await own.unsafe("begin")
      await body(own, db, rows)
      const moved = await own.unsafe(advance, [rawName, from, to, "profile"], { prepare: true })
      if (moved.length !== 1) throw new Error("the checkpoint moved")
      await own.unsafe("commit")
    }
  let drizzlePrepared: { execute: (values: Record<string, unknown>) => Promise<unknown> } | undefined
  const writers: ReadonlyArray<readonly [string, Writer]> = [
    [
      "write: Drizzle upsert per event, awaited (the handler's)",
      inTransaction(async (_, db, rows) => {
        for (const row of rows) {
          const { account, cents } = upsertOf(row)
          await db
            .insert(balances)
            .values({ account, cents })
            .onConflictDoUpdate({ target: balances.account, set: { cents: drizzleSql`${balances.cents} + ${cents}` } })
        }
      })
    ],
    [
      "write: Drizzle prepared statement per event, awaited",
      inTransaction(async (_, db, rows) => {
        drizzlePrepared ??= db
          .insert(balances)
          .values({ account: drizzleSql.placeholder("account"), cents: drizzleSql.placeholder("cents") })
          .onConflictDoUpdate({
            target: balances.account,
            set: { cents: drizzleSql`${balances.cents} + ${drizzleSql.placeholder("cents")}` }
          })
          .prepare("profile_upsert")
        for (const row of rows) await drizzlePrepared.execute(upsertOf(row))
      })
    ],
    [
      "write: postgres.js prepared per event, awaited",
      inTransaction(async (own, _, rows) => {
        for (const row of rows) {
          const { account, cents } = upsertOf(row)
          await own`insert into "bank_balances" ("account", "cents") values (${account}, ${cents})
                    on conflict ("account") do update set "cents" = "bank_balances"."cents" + ${cents}`
        }
      })
    ],
    [
      "write: postgres.js prepared, the batch pipelined",
      inTransaction(async (own, _, rows) => {
        await Promise.all(
          rows.map((row) => {
            const { account, cents } = upsertOf(row)
            return own`insert into "bank_balances" ("account", "cents") values (${account}, ${cents})
                       on conflict ("account") do update set "cents" = "bank_balances"."cents" + ${cents}`
          })
        )
      })
    ]
  ]
  const writeAll = async (client: postgres.Sql, writer: Writer) => {
    const db = drizzle({ client })
    drizzlePrepared = undefined
    let from = LogPosition.start as string
    for (const rows of pagesOfRows) {
      const to = positionOf(rows.at(-1) as RawRow)
      await writer(client, db, rows, from, to)
      from = to
    }
  }
  for (let rep = 1; rep <= reps; rep++) {
    for (const [name, writer] of writers) {
      progress.status(`3. ${name}, pass ${rep}/${reps}`)
      await reset()
      const own = postgres(url, { max: 1, onnotice: () => {} })
      await own`select 1`
      const cpu = cpuMs()
      const started = performance.now()
      await writeAll(own, writer)
      record(name, { wallMs: performance.now() - started, cpuMs: cpuMs() - cpu, batches: pagesOfRows.length })
      await own.end({ timeout: 5 })
      const fold = await readModelFold(sql)
      if (fold.accounts !== expected.accounts || fold.cents !== expected.cents) throw new Error(`${name}: wrong fold`)
    }
  }
  const writeTrips: Record<string, number> = {}
  const wire2 = await wireCounter(url)
  try {
    for (const [name, writer] of writers) {
      progress.status(`3. counting round trips: ${name}`)
      await reset()
      const own = postgres(wire2.url, { max: 1, onnotice: () => {} })
      await own`select 1`
      const before = (await wire2.counts()).roundTrips
      await writeAll(own, writer)
      writeTrips[name] = ((await wire2.counts()).roundTrips - before) / pagesOfRows.length
      await own.end({ timeout: 5 })
    }
  } finally {
    await wire2.close()
  }
  await sql.end({ timeout: 5 })
  await sleep(0)

  // ---- Report ---------------------------------------------------------------------------------
  progress.done()
  const trips: Record<string, number> = {
    "Projection.run(Balances)": counted[Timed.name] ?? Number.NaN,
    "Projection.run, handler writes nothing": counted[Nothing.name] ?? Number.NaN,
    ...writeTrips
  }
  const lines = [
    `${events} events over ${accounts} accounts, batches of ${batchSize}; medians over ${reps} passes`,
    "",
    "| what | ms per batch | events/s | CPU ms per batch (this process) | round trips per batch | |",
    "| --- | ---: | ---: | ---: | ---: | --- |"
  ]
  for (const [name, passes] of results) {
    const wall = median(passes.map((p) => p.wallMs / p.batches))
    const cpu = median(passes.map((p) => p.cpuMs / p.batches))
    const extraKeys = Object.keys(passes[0]?.extra ?? {})
    const extra = extraKeys.map((key) => `${key}: ${fmt(median(passes.map((p) => p.extra?.[key] ?? Number.NaN)))}`)
    const trip = trips[name]
    lines.push(
      `| ${name} | ${fmt(wall)} | ${Math.round((batchSize * 1000) / wall).toLocaleString("en")} | ${fmt(cpu)} | ${trip === undefined ? "" : fmt(trip, 1)} | ${extra.join("; ")} |`
    )
  }
  process.stdout.write(`${lines.join("\n")}\n`)
} finally {
  await admin.close()
}
process.exit(0)
