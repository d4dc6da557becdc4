/**
 * The README's snapshots example: a transfer between accounts with long
 * histories, with snapshots of its state. `npx tsx examples/readme/snapshots.ts`
 * prints how many events each run folded.
 */
import { Effect, Schema } from "effect"
import { Command, execute, InMemoryEventStore, Snapshot, StreamId } from "eventcore"

const Cents = Schema.Int.pipe(Schema.positive())
const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Cents })
const TransferSent = Schema.TaggedStruct("TransferSent", { to: Schema.String, amount: Cents })
const TransferReceived = Schema.TaggedStruct("TransferReceived", { from: Schema.String, amount: Cents })
const AccountEvent = Schema.Union(MoneyDeposited, TransferSent, TransferReceived)

const accountStream = (account: string) => StreamId.unsafeMake(`account-${account}`)

let folded = 0

const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly account: string; readonly amount: number }) => [accountStream(input.account)],
  initialState: undefined,
  apply: () => undefined,
  decide: (_, { account, amount }) =>
    Effect.succeed([{ streamId: accountStream(account), event: MoneyDeposited.make({ amount }) }])
})

const Transfer = Command.make({
  name: "Transfer",
  event: AccountEvent,
  streams: (input: { readonly from: string; readonly to: string; readonly amount: number }) => [
    accountStream(input.from),
    accountStream(input.to)
  ],
  initialState: new Map() as ReadonlyMap<StreamId.StreamId, number>,
  apply: (balances, event, { streamId }) => {
    folded += 1
    const change = event._tag === "TransferSent" ? -event.amount : event.amount
    return new Map(balances).set(streamId, (balances.get(streamId) ?? 0) + change)
  },
  decide: (balances, { from, to, amount }) =>
    Effect.succeed([
      { streamId: accountStream(from), event: TransferSent.make({ to, amount }) },
      { streamId: accountStream(to), event: TransferReceived.make({ from, amount }) }
    ]).pipe(Effect.filterOrDieMessage(() => (balances.get(accountStream(from)) ?? 0) >= amount, "insufficient funds")),
  // The state as JSON: Schema encodes the Map as [stream, balance] pairs and decodes it back.
  snapshot: Snapshot.make({
    state: Schema.ReadonlyMap({ key: StreamId.schema, value: Schema.Number }),
    // Bump it whenever `apply` changes what it makes of an event: older snapshots are then ignored.
    version: 1
  })
})

const program = Effect.gen(function* () {
  for (let day = 0; day < 500; day++) yield* execute(Deposit, { account: "alice", amount: 1_00 })

  // Folds all 500 events, then writes a snapshot in the background (the default: after 100 events).
  yield* execute(Transfer, { from: "alice", to: "bob", amount: 10_00 })
  const first = folded
  yield* Snapshot.awaitWrites

  // Reads the snapshot and only the 2 events the first transfer wrote, in one read.
  yield* execute(Transfer, { from: "alice", to: "bob", amount: 10_00 })
  return { first, second: folded - first }
})

const { first, second } = await Effect.runPromise(program.pipe(Effect.provide(InMemoryEventStore.layer)))
console.log(`folded ${first} events, then ${second}`) // folded 500 events, then 2
