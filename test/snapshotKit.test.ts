/**
 * The testing kit's snapshot checks (eventcore/testing): the property holds
 * for a correct command, in memory and on PGlite, and finds each mistake it
 * is there for; golden samples fail loudly when a command changed meaning
 * without a new snapshot version, and say when a sample is outdated.
 */
import { Effect, Schema } from "effect"
import { Command, EventSchema, Snapshot, StreamId } from "eventcore"
import { expectSnapshotCurrent, type SnapshotSample, snapshotProperty, snapshotSample } from "eventcore/testing"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { usePgliteTemplate } from "./support/pglite.js"
import {
  applyLedger,
  Deposited,
  FeeAccountNamed,
  Ledger,
  ledgerEvents,
  Pay,
  payment,
  Withdrawn
} from "./support/snapshotKit.js"

const options = { input: payment, events: ledgerEvents }

const alice = StreamId.unsafeMake("acc-a")
const bob = StreamId.unsafeMake("acc-b")
/** One payment and the events before it: a fee account named and paid, every event type. */
const input = { from: alice, to: bob, amount: 5, withFee: true }
const events = [
  { streamId: alice, event: Deposited.make({ amount: 100, at: new Date("2025-03-01T10:00:00.250Z") }) },
  { streamId: alice, event: FeeAccountNamed.make({ account: "fees-1" }) },
  { streamId: bob, event: Withdrawn.make({ amount: 20 }) },
  { streamId: StreamId.unsafeMake("fees-1"), event: Deposited.make({ amount: 3, at: new Date("2025-02-01") }) }
]

/** Pay with another state schema, same version. */
const withState = <I>(name: string, state: Schema.Schema<Ledger, I>) =>
  Command.make({ ...Pay, name, snapshot: Snapshot.make({ state, version: 1 }) })

describe("snapshotProperty", () => {
  // As the README shows it: Pay reads two accounts and discovers the fee accounts they name.
  it("Pay's snapshots give the state a full fold gives", () =>
    snapshotProperty(Pay, { input: payment, events: ledgerEvents }))

  describe("on PGlite", () => {
    const pglite = usePgliteTemplate()
    it("holds there too", () => snapshotProperty(Pay, { ...options, layer: pglite.layer, numRuns: 8 }))

    it("finds there what only jsonb refuses: a state holding \\u0000", async () => {
      // Fee accounts kept with the account that named them, "\u0000" between: fine in memory, refused by jsonb.
      const Joined = Command.make({
        ...Pay,
        name: "PayJoined",
        apply: (state, event, recorded) =>
          event._tag === "FeeAccountNamed"
            ? { ...state, feeAccounts: new Set(state.feeAccounts).add(`${recorded.streamId}\u0000${event.account}`) }
            : applyLedger(state, event, recorded),
        discover: (state) =>
          [...state.feeAccounts].map((joined) => StreamId.unsafeMake(joined.split("\u0000")[1] ?? ""))
      })
      // One case, so that there is little to shrink: each run on PGlite migrates a schema of its own.
      const named = { input: fc.constant(input), events: () => fc.constant(events) }
      await snapshotProperty(Joined, { ...named, numRuns: 5 })
      const failure = await rejected(snapshotProperty(Joined, { ...named, layer: pglite.layer, numRuns: 5 }))
      expect(failure.message).toMatch(
        /\n {4}warned: eventcore: a snapshot of PayJoined was not written \[command: PayJoined, cause: .*unsupported Unicode escape sequence\]\n/
      )
    })
  })

  it("fails for an apply whose state depends on how the streams' events interleave", async () => {
    // The last deposit folded, not the latest in time: with a snapshot, the streams' events are folded in another order.
    const LastFolded = Command.make({
      ...Pay,
      name: "PayLastFolded",
      apply: (state, event, recorded) => {
        const next = applyLedger(state, event, recorded)
        return event._tag === "Deposited" ? { ...next, lastDeposit: event.at } : next
      }
    })
    const failure = await rejected(snapshotProperty(LastFolded, options))
    expect(failure.message).toMatch(
      /^PayLastFolded: the state from a snapshot and the events after it is not the state a full fold gives\. apply must not depend on how the events of different streams interleave/
    )
    // The executions and the events stored before each, up to the one that failed.
    expect(failure.message).toMatch(/\n {2}stored: .*\n {2}execute\(PayLastFolded, \{.*\}\): a full fold\n/)
    expect(failure.message).toMatch(
      /\n {2}execute\(PayLastFolded, \{.*\}\): from the snapshot \{"balances":.*\} and the events after it\n/
    )
    expect(failure.message).toMatch(/replay with seed: -?\d+, path: "[\d:]+"\)$/)
  })

  it("fails for a state schema that loses part of the state through JSON", async () => {
    // Seconds since the epoch: the milliseconds of the latest deposit are lost.
    const Seconds = Schema.transform(Schema.Int, Schema.DateFromSelf, {
      strict: true,
      decode: (seconds) => new Date(seconds * 1000),
      encode: (date) => Math.floor(date.getTime() / 1000)
    })
    const truncated = await rejected(
      snapshotProperty(
        withState("PayInSeconds", Schema.Struct({ ...Ledger.fields, lastDeposit: Schema.NullOr(Seconds) })),
        options
      )
    )
    expect(truncated.message).toMatch(/^PayInSeconds: the state from a snapshot and the events after it is not/)
    expect(truncated.message).toMatch(/from the snapshot \{.*"lastDeposit":\d+\} and the events after it/)

    // A Map as itself: JSON keeps {} of it, which the schema then refuses, and execute ignores the snapshot.
    const mapAsIs = await rejected(
      snapshotProperty(
        withState(
          "PayMapAsIs",
          Schema.Struct({
            ...Ledger.fields,
            balances: Schema.ReadonlyMapFromSelf({ key: Schema.String, value: Schema.Int })
          })
        ),
        options
      )
    )
    expect(mapAsIs.message).toMatch(
      /^PayMapAsIs: an execution found no snapshot it could use, though the one before it wrote one, so nothing was compared \(see the warnings\)/
    )
    expect(mapAsIs.message).toMatch(
      /warned: eventcore: a snapshot of PayMapAsIs was ignored \(undecodable\): .*ReadonlyMap/s
    )
  })

  it("fails for a discover that depends on more than the state and the declared streams", async () => {
    // Fee accounts read only for payments with a fee: a snapshot written by one covers them for every payment.
    const FeeOnDemand = Command.make({
      ...Pay,
      name: "PayFeeOnDemand",
      discover: (state, input) => (input.withFee ? [...state.feeAccounts].map(StreamId.unsafeMake) : [])
    })
    const failure = await rejected(snapshotProperty(FeeOnDemand, options))
    expect(failure.message).toMatch(
      /^PayFeeOnDemand: with a snapshot the command read other streams than a full fold reads\. discover must depend only on the state and the declared streams/
    )
    // The snapshot was written by a payment with a fee, and read by one without.
    expect(failure.message).toMatch(
      /execute\(PayFeeOnDemand, \{[^\n]*"withFee":true\}\)[^\n]*\n {2}stored: [^\n]*\n {2}execute\(PayFeeOnDemand, \{[^\n]*"withFee":false\}\): from the snapshot/
    )
  })

  it("fails for an apply that changes the state it is given", async () => {
    // The balances of the initial state itself grow: the full folds start from what earlier folds left.
    const InPlace = Command.make({
      ...Pay,
      name: "PayInPlace",
      initialState: { ...Pay.initialState, balances: new Map() },
      apply: (state, event, recorded) => {
        if (event._tag !== "Deposited") return applyLedger(state, event, recorded)
        const balances = state.balances as Map<string, number>
        balances.set(recorded.streamId, (balances.get(recorded.streamId) ?? 0) + event.amount)
        return state
      }
    })
    expect((await rejected(snapshotProperty(InPlace, options))).message).toMatch(
      /^PayInPlace: the state from a snapshot and the events after it is not the state a full fold gives/
    )
  })

  it("refuses a command without a snapshot", async () => {
    const { snapshot: _, ...definition } = Pay
    await expect(snapshotProperty(Command.make(definition), options)).rejects.toThrow(
      "Pay has no snapshot: give it one with snapshot: Snapshot.make(...)"
    )
  })
})

/** Pay's sample as an application commits it: what snapshotSample(Pay, input, events) gave. */
const paySample: SnapshotSample = {
  command: "Pay",
  version: 1,
  eventVersions: "Deposited@1 FeeAccountNamed@1 Withdrawn@1",
  input: { from: "acc-a", to: "acc-b", amount: 5, withFee: true },
  events: [
    {
      streamId: "acc-a",
      eventType: "Deposited",
      schemaVersion: 1,
      data: { amount: 100, at: "2025-03-01T10:00:00.250Z" }
    },
    { streamId: "acc-a", eventType: "FeeAccountNamed", schemaVersion: 1, data: { account: "fees-1" } },
    { streamId: "acc-b", eventType: "Withdrawn", schemaVersion: 1, data: { amount: 20 } },
    {
      streamId: "fees-1",
      eventType: "Deposited",
      schemaVersion: 1,
      data: { amount: 3, at: "2025-02-01T00:00:00.000Z" }
    }
  ],
  state: {
    balances: [
      ["acc-a", 100],
      ["acc-b", -20],
      ["fees-1", 3]
    ],
    feeAccounts: ["fees-1"],
    lastDeposit: "2025-03-01T10:00:00.250Z"
  }
}

/** Withdrawals counted twice: what a change of apply's meaning looks like. */
const doubleWithdrawals = (state: Ledger, event: typeof Pay.event.Type, recorded: Command.Recorded) =>
  applyLedger(state, event._tag === "Withdrawn" ? Withdrawn.make({ amount: event.amount * 2 }) : event, recorded)

describe("snapshot golden samples", () => {
  it("snapshotSample stores the events as execute writes them and the state as a snapshot encodes it", async () => {
    const sample = await snapshotSample(Pay, input, events)
    expect(sample).toEqual(paySample)
    expect(JSON.parse(JSON.stringify(sample))).toEqual(sample)
  })

  // As the README shows it.
  it("Pay's snapshot version is current", () => expectSnapshotCurrent(Pay, paySample))

  it("a change that keeps the snapshots' meaning passes", async () => {
    await expectSnapshotCurrent(Command.make({ ...Pay, decide: () => Effect.succeed([]) }), paySample)
  })

  it("fails loudly, asking for a new version, when apply changed meaning and the version did not", async () => {
    const changed = Command.make({ ...Pay, apply: doubleWithdrawals })
    const failure = await rejected(expectSnapshotCurrent(changed, paySample))
    expect(failure.message).toMatch(
      /^Pay: today's code folds the sample's events to another state than its snapshot of version 1 holds, so a snapshot stored before the change would restore a state today's code never makes: bump the version in Pay's Snapshot\.make from 1 to 2, then make the sample again: expected/
    )
    // What vitest's reporter diffs: the restored state against today's.
    expect((failure.actual as Ledger).balances.get("acc-b")).toBe(-20)
    expect((failure.expected as Ledger).balances.get("acc-b")).toBe(-40)
  })

  it("fails loudly when the stored state no longer decodes and the version did not change", async () => {
    const Renamed = Schema.transform(
      Schema.Struct({ ...Ledger.fields, latestDeposit: Ledger.fields.lastDeposit }).pipe(Schema.omit("lastDeposit")),
      Schema.typeSchema(Ledger),
      {
        strict: true,
        decode: ({ latestDeposit, ...rest }) => ({ ...rest, lastDeposit: latestDeposit }),
        encode: ({ lastDeposit, ...rest }) => ({ ...rest, latestDeposit: lastDeposit })
      }
    )
    const failure = await rejected(expectSnapshotCurrent(withState("Pay", Renamed), paySample))
    expect(failure.message).toMatch(
      /^Pay: the sample's snapshot of version 1 no longer decodes with today's state schema, and the version is still 1: bump the version in Pay's Snapshot\.make from 1 to 2, then make the sample again\.\n.*latestDeposit/s
    )
  })

  it("says the sample is outdated after the version was bumped, or when the event schema reads events otherwise", async () => {
    const bumped = Command.make({
      ...Pay,
      apply: doubleWithdrawals,
      snapshot: Snapshot.make({ state: Ledger, version: 2 })
    })
    expect((await rejected(expectSnapshotCurrent(bumped, paySample))).message).toBe(
      "Pay: the sample is outdated: it holds a snapshot of version 1, and the command's snapshots are of version 2 " +
        "(stored ones of version 1 are ignored). Make the sample again with snapshotSample and commit it."
    )
    await expectSnapshotCurrent(bumped, await snapshotSample(bumped, input, events))

    const evolved = Command.make({ ...Pay, event: EventSchema.evolve(Pay.event, { ignored: ["InterestPaid"] }) })
    expect((await rejected(expectSnapshotCurrent(evolved, paySample))).message).toMatch(
      /^Pay: the sample is outdated: its event schema read stored events as "Deposited@1 FeeAccountNamed@1 Withdrawn@1", today's reads them as ".*InterestPaid.*" \(stored snapshots are ignored\)\. Make the sample again/
    )
    expect((await rejected(expectSnapshotCurrent(Command.make({ ...Pay, name: "Refund" }), paySample))).message).toBe(
      "The sample is of command Pay, not Refund."
    )
  })

  it("snapshotSample refuses a state that does not come back from its schema and JSON", async () => {
    const mapAsIs = withState(
      "PayMapAsIs",
      Schema.Struct({
        ...Ledger.fields,
        balances: Schema.ReadonlyMapFromSelf({ key: Schema.String, value: Schema.Int })
      })
    )
    expect((await rejected(snapshotSample(mapAsIs, input, events))).message).toMatch(
      /^PayMapAsIs: the state does not come back from its schema and JSON as it was \(snapshotProperty shows more\): .*ReadonlyMap/s
    )
  })
})

const rejected = async (
  promise: Promise<unknown>
): Promise<Error & { readonly actual?: unknown; readonly expected?: unknown }> => {
  try {
    await promise
  } catch (error) {
    if (error instanceof Error) return error
    throw error
  }
  throw new Error("expected a failure")
}
