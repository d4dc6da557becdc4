/**
 * The README's first example, whole: a multi-stream command, run on the
 * in-memory store. `npx tsx examples/readme/transfer.ts` prints the result.
 */
import { Data, Effect, Schema } from "effect"
import { Command, execute, InMemoryEventStore, StreamId } from "eventcore"

const Cents = Schema.Int.pipe(Schema.positive())
export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Cents })
export const TransferSent = Schema.TaggedStruct("TransferSent", { to: Schema.String, amount: Cents })
export const TransferReceived = Schema.TaggedStruct("TransferReceived", { from: Schema.String, amount: Cents })
export const AccountEvent = Schema.Union(MoneyDeposited, TransferSent, TransferReceived)

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{
  readonly account: string
  readonly balance: number
  readonly requested: number
}> {}

export const accountStream = (account: string) => StreamId.unsafeMake(`account-${account}`)

// The state: the balance of every account the command read, by stream.
const initialState: ReadonlyMap<StreamId.StreamId, number> = new Map()
const balanceOf = (balances: ReadonlyMap<StreamId.StreamId, number>, account: string) =>
  balances.get(accountStream(account)) ?? 0

export const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly amount: number }) => [accountStream(input.account)],
  initialState,
  apply: (balances) => balances, // a deposit needs no state
  decide: (_, { account, amount }) =>
    Effect.succeed([{ streamId: accountStream(account), event: MoneyDeposited.make({ amount }) }])
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
  // Folds one event of one of the streams read, in stream order.
  apply: (balances, event, { streamId }) => {
    const balance = balances.get(streamId) ?? 0
    const change = event._tag === "TransferSent" ? -event.amount : event.amount
    return new Map(balances).set(streamId, balance + change)
  },
  decide: (balances, { from, to, amount }) =>
    Effect.gen(function* () {
      const balance = balanceOf(balances, from)
      if (balance < amount) {
        return yield* new InsufficientFunds({ account: from, balance, requested: amount })
      }
      return [
        { streamId: accountStream(from), event: TransferSent.make({ to, amount }) },
        { streamId: accountStream(to), event: TransferReceived.make({ from, amount }) }
      ]
    })
})

const program = Effect.gen(function* () {
  yield* execute(Deposit, { account: "alice", amount: 50_00 })
  return yield* execute(Transfer, { from: "alice", to: "bob", amount: 30_00 })
})
//    ^? Effect<ExecutionResult, InsufficientFunds | VersionConflict | ..., EventStore>

const result = await Effect.runPromise(program.pipe(Effect.provide(InMemoryEventStore.layer)))
console.log(result.streamVersions) // Map { "account-alice" => 2, "account-bob" => 1 }
