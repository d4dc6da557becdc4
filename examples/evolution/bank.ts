/**
 * The bank two releases later. Release 2 gave deposits a currency; release 3
 * keeps amount and currency together as `Money`, renamed `AccountCreated` to
 * the bank's word, `AccountOpened`, and added withdrawals. Every event the
 * first release stored (examples/evolution/release1.ts) is still read: as
 * today's events.
 */

import { sql } from "drizzle-orm"
import { integer, pgTable, primaryKey, text } from "drizzle-orm/pg-core"
import { Data, Effect, Schema } from "effect"
import { Command, EventSchema, Projection, StreamId } from "eventcore"

const Cents = Schema.Int.pipe(Schema.positive())
const Currency = Schema.Literal("EUR", "USD")
export const Money = Schema.Struct({ cents: Cents, currency: Currency })
export type Money = typeof Money.Type

export const AccountOpened = Schema.TaggedStruct("AccountOpened", { owner: Schema.String })

export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { money: Money }).pipe(
  EventSchema.versions(
    // 1 -> 2 (release 2): every deposit before had been in euros
    EventSchema.upcast(Schema.Struct({ amount: Cents }), ({ amount }) => ({ amount, currency: "EUR" })),
    // 2 -> 3 (release 3): amount and currency became one field
    EventSchema.upcast(Schema.Struct({ amount: Cents, currency: Currency }), ({ amount, currency }) => ({
      money: { cents: amount, currency }
    }))
  )
)

export const MoneyWithdrawn = Schema.TaggedStruct("MoneyWithdrawn", { money: Money })

export const AccountEvent = EventSchema.evolve(Schema.Union(AccountOpened, MoneyDeposited, MoneyWithdrawn), {
  renamed: { AccountCreated: "AccountOpened" }
})
export type AccountEvent = typeof AccountEvent.Type

export class AccountNotOpen extends Data.TaggedError("AccountNotOpen")<{ readonly account: string }> {}
export class AccountAlreadyOpen extends Data.TaggedError("AccountAlreadyOpen")<{ readonly account: string }> {}
export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{
  readonly account: string
  readonly balance: Money
  readonly requested: Money
}> {}

export const accountStream = (account: string) => StreamId.unsafeMake(`account-${account}`)

/** The one account a command read: whether it is open, and its balance in each currency. */
interface Account {
  readonly open: boolean
  readonly cents: ReadonlyMap<Money["currency"], number>
}

const closed: Account = { open: false, cents: new Map() }

const balanceIn = (account: Account, currency: Money["currency"]) => account.cents.get(currency) ?? 0

const moved = (account: Account, { cents, currency }: Money): Account => ({
  ...account,
  cents: new Map(account.cents).set(currency, balanceIn(account, currency) + cents)
})

const apply = (account: Account, event: AccountEvent): Account => {
  switch (event._tag) {
    case "AccountOpened":
      return { ...account, open: true }
    case "MoneyDeposited":
      return moved(account, event.money)
    case "MoneyWithdrawn":
      return moved(account, { ...event.money, cents: -event.money.cents })
  }
}

export const Open = Command.make({
  name: "Open",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly owner: string }) => [accountStream(input.account)],
  initialState: closed,
  apply,
  decide: (state, { account, owner }) =>
    state.open
      ? Effect.fail(new AccountAlreadyOpen({ account }))
      : Effect.succeed([{ streamId: accountStream(account), event: AccountOpened.make({ owner }) }])
})

export interface MoneyInput {
  readonly account: string
  readonly money: Money
}

export const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: MoneyInput) => [accountStream(input.account)],
  initialState: closed,
  apply,
  decide: (state, { account, money }) =>
    state.open
      ? Effect.succeed([{ streamId: accountStream(account), event: MoneyDeposited.make({ money }) }])
      : Effect.fail(new AccountNotOpen({ account }))
})

export const Withdraw = Command.make({
  name: "Withdraw",
  event: AccountEvent,
  streams: (input: MoneyInput) => [accountStream(input.account)],
  initialState: closed,
  apply,
  decide: (state, { account, money }) =>
    Effect.gen(function* () {
      if (!state.open) return yield* new AccountNotOpen({ account })
      const balance = balanceIn(state, money.currency)
      if (balance < money.cents) {
        return yield* new InsufficientFunds({
          account,
          balance: { cents: balance, currency: money.currency },
          requested: money
        })
      }
      return [{ streamId: accountStream(account), event: MoneyWithdrawn.make({ money }) }]
    })
})

/** The read model: every account's owner, and its balance in each currency. */
export const accounts = pgTable("accounts", { account: text().primaryKey(), owner: text().notNull() })
export const balances = pgTable(
  "balances",
  { account: text().notNull(), currency: text().notNull(), cents: integer().notNull() },
  (table) => [primaryKey({ columns: [table.account, table.currency] })]
)

/** The read model's tables, for a database without them: an application creates them with its own migrations. */
export const createReadModel = `
create table if not exists accounts (account text primary key, owner text not null);
create table if not exists balances (account text, currency text, cents integer not null, primary key (account, currency));`

const prefix = "account-"

export const Balances = Projection.make({
  name: "account-balances",
  event: AccountEvent,
  filter: { streamPrefix: prefix },
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) => {
      const account = recorded.streamId.slice(prefix.length)
      if (event._tag === "AccountOpened") {
        return Effect.tryPromise(() => db.insert(accounts).values({ account, owner: event.owner }))
      }
      const { cents, currency } = event.money
      const change = event._tag === "MoneyDeposited" ? cents : -cents
      return Effect.tryPromise(() =>
        db
          .insert(balances)
          .values({ account, currency, cents: change })
          .onConflictDoUpdate({
            target: [balances.account, balances.currency],
            set: { cents: sql`${balances.cents} + ${change}` }
          })
      )
    }),
  reset: Effect.flatMap(Projection.ReadModel, ({ db }) =>
    Effect.tryPromise(async () => {
      await db.delete(accounts)
      await db.delete(balances)
    })
  )
})
