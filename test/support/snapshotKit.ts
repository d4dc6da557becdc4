/**
 * The command the snapshot checks of the testing kit run on
 * (test/snapshotKit.test.ts, test/postgres/snapshotKit.test.ts), and the
 * random inputs and events they draw: a payment between two accounts that
 * reads every fee account the accounts ever named (discovered), with a state
 * of balances by stream, the fee accounts and the latest deposit's time.
 */
import { Effect, Schema } from "effect"
import { Command, Snapshot, StreamId } from "eventcore"
import * as fc from "fast-check"

export const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Int, at: Schema.Date })
export const Withdrawn = Schema.TaggedStruct("Withdrawn", { amount: Schema.Int })
export const FeeAccountNamed = Schema.TaggedStruct("FeeAccountNamed", { account: Schema.String })
export const LedgerEvent = Schema.Union(Deposited, Withdrawn, FeeAccountNamed)
export type LedgerEvent = typeof LedgerEvent.Type

export const Ledger = Schema.Struct({
  balances: Schema.ReadonlyMap({ key: Schema.String, value: Schema.Int }),
  feeAccounts: Schema.ReadonlySet(Schema.String),
  lastDeposit: Schema.NullOr(Schema.Date)
})
export type Ledger = typeof Ledger.Type

export interface Payment {
  readonly from: StreamId.StreamId
  readonly to: StreamId.StreamId
  readonly amount: number
  /** Whether the payment pays a fee to the fee accounts. */
  readonly withFee: boolean
}

export const applyLedger = (state: Ledger, event: LedgerEvent, recorded: Command.Recorded): Ledger => {
  switch (event._tag) {
    case "FeeAccountNamed":
      return { ...state, feeAccounts: new Set(state.feeAccounts).add(event.account) }
    case "Deposited":
      return {
        ...state,
        balances: new Map(state.balances).set(
          recorded.streamId,
          (state.balances.get(recorded.streamId) ?? 0) + event.amount
        ),
        // The latest in time, whatever order the streams are folded in.
        lastDeposit: state.lastDeposit === null || event.at > state.lastDeposit ? event.at : state.lastDeposit
      }
    case "Withdrawn":
      return {
        ...state,
        balances: new Map(state.balances).set(
          recorded.streamId,
          (state.balances.get(recorded.streamId) ?? 0) - event.amount
        )
      }
  }
}

/** A payment with snapshots, correct: the state is kept per stream, and every fee account ever named is read. */
export const Pay = Command.make({
  name: "Pay",
  event: LedgerEvent,
  streams: (input: Payment) => [input.from, input.to],
  initialState: { balances: new Map(), feeAccounts: new Set(), lastDeposit: null } as Ledger,
  apply: applyLedger,
  // Every fee account the accounts ever named, whatever the input: a stream once discovered stays read.
  discover: (state) => [...state.feeAccounts].map(StreamId.unsafeMake),
  snapshot: Snapshot.make({ state: Ledger, version: 1 }),
  decide: (state, input) =>
    Effect.sync(() => {
      const fee = input.withFee ? [...state.feeAccounts].sort()[0] : undefined
      return [
        { streamId: input.from, event: Withdrawn.make({ amount: input.amount + (fee === undefined ? 0 : 1) }) },
        { streamId: input.to, event: Deposited.make({ amount: input.amount, at: new Date() }) },
        ...(fee === undefined
          ? []
          : [{ streamId: StreamId.unsafeMake(fee), event: Deposited.make({ amount: 1, at: new Date() }) }])
      ]
    })
})

const accounts = ["acc-a", "acc-b"].map(StreamId.unsafeMake)
const feeAccounts = ["fees-1", "fees-2"]
const everyStream = [...accounts, ...feeAccounts.map(StreamId.unsafeMake), StreamId.unsafeMake("elsewhere")]

/** Payments between the two accounts, either way: two payments name the same streams half the time. */
export const payment: fc.Arbitrary<Payment> = fc
  .tuple(fc.shuffledSubarray(accounts, { minLength: 2, maxLength: 2 }), fc.integer({ min: 1, max: 50 }), fc.boolean())
  .map(([[from, to], amount, withFee]) => ({
    from: from as StreamId.StreamId,
    to: to as StreamId.StreamId,
    amount,
    withFee
  }))

const ledgerEvent: fc.Arbitrary<Command.Decision<LedgerEvent>> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      streamId: fc.constantFrom(...everyStream),
      event: fc
        .tuple(
          fc.integer({ min: 1, max: 100 }),
          fc.date({ min: new Date("2025-01-01"), max: new Date("2026-01-01"), noInvalidDate: true })
        )
        .map(([amount, at]) => Deposited.make({ amount, at }))
    })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      streamId: fc.constantFrom(...everyStream),
      event: fc.integer({ min: 1, max: 100 }).map((amount) => Withdrawn.make({ amount }))
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      streamId: fc.constantFrom(...accounts),
      event: fc.constantFrom(...feeAccounts).map((account) => FeeAccountNamed.make({ account }))
    })
  }
)

/** Events on the accounts, the fee accounts they may name, and a stream no payment reads. */
export const ledgerEvents = () => fc.array(ledgerEvent, { maxLength: 8 })
