/**
 * The bank's read model: every account's balance in a table of the
 * application's own, kept by a projection from the accounts' events. A real
 * application creates the table with its own drizzle-kit migrations; the demo
 * and the tests run `createBalances`.
 */
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
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

/**
 * Every account's balance: a row projection, so each batch of events is one
 * query for the rows it touches, a fold in memory, and one upsert.
 */
export const Balances = Projection.rows({
  name: "bank-balances",
  event: AccountEvent,
  filter: { streamPrefix: prefix },
  table: balances,
  key: (_, recorded) => recorded.streamId.slice(prefix.length),
  evolve: (row, event, recorded) => ({
    account: recorded.streamId.slice(prefix.length),
    cents: (row?.cents ?? 0) + change(event)
  })
})
