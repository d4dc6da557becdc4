/**
 * The bank as its first release wrote it: an account was "created", and a
 * deposit was an amount of cents in the one currency the bank had, euros.
 * examples/evolution/main.ts runs it first, to leave events of this shape in
 * the store.
 */
import { Data, Effect, Schema } from "effect"
import { Command, StreamId } from "eventcore"

export const AccountCreated = Schema.TaggedStruct("AccountCreated", { owner: Schema.String })
export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Schema.Int.pipe(Schema.positive()) })
export const AccountEvent = Schema.Union(AccountCreated, MoneyDeposited)

export class AccountNotOpen extends Data.TaggedError("AccountNotOpen")<{ readonly account: string }> {}

const accountStream = (account: string) => StreamId.unsafeMake(`account-${account}`)

/** Whether the one account a command read exists. */
const created = (exists: boolean, event: typeof AccountEvent.Type) => exists || event._tag === "AccountCreated"

export const Create = Command.make({
  name: "Create",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly owner: string }) => [accountStream(input.account)],
  initialState: false,
  apply: created,
  decide: (_, { account, owner }) =>
    Effect.succeed([{ streamId: accountStream(account), event: AccountCreated.make({ owner }) }])
})

export const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly amount: number }) => [accountStream(input.account)],
  initialState: false,
  apply: created,
  decide: (exists, { account, amount }) =>
    exists
      ? Effect.succeed([{ streamId: accountStream(account), event: MoneyDeposited.make({ amount }) }])
      : Effect.fail(new AccountNotOpen({ account }))
})
