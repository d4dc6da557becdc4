/**
 * What one operation costs in conversation with PostgreSQL, counted two ways:
 * statements, as a postgres.js client created with the `debug` hook sees them
 * (under `PostgresEventStore.make(client)`), and round trips on the wire, as a
 * counting proxy sees them (lib/wire.ts). Each figure is the average over
 * `repeat` operations after a warm-up of 10 (the first use of a prepared
 * statement on each pool connection costs an extra exchange to describe it).
 */
import { Effect } from "effect"
import { EventStore, execute, PostgresEventStore, StreamId, StreamWrites } from "eventcore"
import postgres from "postgres"
import { Deposit, Transfer } from "../../src/demo/domain.js"
import { wireCounter } from "../lib/wire.js"
import { rawSystem } from "../systems/raw.js"
import type { System } from "../systems/system.js"
import { benchEvent } from "./payload.js"

export interface OperationCost {
  readonly operation: string
  /** Statements per operation (postgres.js debug hook); null for the baseline, whose statements are plain. */
  readonly statements: number | null
  /** Round trips per operation on the wire (server answers after client sends). */
  readonly roundTrips: number
  /** Sync'ed exchanges per operation (ReadyForQuery messages). */
  readonly syncs: number
}

export interface RoundTrips {
  readonly transfer: OperationCost
  readonly deposit: OperationCost
  readonly operations: ReadonlyArray<OperationCost>
  readonly repeat: number
  /** The statements of one transfer, as postgres.js sent them. */
  readonly transferStatements: ReadonlyArray<string>
}

const accounts = ["rt-a", "rt-b"] as const

/** Opens the two accounts the commands use, in one append. */
const openAccounts = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  let writes = StreamWrites.empty
  for (const account of accounts) {
    writes = yield* StreamWrites.expect(writes, StreamId.unsafeMake(`account-${account}`), "no_stream")
  }
  for (const account of accounts) {
    const streamId = StreamId.unsafeMake(`account-${account}`)
    writes = yield* StreamWrites.append(writes, { streamId, eventType: "AccountOpened", data: { owner: account } })
    writes = yield* StreamWrites.append(writes, { streamId, eventType: "MoneyDeposited", data: { amount: 1_000_000 } })
  }
  yield* store.append(writes)
})

/** Counts on a migrated database at `url` (writes a few streams of its own there). */
export const countRoundTrips = async (url: string, repeat = 20): Promise<RoundTrips> => {
  const wire = await wireCounter(url)
  let statements: Array<string> = []
  const client = postgres(wire.url, {
    max: 2,
    onnotice: () => {},
    debug: (_connection, query) => {
      statements.push(query.replace(/\s+/g, " ").trim())
    }
  })
  let raw: System | undefined
  try {
    const store = PostgresEventStore.make(client)
    const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
      Effect.runPromise(Effect.provideService(effect, EventStore.EventStore, store))
    const storeSystem = {
      append: (streamId: string) =>
        run(
          Effect.gen(function* () {
            const id = StreamId.unsafeMake(streamId)
            const writes = yield* StreamWrites.expect(StreamWrites.empty, id, "no_stream").pipe(
              Effect.flatMap(StreamWrites.append({ streamId: id, eventType: "OrderPlaced", data: benchEvent().data }))
            )
            yield* Effect.flatMap(EventStore.EventStore, (s) => s.append(writes))
          })
        )
    }
    await run(openAccounts)
    raw = await rawSystem(wire.url, 1)
    const rawSystemOpened = raw

    const measure = async (operation: string, once: (i: number) => Promise<unknown>, counted = true) => {
      // Warm-up: statements are prepared per connection, and the first use on each costs a describe.
      for (let i = 1; i <= 10; i++) await once(-i)
      statements = []
      const before = await wire.counts()
      for (let i = 0; i < repeat; i++) await once(i)
      const after = await wire.counts()
      return {
        operation,
        statements: counted ? statements.length / repeat : null,
        roundTrips: (after.roundTrips - before.roundTrips) / repeat,
        syncs: (after.exchanges - before.exchanges) / repeat
      }
    }
    const transfer = await measure("execute Transfer (2 streams)", () =>
      run(execute(Transfer, { from: "rt-a", to: "rt-b", amount: 1 }))
    )
    statements = []
    await run(execute(Transfer, { from: "rt-b", to: "rt-a", amount: 1 }))
    const transferStatements = statements
    const deposit = await measure("execute Deposit (1 stream)", () =>
      run(execute(Deposit, { account: "rt-a", amount: 1 }))
    )
    const tag = Date.now().toString(36)
    const operations = [
      transfer,
      deposit,
      await measure("store append, 1 event, new stream", (i) => storeSystem.append(`rt-new-${tag}-${i}`)),
      await measure("store readStream", () =>
        run(Effect.flatMap(EventStore.EventStore, (s) => s.readStream(StreamId.unsafeMake("account-rt-a"))))
      ),
      await measure(
        "raw append, 1 event, new stream",
        (i) => rawSystemOpened.append(`rt-raw-${tag}-${i}`, 0, [benchEvent()]),
        false
      ),
      await measure("raw read", () => rawSystemOpened.readStream("rt-raw-none"), false)
    ]
    return { transfer, deposit, operations, repeat, transferStatements }
  } finally {
    await raw?.close()
    await client.end({ timeout: 5 })
    await wire.close()
  }
}
