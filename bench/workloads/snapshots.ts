/**
 * W13: commands on long streams, with and without snapshots of their state
 * (issue #26), on the PostgreSQL store (a database of its own) and on an
 * in-memory PGlite, side by side in one run.
 *
 * Latency: `execute` of the bank's Deposit (one stream) and Transfer (two
 * streams) at c1, on streams of each of `options.w13Lengths` events, without
 * snapshots and with them (a copy of the command with `Snapshot.make({ state,
 * version: 1 })`, the default policy: a new snapshot once a command folded 100
 * events beyond the last). Each length has a pool of streams (pairs for
 * Transfer) used in turn, large enough that the run's own appends grow them by
 * about a tenth at most: every measured command appends, and the stream it
 * reads grows by that event (snapshots are then rewritten every 100 events, as
 * they would be in use). The streams are seeded by raw SQL through the store's
 * own append function (`eventcore.append`, requests of at most 10,000 events
 * built on the server), then each stream (pair) gets a first snapshot from one
 * run of a copy of the command that writes after 1 folded event, awaited
 * (`Snapshot.awaitWrites`). A cell runs `options.w13Ops` commands, or fewer
 * once `options.w13BudgetSeconds` have passed (full folds of 100,000 events take
 * seconds each); without and with snapshots alternate within each repetition.
 *
 * Writes: whether writing snapshots costs the commands around them. The same
 * snapshotting Deposit at `options.w13Concurrency`, with the policy of a write
 * every `options.w13WriteEvery` folded events (100, the default) and with one
 * that never writes after the first snapshot (`after.events` of a billion),
 * on two sets of `options.w13WriteStreams` streams of `options.w13WriteLength`
 * events, each worker running `w13WriteEvery` commands on each of its own
 * streams (no conflicts), or fewer once `options.w13WriteBudgetSeconds` have
 * passed. So that both sides fold the same events, every stream's tail after
 * its snapshot runs through 1..100 events once per cell on both: the
 * never-writing side's streams get a fresh snapshot before each cell
 * (untimed), and the writing side's streams start at tails spread over
 * 1..100, so that each writes one snapshot per cell, at a different moment,
 * and returns to where it started. p99 of the two compared.
 */
import os from "node:os"
import { performance } from "node:perf_hooks"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Metric, Schema } from "effect"
import { type EventStore, execute, PgliteEventStore, PostgresEventStore, Snapshot, StreamId } from "eventcore"
import postgres from "postgres"
import { Deposit, Transfer } from "../../src/demo/domain.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import { Latencies, median } from "../lib/stats.js"

export type W13Store = "postgres" | "pglite"
export type W13Shape = "one" | "two"
export type W13Variant = "none" | "snapshot"

export const shapeLabel: Record<W13Shape, string> = {
  one: "Deposit (1 stream)",
  two: "Transfer (2 streams)"
}

/** The bank's command state as JSON: accounts by stream, a map stored as pairs. */
const AccountsState = Schema.Struct({
  accounts: Schema.ReadonlyMap({
    key: StreamId.schema,
    value: Schema.Struct({ open: Schema.Boolean, balance: Schema.Number })
  })
})

const snapshotOf = (events: number) => Snapshot.make({ state: AccountsState, version: 1, after: { events } })

/** The bank's commands with snapshots after `events` folded events (same names, so they share snapshots). */
const commandsWith = (events: number) => ({
  one: { ...Deposit, snapshot: snapshotOf(events) },
  two: { ...Transfer, snapshot: snapshotOf(events) }
})

/** What the measured cells run: the default policy (100 events). */
const snapshotting = commandsWith(Snapshot.defaultEvents)
/** Writes a snapshot of whatever it folded: gives each stream its first snapshot before measuring. */
const priming = commandsWith(1)
/** Never writes after the first snapshot: the write comparison's baseline. */
const neverAgain = commandsWith(1_000_000_000).one

/** Warnings would scribble over the progress line. */
const quiet = Logger.minimumLogLevel(LogLevel.None)

interface Store {
  readonly name: W13Store
  readonly run: <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) => Promise<A>
  /** A statement on a connection of its own (PostgreSQL) or on the database (PGlite). */
  readonly sql: (text: string, params: ReadonlyArray<unknown>) => Promise<void>
  readonly close: () => Promise<void>
}

const openPostgres = async (url: string, maxConnections: number): Promise<Store> => {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  const runtime = ManagedRuntime.make(Layer.merge(PostgresEventStore.layer({ url, maxConnections }), quiet))
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  return {
    name: "postgres",
    run: (effect) => runtime.runPromise(effect),
    sql: async (text, params) => {
      await sql.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>)
    },
    close: async () => {
      await sql.end({ timeout: 5 })
      await runtime.dispose()
    }
  }
}

const openPglite = async (): Promise<Store> => {
  const runtime = ManagedRuntime.make(Layer.merge(PgliteEventStore.layer(), quiet))
  const client = await runtime.runPromise(PgliteEventStore.Client)
  return {
    name: "pglite",
    run: (effect) => runtime.runPromise(effect),
    sql: async (text, params) => {
      await client.query(text, [...params])
    },
    close: () => runtime.dispose()
  }
}

/**
 * Appends events $3..$4 to each of the streams $1 (each at version $2): an AccountOpened as the first
 * event, deposits after it. One request to `eventcore.append`, built on the server.
 */
const appendStatement = `select eventcore.append(jsonb_build_object(
  'streams', (select jsonb_agg(jsonb_build_object('id', s, 'expected', $2::int)) from unnest($1::text[]) s),
  'events', (select jsonb_agg(jsonb_build_object(
      'stream', s, 'id', gen_random_uuid(),
      'type', case when g = 1 then 'AccountOpened' else 'MoneyDeposited' end,
      'data', case when g = 1 then jsonb_build_object('owner', s) else jsonb_build_object('amount', 1000) end,
      'metadata', '{}'::jsonb) order by s, g)
    from unnest($1::text[]) s, generate_series($3::int, $4::int) g)))`

/** Events per seeding request (and at most this many streams in one). */
const requestEvents = 10_000
const requestStreams = 500

/** Brings every account of `accounts` from version `from` to `to` (events from+1..to), in requests of 10,000 events. */
const extend = async (store: Store, accounts: ReadonlyArray<string>, from: number, to: number) => {
  const events = to - from
  if (events <= 0) return
  const perRequest = Math.max(1, Math.min(requestStreams, Math.floor(requestEvents / events)))
  const chunk = Math.min(events, requestEvents)
  for (let i = 0; i < accounts.length; i += perRequest) {
    const streams = accounts.slice(i, i + perRequest).map((account) => `account-${account}`)
    for (let first = from + 1; first <= to; first += chunk) {
      await store.sql(appendStatement, [streams, first - 1, first, Math.min(to, first + chunk - 1)])
    }
  }
}

const analyze = (store: Store) => store.sql("vacuum analyze eventcore.events", [])

const written = (command: string) =>
  Metric.value(Snapshot.writtenCounter.pipe(Metric.tagged("command", command))).pipe(Effect.map((state) => state.count))

const ignored = (command: string) =>
  Effect.map(
    Effect.forEach(["version", "undecodable", "streams"], (reason) =>
      Metric.value(Snapshot.ignoredCounter.pipe(Metric.tagged("command", command), Metric.tagged("reason", reason)))
    ),
    (states) => states.reduce((sum, state) => sum + state.count, 0)
  )

/** Snapshots of Deposit and Transfer written and ignored so far (the metrics are the process's). */
const snapshotCounts = Effect.all({
  written: Effect.zipWith(written(Deposit.name), written(Transfer.name), (a, b) => a + b),
  ignored: Effect.zipWith(ignored(Deposit.name), ignored(Transfer.name), (a, b) => a + b)
})

// ---------------------------------------------------------------------------------------------
// Latency

/** One length's streams: Deposit's accounts, Transfer's pairs, and the events appended to them on average. */
interface Pool {
  readonly length: number
  readonly accounts: ReadonlyArray<string>
  readonly pairs: ReadonlyArray<readonly [string, string]>
  /** Events each stream gained on average since it was seeded (the first snapshot's command's included). */
  grown: Record<W13Shape, number>
}

/** Streams per pool: the run appends at most about a tenth of `length` to each; at most 500. */
const poolSize = (length: number, appends: number) => Math.max(1, Math.min(500, Math.ceil((10 * appends) / length)))

const poolOf = (length: number, size: number): Pool => ({
  length,
  accounts: Array.from({ length: size }, (_, i) => `w13-${length}-one-${i}`),
  pairs: Array.from({ length: size }, (_, i) => [`w13-${length}-from-${i}`, `w13-${length}-to-${i}`] as const),
  grown: { one: 0, two: 0 }
})

const commandOf = (pool: Pool, shape: W13Shape, variant: W13Variant | "prime", i: number) => {
  if (shape === "one") {
    const input = { account: pool.accounts[i % pool.accounts.length] as string, amount: 1 }
    return variant === "none"
      ? execute(Deposit, input)
      : execute(variant === "prime" ? priming.one : snapshotting.one, input)
  }
  const [from, to] = pool.pairs[i % pool.pairs.length] as readonly [string, string]
  const input = { from, to, amount: 1 }
  return variant === "none"
    ? execute(Transfer, input)
    : execute(variant === "prime" ? priming.two : snapshotting.two, input)
}

const streamsOf = (pool: Pool, shape: W13Shape) => (shape === "one" ? pool.accounts.length : pool.pairs.length)

export interface LatencyRun {
  readonly store: W13Store
  readonly shape: W13Shape
  readonly length: number
  readonly variant: W13Variant
  readonly repetition: number
  readonly ops: number
  /** False when the time budget ended the cell before `w13Ops` commands. */
  readonly finished: boolean
  readonly seconds: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Commands that needed more than one attempt (none expected at c1). */
  readonly retried: number
  /** The pool's streams' mean length as the cell started and ended. */
  readonly lengthAtStart: number
  readonly lengthAtEnd: number
  /** Snapshots written while the cell ran (awaited after it), and snapshots found but ignored. */
  readonly snapshotsWritten: number
  readonly snapshotsIgnored: number
  readonly loadAverage: number
}

export interface LatencyCell {
  readonly store: W13Store
  readonly shape: W13Shape
  readonly length: number
  readonly variant: W13Variant
  /** Medians over the repetitions. */
  readonly p50Ms: number
  readonly p99Ms: number
  /** Commands measured over all repetitions. */
  readonly ops: number
  readonly stopped: number
  /** The pool's mean length when the last repetition ended. */
  readonly lengthAtEnd: number
  readonly streams: number
}

export interface SeedRecord {
  readonly store: W13Store
  readonly part: "latency" | "writes"
  readonly streams: number
  readonly events: number
  readonly seconds: number
  /** Commands run to give each stream (pair) its first snapshot, and how long they took. */
  readonly primed: number
  readonly primeSeconds: number
}

/** Runs up to `ops` commands one after another, fewer once `budgetMs` has passed (at least one). */
const timed = async (ops: number, budgetMs: number, operation: (i: number) => Promise<number>) => {
  const latencies = new Latencies()
  let retried = 0
  const started = performance.now()
  for (let i = 0; i < ops; i++) {
    const before = performance.now()
    if (i > 0 && before - started >= budgetMs) break
    const attempts = await operation(i)
    latencies.add(performance.now() - before)
    if (attempts > 1) retried += 1
  }
  const seconds = (performance.now() - started) / 1000
  const [p50Ms, p99Ms, maxMs] = latencies.percentiles(50, 99, 100) as [number, number, number]
  return { ops: latencies.count, seconds, p50Ms, p99Ms, maxMs, retried }
}

// ---------------------------------------------------------------------------------------------
// Writes

export type WriteVariant = "periodic" | "never"

export interface WriteRun {
  readonly store: W13Store
  readonly variant: WriteVariant
  readonly repetition: number
  readonly ops: number
  /** False when the time budget stopped the workers before every stream's cycle was complete. */
  readonly finished: boolean
  readonly seconds: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly retried: number
  readonly snapshotsWritten: number
  readonly loadAverage: number
}

export interface WriteCell {
  readonly store: W13Store
  /** Medians over the repetitions. */
  readonly periodic: { readonly p50Ms: number; readonly p99Ms: number; readonly opsPerSec: number }
  readonly never: { readonly p50Ms: number; readonly p99Ms: number; readonly opsPerSec: number }
  /** p99 with periodic writes over p99 without (medians), and within each repetition. */
  readonly p99Ratio: number
  readonly p99RatioByRepetition: ReadonlyArray<number>
  readonly p50Ratio: number
}

export interface SnapshotsResult {
  /** A --quick run: its targets are not judged. */
  readonly quick: boolean
  readonly stores: ReadonlyArray<W13Store>
  readonly lengths: ReadonlyArray<number>
  readonly ops: number
  readonly budgetSeconds: number
  readonly repetitions: number
  readonly warmupSeconds: number
  readonly poolSizes: ReadonlyArray<{ readonly length: number; readonly streams: number }>
  readonly seeding: ReadonlyArray<SeedRecord>
  readonly runs: ReadonlyArray<LatencyRun>
  readonly cells: ReadonlyArray<LatencyCell>
  readonly writes: {
    readonly concurrency: number
    readonly streams: number
    readonly length: number
    readonly every: number
    readonly budgetSeconds: number
    /** Connections of the PostgreSQL store's pool. */
    readonly poolSize: number
    readonly runs: ReadonlyArray<WriteRun>
    readonly cells: ReadonlyArray<WriteCell>
  }
}

/**
 * Runs W13 on the PostgreSQL store (database `database`, created and dropped here) and/or PGlite, as
 * `stores` says.
 */
export const snapshots = async (
  admin: Admin,
  database: string,
  stores: ReadonlyArray<W13Store>,
  options: Options,
  poolConnections: number,
  progress: Progress
): Promise<SnapshotsResult> => {
  const opened: Array<Store> = []
  try {
    for (const name of stores) {
      progress.status(`W13: opening ${name}`)
      opened.push(
        name === "postgres" ? await openPostgres(await admin.create(database), poolConnections) : await openPglite()
      )
    }
    const lengths = [...options.w13Lengths].sort((a, b) => a - b)
    // Every cell appends one event per command to its pool: two variants, every repetition.
    const appends = 2 * options.w13Ops * options.repetitions
    const seeding: Array<SeedRecord> = []

    // Seeding: each length's pool, on each store, then a first snapshot of every stream (pair).
    const pools = new Map<W13Store, ReadonlyArray<Pool>>()
    for (const store of opened) {
      const storePools = lengths.map((length) => poolOf(length, poolSize(length, appends)))
      const streams = storePools.reduce((n, pool) => n + pool.accounts.length + 2 * pool.pairs.length, 0)
      const events = storePools.reduce((n, pool) => n + pool.length * (pool.accounts.length + 2 * pool.pairs.length), 0)
      progress.status(`W13 ${store.name}: seeding ${events.toLocaleString("en")} events in ${streams} streams`)
      const seeded = performance.now()
      for (const pool of storePools) {
        await extend(store, [...pool.accounts, ...pool.pairs.flat()], 0, pool.length)
      }
      await analyze(store)
      const seconds = (performance.now() - seeded) / 1000
      progress.status(`W13 ${store.name}: a first snapshot of each stream`)
      const primed = performance.now()
      let primes = 0
      for (const pool of storePools) {
        for (const shape of ["one", "two"] as const) {
          const n = streamsOf(pool, shape)
          await store.run(
            Effect.forEach(
              Array.from({ length: n }, (_, i) => i),
              (i) => commandOf(pool, shape, "prime", i),
              {
                concurrency: 8,
                discard: true
              }
            )
          )
          pool.grown[shape] += 1
          primes += n
        }
      }
      await store.run(Snapshot.awaitWrites)
      const primeSeconds = (performance.now() - primed) / 1000
      seeding.push({ store: store.name, part: "latency", streams, events, seconds, primed: primes, primeSeconds })
      progress.log(
        `W13 ${store.name}: seeded ${events.toLocaleString("en")} events in ${streams} streams in ${seconds.toFixed(1)} s ` +
          `(${Math.round(events / seconds).toLocaleString("en")} events/s); ${primes} first snapshots in ${primeSeconds.toFixed(1)} s`
      )
      pools.set(store.name, storePools)
    }

    const runs: Array<LatencyRun> = []
    const cell = async (store: Store, pool: Pool, shape: W13Shape, variant: W13Variant, repetition: number) => {
      const streams = streamsOf(pool, shape)
      const lengthAtStart = pool.length + pool.grown[shape]
      const before = await store.run(snapshotCounts)
      const label = `W13 ${store.name} ${shape === "one" ? "Deposit" : "Transfer"} ${pool.length.toLocaleString("en")} ${variant} rep ${repetition}/${options.repetitions}`
      progress.status(label)
      let offset = Math.round(pool.grown[shape] * streams)
      const result = await timed(options.w13Ops, options.w13BudgetSeconds * 1000, (i) =>
        store.run(commandOf(pool, shape, variant, offset + i)).then((r) => r.attempts)
      )
      offset += result.ops
      pool.grown[shape] = offset / streams
      await store.run(Snapshot.awaitWrites)
      const after = await store.run(snapshotCounts)
      const run: LatencyRun = {
        store: store.name,
        shape,
        length: pool.length,
        variant,
        repetition,
        ...result,
        finished: result.ops >= options.w13Ops,
        lengthAtStart,
        lengthAtEnd: pool.length + pool.grown[shape],
        snapshotsWritten: after.written - before.written,
        snapshotsIgnored: after.ignored - before.ignored,
        loadAverage: os.loadavg()[0] ?? 0
      }
      runs.push(run)
      progress.log(
        `${label}: ${run.ops} commands${run.finished ? "" : " (time budget)"}, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms` +
          (run.snapshotsWritten > 0 ? `, ${run.snapshotsWritten} snapshots written` : "") +
          (run.snapshotsIgnored > 0 ? `, ${run.snapshotsIgnored} IGNORED` : "") +
          (run.retried > 0 ? `, ${run.retried} retried` : "")
      )
    }

    // Warm-up: every command on the shortest streams, unmeasured, before the first repetition.
    if (options.warmupSeconds > 0) {
      for (const store of opened) {
        const pool = (pools.get(store.name) as ReadonlyArray<Pool>)[0] as Pool
        for (const shape of ["one", "two"] as const) {
          for (const variant of ["none", "snapshot"] as const) {
            progress.status(`W13 ${store.name}: warm-up`)
            const streams = streamsOf(pool, shape)
            const offset = Math.round(pool.grown[shape] * streams)
            const result = await timed(1_000_000, options.warmupSeconds * 1000, (i) =>
              store.run(commandOf(pool, shape, variant, offset + i)).then((r) => r.attempts)
            )
            pool.grown[shape] = (offset + result.ops) / streams
          }
        }
        await store.run(Snapshot.awaitWrites)
      }
    }

    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      const variants: ReadonlyArray<W13Variant> = repetition % 2 === 1 ? ["none", "snapshot"] : ["snapshot", "none"]
      for (let index = 0; index < lengths.length; index++) {
        for (const shape of ["one", "two"] as const) {
          for (const store of opened) {
            const pool = (pools.get(store.name) as ReadonlyArray<Pool>)[index] as Pool
            for (const variant of variants) await cell(store, pool, shape, variant, repetition)
          }
        }
      }
    }

    const cells: Array<LatencyCell> = []
    for (const store of opened) {
      for (const pool of pools.get(store.name) as ReadonlyArray<Pool>) {
        for (const shape of ["one", "two"] as const) {
          for (const variant of ["none", "snapshot"] as const) {
            const of = runs.filter(
              (run) =>
                run.store === store.name && run.length === pool.length && run.shape === shape && run.variant === variant
            )
            if (of.length === 0) continue
            cells.push({
              store: store.name,
              shape,
              length: pool.length,
              variant,
              p50Ms: median(of.map((run) => run.p50Ms)),
              p99Ms: median(of.map((run) => run.p99Ms)),
              ops: of.reduce((n, run) => n + run.ops, 0),
              stopped: of.filter((run) => !run.finished).length,
              lengthAtEnd: pool.length + pool.grown[shape],
              streams: streamsOf(pool, shape)
            })
          }
        }
      }
    }

    const writes = await writeComparison(opened, options, seeding, progress)
    return {
      quick: options.quick,
      stores: opened.map((store) => store.name),
      lengths,
      ops: options.w13Ops,
      budgetSeconds: options.w13BudgetSeconds,
      repetitions: options.repetitions,
      warmupSeconds: options.warmupSeconds,
      poolSizes: lengths.map((length) => ({ length, streams: poolSize(length, appends) })),
      seeding,
      runs,
      cells,
      writes: { ...writes, poolSize: poolConnections }
    }
  } finally {
    for (const store of opened) await store.close().catch(() => {})
    if (stores.includes("postgres")) await admin.drop(database)
  }
}

/** The write comparison (see the module's comment), on each store. */
const writeComparison = async (
  opened: ReadonlyArray<Store>,
  options: Options,
  seeding: Array<SeedRecord>,
  progress: Progress
) => {
  const every = options.w13WriteEvery
  const count = options.w13WriteStreams
  const length = options.w13WriteLength
  const concurrency = Math.min(options.w13Concurrency, count)
  const periodic = commandsWith(every).one
  const accountsOf = (side: WriteVariant) => Array.from({ length: count }, (_, j) => `w13-writes-${side}-${j}`)
  const sides = { periodic: accountsOf("periodic"), never: accountsOf("never") }
  /** A first snapshot of each account, awaited; each command appends one event after it. */
  const prime = (store: Store, accounts: ReadonlyArray<string>) =>
    store.run(
      Effect.zipRight(
        Effect.forEach(accounts, (account) => execute(priming.one, { account, amount: 1 }), {
          concurrency: 8,
          discard: true
        }),
        Snapshot.awaitWrites
      )
    )
  const runs: Array<WriteRun> = []
  for (const store of opened) {
    progress.status(`W13 ${store.name}: seeding the write comparison's streams`)
    const seeded = performance.now()
    await extend(store, [...sides.periodic, ...sides.never], 0, length)
    await analyze(store)
    const seconds = (performance.now() - seeded) / 1000
    const primed = performance.now()
    await prime(store, [...sides.periodic, ...sides.never])
    // The periodic side's tails (events after the snapshot) start spread over 1..every: stream j at 1 + j*every/count.
    for (const [j, account] of sides.periodic.entries()) {
      const tail = 1 + Math.floor((j * every) / count)
      await extend(store, [account], length + 1, length + tail)
    }
    seeding.push({
      store: store.name,
      part: "writes",
      streams: 2 * count,
      events: 2 * count * length,
      seconds,
      primed: 2 * count,
      primeSeconds: (performance.now() - primed) / 1000
    })
  }

  const measure = async (store: Store, variant: WriteVariant, repetition: number) => {
    const accounts = sides[variant]
    // The never-writing side starts each cell from a fresh snapshot (tails then run 1..every, as the other's).
    if (variant === "never") await prime(store, accounts)
    const command = variant === "periodic" ? periodic : neverAgain
    const before = await store.run(snapshotCounts)
    const label = `W13 writes ${store.name} ${variant} rep ${repetition}/${options.repetitions}`
    progress.status(label)
    const latencies = new Latencies()
    let retried = 0
    const started = performance.now()
    const deadline = started + options.w13WriteBudgetSeconds * 1000
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        const own = accounts.filter((_, j) => j % concurrency === worker)
        for (let round = 0; round < every; round++) {
          for (const account of own) {
            const t = performance.now()
            if (t >= deadline) return
            const result = await store.run(execute(command, { account, amount: 1 }))
            latencies.add(performance.now() - t)
            if (result.attempts > 1) retried += 1
          }
        }
      })
    )
    const seconds = (performance.now() - started) / 1000
    await store.run(Snapshot.awaitWrites)
    const after = await store.run(snapshotCounts)
    const [p50Ms, p99Ms, maxMs] = latencies.percentiles(50, 99, 100) as [number, number, number]
    const run: WriteRun = {
      store: store.name,
      variant,
      repetition,
      ops: latencies.count,
      finished: latencies.count === count * every,
      seconds,
      opsPerSec: latencies.count / seconds,
      p50Ms,
      p99Ms,
      maxMs,
      retried,
      snapshotsWritten: after.written - before.written,
      loadAverage: os.loadavg()[0] ?? 0
    }
    runs.push(run)
    progress.log(
      `${label}: ${run.ops} commands at c${concurrency}${run.finished ? "" : " (time budget)"}, ${Math.round(run.opsPerSec).toLocaleString("en")}/s, ` +
        `p50 ${p50Ms.toFixed(2)} ms, p99 ${p99Ms.toFixed(2)} ms, ${run.snapshotsWritten} snapshots written` +
        (retried > 0 ? `, ${retried} retried` : "")
    )
  }

  for (let repetition = 1; repetition <= options.repetitions; repetition++) {
    const order: ReadonlyArray<WriteVariant> = repetition % 2 === 1 ? ["never", "periodic"] : ["periodic", "never"]
    for (const store of opened) {
      for (const variant of order) await measure(store, variant, repetition)
    }
  }

  const cells: Array<WriteCell> = opened.map((store) => {
    const of = (variant: WriteVariant) => runs.filter((run) => run.store === store.name && run.variant === variant)
    const summary = (variant: WriteVariant) => ({
      p50Ms: median(of(variant).map((run) => run.p50Ms)),
      p99Ms: median(of(variant).map((run) => run.p99Ms)),
      opsPerSec: median(of(variant).map((run) => run.opsPerSec))
    })
    const withWrites = summary("periodic")
    const without = summary("never")
    return {
      store: store.name,
      periodic: withWrites,
      never: without,
      p99Ratio: withWrites.p99Ms / without.p99Ms,
      p50Ratio: withWrites.p50Ms / without.p50Ms,
      p99RatioByRepetition: of("periodic").flatMap((run) => {
        const pair = of("never").find((other) => other.repetition === run.repetition)
        return pair === undefined ? [] : [run.p99Ms / pair.p99Ms]
      })
    }
  })
  return { concurrency, streams: count, length, every, budgetSeconds: options.w13WriteBudgetSeconds, runs, cells }
}
