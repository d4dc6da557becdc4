/**
 * The bank's read model: every account's balance in a table of the
 * application's own, kept by a projection from the accounts' events. A real
 * application creates the table with its own drizzle-kit migrations; the demo
 * and the tests run `createBalances`.
 */
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Data, Effect } from "effect"
import { Projection } from "../index.js"
import { AccountEvent } from "./domain.js"

export const balances = pgTable("bank_balances", {
  account: text("account").primaryKey(),
  cents: integer("cents").notNull()
})

export const createBalances = sql`create table if not exists bank_balances (account text primary key, cents integer not null)`

const prefix = "account-"

/** What an account's event does to its balance. */
const change = (event: AccountEvent): number => {
  switch (event._tag) {
    case "AccountOpened":
      return 0
    case "MoneyDeposited":
    case "TransferReceived":
      return event.amount
    case "TransferSent":
      return -event.amount
  }
}

export const Balances = Projection.make({
  name: "bank-balances",
  event: AccountEvent,
  filter: { streamPrefix: prefix },
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) => {
      const cents = change(event)
      return Effect.tryPromise({
        try: () =>
          db
            .insert(balances)
            .values({ account: recorded.streamId.slice(prefix.length), cents })
            .onConflictDoUpdate({ target: balances.account, set: { cents: sql`${balances.cents} + ${cents}` } }),
        catch: (cause) => new ReadModelError({ cause })
      })
    }),
  reset: Effect.flatMap(Projection.ReadModel, ({ db }) =>
    Effect.tryPromise({ try: () => db.delete(balances), catch: (cause) => new ReadModelError({ cause }) })
  )
})

/** The read model's table refused a write: the database's error, with its message. */
export class ReadModelError extends Data.TaggedError("ReadModelError")<{ readonly cause: unknown }> {
  override get message() {
    return this.cause instanceof Error ? this.cause.message : String(this.cause)
  }
}
