/**
 * A small bank: accounts are streams, and a transfer is one command that reads
 * and writes two of them atomically.
 */

import { Data, Effect, Schema } from "effect"
import { Command, EventStore, StreamId } from "../index.js"

/** Amounts are integer cents. */
const Cents = Schema.Int.pipe(Schema.positive())

export const AccountOpened = Schema.TaggedStruct("AccountOpened", { owner: Schema.String })
export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Cents })
export const TransferSent = Schema.TaggedStruct("TransferSent", { to: Schema.String, amount: Cents })
export const TransferReceived = Schema.TaggedStruct("TransferReceived", { from: Schema.String, amount: Cents })

export const AccountEvent = Schema.Union(AccountOpened, MoneyDeposited, TransferSent, TransferReceived)
export type AccountEvent = typeof AccountEvent.Type

export class AccountNotOpen extends Data.TaggedError("AccountNotOpen")<{ readonly account: string }> {}
export class AccountAlreadyOpen extends Data.TaggedError("AccountAlreadyOpen")<{ readonly account: string }> {}
export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{
  readonly account: string
  readonly balance: number
  readonly requested: number
}> {}
export class InvalidAmount extends Data.TaggedError("InvalidAmount")<{ readonly amount: number }> {}
export class SameAccount extends Data.TaggedError("SameAccount")<{ readonly account: string }> {}

export const accountStream = (account: string) => StreamId.unsafeMake(`account-${account}`)

interface Account {
  readonly open: boolean
  readonly balance: number
}

/** Every account a command read, by stream. */
export interface Accounts {
  readonly accounts: ReadonlyMap<StreamId.StreamId, Account>
}

const closed: Account = { open: false, balance: 0 }

export const initialState: Accounts = { accounts: new Map() }

export const accountOf = (state: Accounts, account: string): Account =>
  state.accounts.get(accountStream(account)) ?? closed

export const applyAccountEvent = (state: Accounts, event: AccountEvent, recorded: Command.Recorded): Accounts => {
  const account = state.accounts.get(recorded.streamId) ?? closed
  const next = ((): Account => {
    switch (event._tag) {
      case "AccountOpened":
        return { open: true, balance: 0 }
      case "MoneyDeposited":
      case "TransferReceived":
        return { ...account, balance: account.balance + event.amount }
      case "TransferSent":
        return { ...account, balance: account.balance - event.amount }
    }
  })()
  return { accounts: new Map(state.accounts).set(recorded.streamId, next) }
}

export interface OpenInput {
  readonly account: string
  readonly owner: string
  /** Deposited in the same atomic append as the opening. */
  readonly initialDeposit?: number
}

export const Open = Command.make({
  name: "Open",
  event: AccountEvent,
  streams: (input: OpenInput) => [accountStream(input.account)],
  initialState,
  apply: applyAccountEvent,
  decide: (state, { account, owner, initialDeposit }) =>
    Effect.gen(function* () {
      if (accountOf(state, account).open) return yield* new AccountAlreadyOpen({ account })
      if (initialDeposit !== undefined && (!Number.isSafeInteger(initialDeposit) || initialDeposit <= 0)) {
        return yield* new InvalidAmount({ amount: initialDeposit })
      }
      const streamId = accountStream(account)
      return [
        { streamId, event: AccountOpened.make({ owner }) },
        ...(initialDeposit === undefined ? [] : [{ streamId, event: MoneyDeposited.make({ amount: initialDeposit }) }])
      ]
    })
})

export const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly amount: number }) => [accountStream(input.account)],
  initialState,
  apply: applyAccountEvent,
  decide: (state, { account, amount }) =>
    Effect.gen(function* () {
      if (!Number.isSafeInteger(amount) || amount <= 0) return yield* new InvalidAmount({ amount })
      if (!accountOf(state, account).open) return yield* new AccountNotOpen({ account })
      return [{ streamId: accountStream(account), event: MoneyDeposited.make({ amount }) }]
    })
})

export interface TransferInput {
  readonly from: string
  readonly to: string
  readonly amount: number
}

export const Transfer = Command.make({
  name: "Transfer",
  event: AccountEvent,
  streams: (input: TransferInput) => [accountStream(input.from), accountStream(input.to)],
  initialState,
  apply: applyAccountEvent,
  decide: (state, { from, to, amount }) =>
    Effect.gen(function* () {
      if (!Number.isSafeInteger(amount) || amount <= 0) return yield* new InvalidAmount({ amount })
      if (from === to) return yield* new SameAccount({ account: from })
      const source = accountOf(state, from)
      if (!source.open) return yield* new AccountNotOpen({ account: from })
      if (!accountOf(state, to).open) return yield* new AccountNotOpen({ account: to })
      if (source.balance < amount) {
        return yield* new InsufficientFunds({ account: from, balance: source.balance, requested: amount })
      }
      return [
        { streamId: accountStream(from), event: TransferSent.make({ to, amount }) },
        { streamId: accountStream(to), event: TransferReceived.make({ from, amount }) }
      ]
    })
})

/** An account's balance, folded from its stream (0 when it has none). */
export const balanceOf = (account: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const read = yield* store
      .readStream(accountStream(account))
      .pipe(Effect.catchTag("StreamNotFound", () => Effect.succeed({ events: [] })))
    let state = initialState
    for (const recorded of read.events) {
      const event = yield* Schema.decodeUnknown(AccountEvent)({
        ...(recorded.data as object),
        _tag: recorded.eventType
      })
      state = applyAccountEvent(state, event, recorded)
    }
    return accountOf(state, account).balance
  })
