/** The README's projection: a read model in the application's own table, exactly once with its checkpoint. */
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { execute, Projection } from "eventcore"
import { AccountEvent, Transfer, type TransferInput } from "../../src/demo/domain.js"

// Your own table, created by your own drizzle-kit migrations.
const balances = pgTable("balances", { account: text().primaryKey(), cents: integer().notNull() })

// A row projection: per event, the row it changes (`key`) and that row after it (`evolve`), both pure.
const Balances = Projection.rows({
  name: "bank-balances",
  event: AccountEvent, // only these event types are read, filtered in SQL
  table: balances,
  key: (_, recorded) => recorded.streamId,
  evolve: (row, event, recorded) => ({
    account: recorded.streamId,
    cents:
      (row?.cents ?? 0) +
      (event._tag === "AccountOpened" ? 0 : event._tag === "TransferSent" ? -event.amount : event.amount)
  })
})

export const transferThenRead = (input: TransferInput) =>
  Effect.gen(function* () {
    yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 1_000, onError: "stop" })) // or "skip": dead letters
    const result = yield* execute(Transfer, input)
    const last = result.events[result.events.length - 1]
    if (last !== undefined) yield* Projection.waitFor(Balances, last.position) // read your writes
    yield* Projection.rebuild(Balances) // empties the table, replays
    return yield* Projection.status // per name: status, position, lag (its own events), owner, error; a row per standby
  })
