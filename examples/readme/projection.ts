/** The README's projection: a read model in the application's own table, exactly once with its checkpoint. */
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import { execute, Projection } from "eventcore"
import { AccountEvent, Transfer, type TransferInput } from "../../src/demo/domain.js"

// Your own table, created by your own drizzle-kit migrations.
const balances = pgTable("balances", { account: text().primaryKey(), cents: integer().notNull() })

const Balances = Projection.make({
  name: "bank-balances",
  event: AccountEvent, // only these event types are read, filtered in SQL
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) => {
      const cents = event._tag === "AccountOpened" ? 0 : event._tag === "TransferSent" ? -event.amount : event.amount
      return Effect.tryPromise(() =>
        db
          .insert(balances)
          .values({ account: recorded.streamId, cents })
          .onConflictDoUpdate({ target: balances.account, set: { cents: sql`${balances.cents} + ${cents}` } })
      )
    }),
  reset: Effect.flatMap(Projection.ReadModel, ({ db }) => Effect.tryPromise(() => db.delete(balances)))
})

export const transferThenRead = (input: TransferInput) =>
  Effect.gen(function* () {
    yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 100, onError: "stop" })) // or "skip": dead letters
    const result = yield* execute(Transfer, input)
    const last = result.events[result.events.length - 1]
    if (last !== undefined) yield* Projection.waitFor(Balances, last.position) // read your writes
    yield* Projection.rebuild(Balances) // reset + replay
    return yield* Projection.status // per name: status, position, lag (its own events), owner, error; a row per standby
  })
