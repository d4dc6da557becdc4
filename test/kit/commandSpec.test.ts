/**
 * The testing kit's command specs (`CommandSpec` in eventcore/testing), beyond
 * the bank's own (bank.test.ts): the retry path, `discover`, deciding nothing,
 * stored events of older versions, Effect's TestClock; and what a failing spec
 * reports, for each way it can fail.
 */
import { it } from "@effect/vitest"
import { Clock, Effect, Layer, Schedule, Schema, TestClock } from "effect"
import { Command, InMemoryEventStore, StreamId } from "eventcore"
import { CommandSpec, runSpec } from "eventcore/testing"
import { describe, expect } from "vitest"
import * as Evolved from "../../examples/evolution/bank.js"
import {
  AccountAlreadyOpen,
  AccountNotOpen,
  Deposit,
  InvalidAmount,
  Open,
  Transfer,
  TransferReceived,
  TransferSent
} from "../../src/demo/domain.js"
import { deposited, opened } from "../support/bankSpecs.js"

describe("what else a command spec covers", () => {
  it.effect("a deposit on the read-only side of a transfer conflicts too: decide runs twice, then succeeds", () =>
    CommandSpec.make(Transfer)
      .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
      .when({ from: "alice", to: "bob", amount: 30_00 }, { concurrently: { "account-bob": [deposited(1)] } })
      .thenAppended(
        {
          "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })],
          "account-bob": [TransferReceived.make({ from: "alice", amount: 30_00 })]
        },
        { decided: 2 }
      )
  )

  it.effect("with no retry left, the conflict itself is the failure", () =>
    CommandSpec.make(Deposit)
      .given({ "account-alice": [opened("Alice")] })
      .when(
        { account: "alice", amount: 1 },
        { concurrently: { "account-alice": [deposited(2)] }, retry: Schedule.stop }
      )
      .thenFails("VersionConflict")
  )

  it.effect("an error named by its tag only", () =>
    CommandSpec.make(Deposit).when({ account: "nobody", amount: 1 }).thenFails("AccountNotOpen")
  )

  it.effect("events an older release stored are upcast before the command folds them", () =>
    CommandSpec.make(Evolved.Withdraw)
      // Release 1 stored AccountCreated, and deposits as integer cents in euros.
      .givenStored({
        "account-alice": [
          { eventType: "AccountCreated", data: { owner: "Alice" } },
          { eventType: "MoneyDeposited", schemaVersion: 1, data: { amount: 20_00 } }
        ]
      })
      .when({ account: "alice", money: { cents: 30_00, currency: "EUR" } })
      .thenFails(
        new Evolved.InsufficientFunds({
          account: "alice",
          balance: { cents: 20_00, currency: "EUR" },
          requested: { cents: 30_00, currency: "EUR" }
        })
      )
  )

  it.effect("a command that decides nothing", () =>
    CommandSpec.make(Shipping)
      .given({ "order-1": [OrderPlaced.make({ customer: "customer-7" })], "customer-7": [CustomerBlocked.make({})] })
      .when({ order: "order-1" })
      .thenNothingAppended()
  )

  it.effect("discover: the streams found from the state are read and may be written", () =>
    CommandSpec.make(Shipping)
      .given({ "order-1": [OrderPlaced.make({ customer: "customer-7" })] })
      .when({ order: "order-1" })
      .thenAppended({
        "order-1": [OrderShipped.make({})],
        "customer-7": [CustomerShippedTo.make({ order: "order-1" })]
      })
  )

  it.effect("decide runs on the spec's clock: TestClock under it.effect", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust("1 hour")
      yield* CommandSpec.make(Stamp)
        .when({ stream: "stamps-1" })
        .thenAppended({ "stamps-1": [Stamped.make({ at: 3_600_000 })] })
    })
  )

  it.effect("outcome: the whole result, for assertions of one's own", () =>
    Effect.gen(function* () {
      const outcome = yield* CommandSpec.make(Open)
        .given({ "account-bob": [opened("Bob")] })
        .when({ account: "alice", owner: "Alice" }).outcome
      expect(outcome.decided).toBe(1)
      expect(outcome.given.map((event) => [event.streamId, event.eventType])).toEqual([
        ["account-bob", "AccountOpened"]
      ])
      expect(outcome.exit._tag).toBe("Success")
      expect(outcome.appended).toEqual({ "account-alice": [opened("Alice")] })
    })
  )
})

describe("a failing spec says why, at the test's line", () => {
  const fails = (spec: Effect.Effect<void>, message: RegExp) => expect(runSpec(spec)).rejects.toThrow(message)

  it("other events than expected: vitest's difference of the events", async () => {
    const error = await runSpec(
      CommandSpec.make(Open)
        .when({ account: "alice", owner: "Alice", initialDeposit: 5 })
        .thenAppended({ "account-alice": [opened("Alice"), deposited(6)] })
    ).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(Error)
    const failure = error as Error & { actual?: unknown; expected?: unknown }
    expect(failure.message).toMatch(
      /^Open\(\{"account":"alice","owner":"Alice","initialDeposit":5\}\) appended other events than expected/
    )
    // What vitest shows as the difference: the events by stream, as the test wrote them.
    expect(failure.actual).toEqual({ "account-alice": [opened("Alice"), deposited(5)] })
    expect(failure.expected).toEqual({ "account-alice": [opened("Alice"), deposited(6)] })
    // The stack starts at this file, where the spec was written, not inside the kit.
    expect(failure.stack?.split("\n")[1]).toMatch(/commandSpec\.test\.ts/)
  })

  it("events on a stream the spec did not expect", () =>
    fails(
      CommandSpec.make(Transfer)
        .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
        .when({ from: "alice", to: "bob", amount: 1 })
        .thenAppended({ "account-alice": [TransferSent.make({ to: "bob", amount: 1 })] }),
      /Transfer\(.*\) appended other events than expected/
    ))

  it("a failure where events were expected names the error and its facts", () =>
    fails(
      CommandSpec.make(Transfer)
        .given({ "account-alice": [opened("Alice"), deposited(10_00)], "account-bob": [opened("Bob")] })
        .when({ from: "alice", to: "bob", amount: 30_00 })
        .thenAppended({ "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })] }),
      /failed with InsufficientFunds \{"account":"alice","balance":1000,"requested":3000\}; expected it to append:\n {2}account-alice: TransferSent \{"to":"bob","amount":3000\}/
    ))

  it("success where a failure was expected lists what it appended", () =>
    fails(
      CommandSpec.make(Open)
        .when({ account: "alice", owner: "Alice" })
        .thenFails(new AccountAlreadyOpen({ account: "alice" })),
      /succeeded; expected it to fail with AccountAlreadyOpen \{"account":"alice"\}\. It appended:\n {2}account-alice: AccountOpened \{"owner":"Alice"\}/
    ))

  it("another error than expected, field by field", () =>
    fails(
      CommandSpec.make(Deposit)
        .given({ "account-alice": [opened("Alice")] })
        .when({ account: "alice", amount: -1 })
        .thenFails(new InvalidAmount({ amount: 1 })),
      /Deposit\(.*\) failed with another error/
    ))

  it("another tag than expected", () =>
    fails(
      CommandSpec.make(Deposit)
        .when({ account: "alice", amount: 1 })
        .thenFails(new AccountNotOpen({ account: "bob" })),
      /failed with another error/
    ))

  it("a defect is not a failure", () =>
    fails(
      CommandSpec.make(Crashing).when(undefined).thenFails("Boom"),
      /Crashing\(undefined\) died where it was expected to fail with Boom:\n.*decide crashed/
    ))

  it("events where nothing was expected", () =>
    fails(
      CommandSpec.make(Open).when({ account: "alice", owner: "Alice" }).thenNothingAppended(),
      /appended events where it was expected to append nothing/
    ))

  it("decide ran another number of times than expected", () =>
    fails(
      CommandSpec.make(Open)
        .when({ account: "alice", owner: "Alice" })
        .thenAppended({ "account-alice": [opened("Alice")] }, { decided: 2 }),
      /ran decide another number of times/
    ))

  it("a store that is not empty: the spec refuses to start", () => {
    // One store for every build: the second spec finds the first one's events.
    const shared = Layer.succeedContext(Effect.runSync(Effect.scoped(Layer.build(InMemoryEventStore.layer))))
    const spec = CommandSpec.make(Open, { layer: shared })
      .given({ "account-alice": [opened("Alice")] })
      .when({ account: "bob", owner: "Bob" })
    return runSpec(spec.thenAppended({ "account-bob": [opened("Bob")] })).then(() =>
      fails(
        spec.thenAppended({ "account-bob": [opened("Bob")] }),
        /the stream account-alice already holds 1 events before the spec's given/
      )
    )
  })

  it("a stream name that is not a stream id", () =>
    fails(
      CommandSpec.make(Open)
        .given({ "": [opened("Alice")] })
        .when({ account: "bob", owner: "Bob" })
        .thenNothingAppended(),
      /names the stream "", which is not a stream id/
    ))
})

// A command of a shop, for discover and for deciding nothing: an order names its customer's stream,
// found from the order's events; a blocked customer is not shipped to.
const OrderPlaced = Schema.TaggedStruct("OrderPlaced", { customer: Schema.String })
const OrderShipped = Schema.TaggedStruct("OrderShipped", {})
const CustomerBlocked = Schema.TaggedStruct("CustomerBlocked", {})
const CustomerShippedTo = Schema.TaggedStruct("CustomerShippedTo", { order: Schema.String })
const ShopEvent = Schema.Union(OrderPlaced, OrderShipped, CustomerBlocked, CustomerShippedTo)

const Shipping = Command.make({
  name: "Shipping",
  event: ShopEvent,
  streams: (input: { readonly order: string }) => [StreamId.unsafeMake(input.order)],
  initialState: { customer: undefined as string | undefined, blocked: false },
  apply: (state, event) =>
    event._tag === "OrderPlaced"
      ? { ...state, customer: event.customer }
      : event._tag === "CustomerBlocked"
        ? { ...state, blocked: true }
        : state,
  discover: (state) => (state.customer === undefined ? [] : [StreamId.unsafeMake(state.customer)]),
  decide: (state, { order }) =>
    Effect.succeed(
      state.customer === undefined || state.blocked
        ? []
        : [
            { streamId: StreamId.unsafeMake(order), event: OrderShipped.make({}) },
            { streamId: StreamId.unsafeMake(state.customer), event: CustomerShippedTo.make({ order }) }
          ]
    )
})

const Stamped = Schema.TaggedStruct("Stamped", { at: Schema.Number })
const Stamp = Command.make({
  name: "Stamp",
  event: Schema.Union(Stamped),
  streams: (input: { readonly stream: string }) => [StreamId.unsafeMake(input.stream)],
  initialState: undefined,
  apply: () => undefined,
  decide: (_, { stream }) =>
    Effect.map(Clock.currentTimeMillis, (at) => [
      { streamId: StreamId.unsafeMake(stream), event: Stamped.make({ at }) }
    ])
})

const Crashing = Command.make({
  name: "Crashing",
  event: Schema.Union(Stamped),
  streams: () => [StreamId.unsafeMake("crashing")],
  initialState: undefined,
  apply: () => undefined,
  decide: () => Effect.dieMessage("decide crashed")
})
