/**
 * The command line of `npm run bench`, parsed with node:util's parseArgs.
 */
import { parseArgs } from "node:util"

export const systemNames = ["postgres", "raw", "pglite", "memory", "emmett"] as const
export type SystemName = (typeof systemNames)[number]

export interface Options {
  readonly quick: boolean
  /** Workload ids to run (`W1`, `W4.streamEvents`, ...); empty means all. */
  readonly only: ReadonlyArray<string>
  readonly systems: ReadonlyArray<SystemName>
  readonly url: string
  /** Measured seconds per cell (one system, one workload, one concurrency, one repetition). */
  readonly durationSeconds: number
  readonly warmupSeconds: number
  readonly repetitions: number
  readonly concurrencies: ReadonlyArray<number>
  /** Writers on the hot stream (W5). */
  readonly hotWriters: number
  /** Streams of W2 and accounts of W6. */
  readonly streams: number
  /** Events in the stream W4 reads. */
  readonly readSize: number
  /** Attempts of a read-then-append (W2, W5) before it gives up: the retry policy shared by store and baseline. */
  readonly maxAttempts: number
  readonly w7Events: number
  /** W7 page size; undefined means the store's default. */
  readonly w7PageSize: number | undefined
  /** Events of the optional PGlite run of W7 (0 to skip it). */
  readonly w7PgliteEvents: number
  /** Events in the global log W8 catches up on. */
  readonly w8Events: number
  /** W8 page size, the same for `streamAll` and the raw keyset scan. */
  readonly w8PageSize: number
  /** Seconds a W8 reader may take before it is stopped (its rate then covers what it read). */
  readonly w8BudgetSeconds: number
  /** How long W9 appends while its two subscribers follow. */
  readonly w9Seconds: number
  /** W9's and W10's writers (W1 style: one event to a new stream each). */
  readonly liveWriters: number
  /** Live subscribers in W10's second half. */
  readonly w10Subscribers: number
  /** Account events in the log W11 projects, and the accounts they are spread over. */
  readonly w11Events: number
  readonly w11Accounts: number
  /** W11's batch sizes, the same for `Projection.run` and the raw loops. */
  readonly w11BatchSizes: ReadonlyArray<number>
  /** Seconds a W11 throughput run may take before it is stopped (its rate then covers what it projected). */
  readonly w11BudgetSeconds: number
  /** How long W11's lag part appends while its projection follows. */
  readonly w11Seconds: number
  /** Events in the log W12 catches up on, on the hot standby and on the primary. */
  readonly w12Events: number
  /** How long W12's second part appends while a subscriber on each node follows. */
  readonly w12Seconds: number
  /** W13: stream lengths at which commands are timed with and without snapshots. */
  readonly w13Lengths: ReadonlyArray<number>
  /** W13: commands per cell (one store, command, length, with or without snapshots, repetition)... */
  readonly w13Ops: number
  /** ...or fewer once a cell has run this long (a full fold of 100,000 events takes seconds). */
  readonly w13BudgetSeconds: number
  /** W13's write comparison: concurrent writers, their streams (per side), the streams' length, and the policy's events. */
  readonly w13Concurrency: number
  readonly w13WriteStreams: number
  readonly w13WriteLength: number
  readonly w13WriteEvery: number
  /** Seconds a side of the write comparison may run before its workers stop. */
  readonly w13WriteBudgetSeconds: number
  /** Where the results go. */
  readonly outDir: string
}

const usage = `npm run bench -- [options]

  --quick                 a smoke run (short durations, 1 repetition, small sizes); results get a -quick suffix
  --only W1,W3,W6.deposit run only these workloads (W1 W2 W2.personal W3 W4 W4.readStream W4.streamEvents W5 W6
                          W6.deposit W6.transfer W7 W8 W9 W10 W11 W13; a prefix selects its variants: W2 is W2 and
                          W2.personal; W12 only when named: it starts a PostgreSQL 15 primary and hot standby of
                          its own)
  --systems LIST          postgres,raw,pglite,memory,emmett (default all; emmett: Emmett's PostgreSQL event
                          store, W1-W5 only)
  --url URL               PostgreSQL server (default DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres);
                          the bench creates its own databases there and drops them at the end
  --duration S            measured seconds per cell (default 10; quick 0.3)
  --warmup S              warm-up seconds before each cell (default 1; quick 0.1)
  --reps N                repetitions, systems interleaved A B A B (default 3; quick 1)
  --concurrency LIST      concurrency levels for W1-W4 and W6 (default 1,8)
  --hot-writers N         writers on the hot stream, W5 (default 8)
  --streams N             streams of W2 and accounts of W6 (default 1000; quick 100)
  --read-size N           events in the stream W4 reads (default 1000; quick 200)
  --max-attempts N        read-append attempts before giving up, W2 and W5 (default 100)
  --w7-events N           events in the long stream, W7 (default 1000000; quick 20000)
  --w7-page-size N        streamEvents page size in W7 (default: the store's default)
  --w7-pglite-events N    events for the PGlite run of W7, 0 to skip (default 100000; quick 1000)
  --w8-events N           events in the global log W8 catches up on (default 1000000; quick 3000)
  --w8-page-size N        streamAll page size in W8, and the raw scan's (default 1000)
  --w8-budget S           seconds a W8 reader may run before it is stopped and rated on what it read
                          (default 120; quick 10)
  --w9-duration S         seconds W9 appends while its subscribers follow (default 20; quick 0.5)
  --live-writers N        concurrent writers of W9 and W10 (default 8)
  --w10-subscribers N     live subscribers in W10, against none (default 4)
  --w11-events N          account events in the log W11 projects (default 100000; quick 1000)
  --w11-accounts N        account streams they are spread over (default 1000; quick 100)
  --w11-batch-sizes LIST  W11's batch sizes, projection and raw loops alike (default 1000,2000; the per-event form runs at its own 100)
  --w11-budget S          seconds a W11 throughput run may take before it is stopped and rated on what it
                          projected (default 180; quick 10)
  --w11-duration S        seconds W11's lag part appends while its projection follows (default 20; quick 0.5)
  --w12-events N          events in the log W12 catches up on, on the standby and on the primary (default
                          200000; quick 10000; pages of --w8-page-size, readers stopped after --w8-budget)
  --w12-duration S        seconds W12 appends while a subscriber on each node follows (default 20; quick 1)
  --w13-lengths LIST      stream lengths W13 times commands at, with and without snapshots (default
                          10,1000,10000,100000; quick 10,100)
  --w13-ops N             W13 commands per cell (default 200; quick 10)...
  --w13-budget S          ...or fewer once a cell has run this long (default 15; quick 1)
  --w13-concurrency N     writers of W13's write comparison (default 8)
  --w13-write-streams N   streams per side of the write comparison (default 32; quick 8)
  --w13-write-length N    their events before snapshots (default 1000; quick 100)
  --w13-write-every N     the snapshot policy compared with never writing again: a snapshot after N
                          folded events (default 100, the library's default; quick 10)
  --w13-write-budget S    seconds a side of the write comparison may run before its workers stop
                          (default 120; quick 10)
  --out DIR               where to write the results (default bench/results)
  --help
`

const list = (value: string | undefined): ReadonlyArray<string> =>
  value === undefined
    ? []
    : value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item.length > 0)

const number = (name: string, value: string | undefined, fallback: number, min = 0): number => {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < min) throw new Error(`--${name} must be a number >= ${min}, got ${value}`)
  return parsed
}

const integer = (name: string, value: string | undefined, fallback: number, min = 0): number => {
  const parsed = number(name, value, fallback, min)
  if (!Number.isSafeInteger(parsed)) throw new Error(`--${name} must be an integer, got ${value}`)
  return parsed
}

/** Parses `argv` (without node and the script); prints usage and exits on --help. */
export const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      systems: { type: "string" },
      url: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      reps: { type: "string" },
      concurrency: { type: "string" },
      "hot-writers": { type: "string" },
      streams: { type: "string" },
      "read-size": { type: "string" },
      "max-attempts": { type: "string" },
      "w7-events": { type: "string" },
      "w7-page-size": { type: "string" },
      "w7-pglite-events": { type: "string" },
      "w8-events": { type: "string" },
      "w8-page-size": { type: "string" },
      "w8-budget": { type: "string" },
      "w9-duration": { type: "string" },
      "live-writers": { type: "string" },
      "w10-subscribers": { type: "string" },
      "w11-events": { type: "string" },
      "w11-accounts": { type: "string" },
      "w11-batch-sizes": { type: "string" },
      "w11-budget": { type: "string" },
      "w11-duration": { type: "string" },
      "w12-events": { type: "string" },
      "w12-duration": { type: "string" },
      "w13-lengths": { type: "string" },
      "w13-ops": { type: "string" },
      "w13-budget": { type: "string" },
      "w13-concurrency": { type: "string" },
      "w13-write-streams": { type: "string" },
      "w13-write-length": { type: "string" },
      "w13-write-every": { type: "string" },
      "w13-write-budget": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false }
    },
    strict: true,
    allowPositionals: false
  })
  if (values.help) {
    process.stdout.write(usage)
    process.exit(0)
  }
  const quick = values.quick
  const systems = list(values.systems)
  for (const system of systems) {
    if (!(systemNames as ReadonlyArray<string>).includes(system)) {
      throw new Error(`unknown system ${system}: expected some of ${systemNames.join(", ")}`)
    }
  }
  const concurrencies = list(values.concurrency).map((value) => integer("concurrency", value, 1, 1))
  const pageSize = values["w7-page-size"]
  const lengths = list(values["w13-lengths"]).map((value) => integer("w13-lengths", value, 10, 1))
  const batchSizes = list(values["w11-batch-sizes"]).map((value) => integer("w11-batch-sizes", value, 100, 1))
  return {
    quick,
    only: list(values.only).map((id) => id.toUpperCase()),
    systems: systems.length === 0 ? systemNames : (systems as ReadonlyArray<SystemName>),
    url: values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    durationSeconds: number("duration", values.duration, quick ? 0.3 : 10, 0.01),
    warmupSeconds: number("warmup", values.warmup, quick ? 0.1 : 1),
    repetitions: integer("reps", values.reps, quick ? 1 : 3, 1),
    concurrencies: concurrencies.length === 0 ? [1, 8] : concurrencies,
    hotWriters: integer("hot-writers", values["hot-writers"], 8, 1),
    streams: integer("streams", values.streams, quick ? 100 : 1000, 2),
    readSize: integer("read-size", values["read-size"], quick ? 200 : 1000, 1),
    maxAttempts: integer("max-attempts", values["max-attempts"], 100, 1),
    w7Events: integer("w7-events", values["w7-events"], quick ? 20_000 : 1_000_000, 1),
    w7PageSize: pageSize === undefined ? undefined : integer("w7-page-size", pageSize, 500, 1),
    w7PgliteEvents: integer("w7-pglite-events", values["w7-pglite-events"], quick ? 2_000 : 100_000),
    w8Events: integer("w8-events", values["w8-events"], quick ? 3_000 : 1_000_000, 1),
    w8PageSize: integer("w8-page-size", values["w8-page-size"], 1000, 1),
    w8BudgetSeconds: number("w8-budget", values["w8-budget"], quick ? 10 : 120, 1),
    w9Seconds: number("w9-duration", values["w9-duration"], quick ? 0.5 : 20, 0.01),
    liveWriters: integer("live-writers", values["live-writers"], 8, 1),
    w10Subscribers: integer("w10-subscribers", values["w10-subscribers"], 4, 1),
    w11Events: integer("w11-events", values["w11-events"], quick ? 1000 : 100_000, 1),
    w11Accounts: integer("w11-accounts", values["w11-accounts"], quick ? 100 : 1000, 1),
    w11BatchSizes: batchSizes.length === 0 ? [1000, 2000] : batchSizes,
    w11BudgetSeconds: number("w11-budget", values["w11-budget"], quick ? 10 : 180, 1),
    w11Seconds: number("w11-duration", values["w11-duration"], quick ? 0.5 : 20, 0.01),
    w12Events: integer("w12-events", values["w12-events"], quick ? 10_000 : 200_000, 1),
    w12Seconds: number("w12-duration", values["w12-duration"], quick ? 1 : 20, 0.01),
    w13Lengths: lengths.length === 0 ? (quick ? [10, 100] : [10, 1000, 10_000, 100_000]) : lengths,
    w13Ops: integer("w13-ops", values["w13-ops"], quick ? 10 : 200, 1),
    w13BudgetSeconds: number("w13-budget", values["w13-budget"], quick ? 1 : 15, 0.01),
    w13Concurrency: integer("w13-concurrency", values["w13-concurrency"], 8, 1),
    w13WriteStreams: integer("w13-write-streams", values["w13-write-streams"], quick ? 8 : 32, 1),
    w13WriteLength: integer("w13-write-length", values["w13-write-length"], quick ? 100 : 1000, 1),
    w13WriteEvery: integer("w13-write-every", values["w13-write-every"], quick ? 10 : 100, 1),
    w13WriteBudgetSeconds: number("w13-write-budget", values["w13-write-budget"], quick ? 10 : 120, 0.01),
    outDir: values.out ?? new URL("../results", import.meta.url).pathname
  }
}

/** Whether workload `id` is named in `--only` (W12, which needs servers of its own, runs only when named). */
export const named = (options: Options, id: string): boolean => options.only.includes(id.toUpperCase())

/** Whether workload `id` (e.g. `W4.streamEvents`) is selected by `--only` (`W4` selects both W4 variants). */
export const selected = (options: Options, id: string): boolean => {
  if (options.only.length === 0) return true
  const upper = id.toUpperCase()
  return options.only.some((wanted) => upper === wanted || upper.startsWith(`${wanted}.`))
}
