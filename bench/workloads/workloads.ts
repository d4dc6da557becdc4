/**
 * W1-W6: what each workload seeds, and the operation it measures (W7-W10,
 * which need processes or databases of their own, are in their own modules).
 */
import { Effect } from "effect"
import { type EventStore, execute } from "eventcore"
import { Deposit, Transfer } from "../../src/demo/domain.js"
import { type Operation, type Outcome, succeeded } from "../lib/measure.js"
import type { Options, SystemName } from "../lib/options.js"
import type { BenchEvent, System } from "../systems/system.js"
import { benchEvent, benchEvents, freshStreamId, personalBenchEvent } from "./payload.js"

export interface Workload {
  /** `W1`, `W4.readStream`, ... (what `--only` selects). */
  readonly id: string
  readonly title: string
  readonly concurrencies: ReadonlyArray<number>
  /** The systems it is meaningful for. */
  readonly systems: ReadonlyArray<SystemName>
  /**
   * Each system measured in a Node process of its own (lib/own-process.ts), so that no other system's pool,
   * heap or garbage collection shares the measured process.
   */
  readonly ownProcess?: boolean
  /** The workload whose raw row the PostgreSQL store is compared with (default: this one). */
  readonly baseline?: string
  /**
   * The workload this one varies (W2.personal: W2 with a personal value in each event): measured beside it
   * within each repetition, on the same systems, and reported as a ratio to it.
   */
  readonly variantOf?: string
  /** Seeds what the workload needs in `system`, and returns the operation to measure. */
  readonly prepare: (system: System) => Promise<Operation>
}

const all: ReadonlyArray<SystemName> = ["postgres", "raw", "pglite", "memory"]
/** W1-W5 also run on Emmett's PostgreSQL event store (a peer, not one of ours). */
const withPeers: ReadonlyArray<SystemName> = [...all, "emmett"]
const stores: ReadonlyArray<SystemName> = ["postgres", "pglite", "memory"]

const random = (n: number) => Math.floor(Math.random() * n)

/** W1 and W3: `count` events to a new stream, which must not conflict. */
export const appendNew = (system: System, prefix: string, count: number): Operation => {
  return async () => {
    const streamId = freshStreamId(prefix)
    const outcome = await system.append(streamId, 0, benchEvents(count))
    if (outcome !== "appended") throw new Error(`${system.name}: a new stream ${streamId} conflicted`)
    return succeeded(count)
  }
}

/**
 * The retry policy shared by the stores and the baseline: read the version,
 * append at it, and on a conflict do both again at once, up to `maxAttempts`.
 */
const readThenAppend = async (
  system: System,
  streamId: string,
  event: () => BenchEvent,
  maxAttempts: number
): Promise<Outcome> => {
  for (let attempt = 1; ; attempt++) {
    const version = await system.version(streamId)
    if ((await system.append(streamId, version, [event()])) === "appended") return succeeded(1, attempt)
    if (attempt >= maxAttempts) return { events: 0, attempts: attempt, ok: false }
  }
}

const readAll = (read: (streamId: string) => Promise<number>, streamId: string, size: number): Operation => {
  return async () => {
    const count = await read(streamId)
    if (count !== size) throw new Error(`read ${count} events of ${streamId}, expected ${size}`)
    return succeeded(count)
  }
}

const runOf = (system: System) => {
  if (system.run === undefined) throw new Error(`${system.name} cannot run commands`)
  return system.run
}

/** `execute` gives up after its default schedule: the first try and 4 retries. */
const defaultAttempts = 5

/** Bank accounts `<prefix>0..n-1`, opened with a balance no workload can exhaust. */
const openAccounts = async (system: System, prefix: string, n: number): Promise<ReadonlyArray<string>> => {
  const accounts = Array.from({ length: n }, (_, i) => `${prefix}${i}`)
  await system.seed(
    accounts.map((account) => ({
      streamId: `account-${account}`,
      events: [
        { type: "AccountOpened", data: { owner: `owner of ${account}` } },
        { type: "MoneyDeposited", data: { amount: 1_000_000_000 } }
      ]
    }))
  )
  return accounts
}

const command = <E>(
  system: System,
  program: () => Effect.Effect<
    { readonly attempts: number; readonly events: ReadonlyArray<unknown> },
    E,
    EventStore.EventStore
  >
): Operation => {
  return () =>
    runOf(system)(
      program().pipe(
        Effect.map((result) => succeeded(result.events.length, result.attempts)),
        Effect.catchIf(
          (error): boolean => (error as { _tag?: unknown })._tag === "VersionConflict",
          () => Effect.succeed<Outcome>({ events: 0, attempts: defaultAttempts, ok: false })
        )
      )
    )
}

export const workloads = (options: Options): ReadonlyArray<Workload> => [
  {
    id: "W1",
    title: "append 1 event to a new stream",
    concurrencies: options.concurrencies,
    systems: withPeers,
    prepare: async (system) => appendNew(system, "w1", 1)
  },
  {
    id: "W2",
    title: `read version + append 1 event, ${options.streams} existing streams`,
    concurrencies: options.concurrencies,
    systems: withPeers,
    prepare: async (system) => {
      const streams = Array.from({ length: options.streams }, (_, i) => `w2-${i}`)
      await system.seed(streams.map((streamId) => ({ streamId, events: [benchEvent()] })))
      return () => readThenAppend(system, streams[random(streams.length)] as string, benchEvent, options.maxAttempts)
    }
  },
  {
    id: "W2.personal",
    title: `W2 with a personal value in the event (a ~20-character name, subject: the stream), ${options.streams} existing streams`,
    concurrencies: options.concurrencies,
    systems: ["postgres"],
    variantOf: "W2",
    prepare: async (system) => {
      const streams = Array.from({ length: options.streams }, (_, i) => `w2p-${i}`)
      // Each stream's first event makes its subject's key: the measured appends find it, as for a known customer.
      await system.seed(streams.map((streamId) => ({ streamId, events: [personalBenchEvent(streamId)] })))
      return () => {
        const streamId = streams[random(streams.length)] as string
        return readThenAppend(system, streamId, () => personalBenchEvent(streamId), options.maxAttempts)
      }
    }
  },
  {
    id: "W3",
    title: "append 10 events to a new stream",
    concurrencies: options.concurrencies,
    systems: withPeers,
    prepare: async (system) => appendNew(system, "w3", 10)
  },
  {
    id: "W4.readStream",
    title: `read a ${options.readSize}-event stream (readStream; raw: SELECT + JSON decode), each system in a process of its own`,
    concurrencies: options.concurrencies,
    systems: withPeers,
    // Each read leaves a whole stream's rows as garbage: in one shared process, a system's cells would pay
    // for collecting what the others left, over a heap that holds their pools and caches too.
    ownProcess: true,
    prepare: async (system) => {
      await system.seed([{ streamId: "w4", events: benchEvents(options.readSize) }])
      return readAll(system.readStream, "w4", options.readSize)
    }
  },
  {
    id: "W4.streamEvents",
    title: `read a ${options.readSize}-event stream (streamEvents, default page size)`,
    concurrencies: options.concurrencies,
    systems: stores,
    baseline: "W4.readStream",
    prepare: async (system) => {
      const streamEvents = system.streamEvents
      if (streamEvents === undefined) throw new Error(`${system.name} has no streamEvents`)
      await system.seed([{ streamId: "w4s", events: benchEvents(options.readSize) }])
      return readAll(streamEvents, "w4s", options.readSize)
    }
  },
  {
    id: "W5",
    title: `hot stream: ${options.hotWriters} writers read + append, retry on conflict`,
    concurrencies: [options.hotWriters],
    systems: withPeers,
    prepare: async (system) => {
      await system.seed([{ streamId: "w5-hot", events: [benchEvent()] }])
      return () => readThenAppend(system, "w5-hot", benchEvent, options.maxAttempts)
    }
  },
  {
    id: "W6.deposit",
    title: `execute Deposit (1 stream), ${options.streams} accounts`,
    concurrencies: options.concurrencies,
    systems: stores,
    prepare: async (system) => {
      const accounts = await openAccounts(system, "d", options.streams)
      return command(system, () =>
        execute(Deposit, { account: accounts[random(accounts.length)] as string, amount: 100 })
      )
    }
  },
  {
    id: "W6.transfer",
    title: `execute Transfer (2 streams), ${options.streams} accounts`,
    concurrencies: options.concurrencies,
    systems: stores,
    prepare: async (system) => {
      const accounts = await openAccounts(system, "t", options.streams)
      return command(system, () => {
        const from = random(accounts.length)
        const to = (from + 1 + random(accounts.length - 1)) % accounts.length
        return execute(Transfer, { from: accounts[from] as string, to: accounts[to] as string, amount: 1 })
      })
    }
  }
]
