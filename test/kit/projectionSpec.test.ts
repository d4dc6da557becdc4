/**
 * The testing kit's projection and reactor specs (`ProjectionSpec`,
 * `ReactorSpec`, `TestStore.pglite` in eventcore/testing), beyond the bank's
 * one (bank.test.ts): row projections, a handler writing through `ReadModel`
 * and one without a read model; stored givens; reactors that run commands or
 * call a service of the test's; what a failing spec reports, for each way it
 * can fail; the traps other event-sourcing kits fall into (a spec that hangs
 * when its last event is not the projection's); one store per spec.
 * test/postgres/testingKit.test.ts runs the bank's spec, the last-event trap and an
 * open transaction on a PostgreSQL server.
 */
import { it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Cause, Clock, Context, Data, Effect, Exit, Layer, Ref, Schema } from "effect"
import {
  Command,
  EventStore,
  execute,
  InMemoryEventStore,
  LogPosition,
  Projection,
  Reactor,
  type RecordedEvent,
  StreamId
} from "eventcore"
import { ProjectionSpec, ReactorSpec, runSpec, TestStore } from "eventcore/testing"
import { beforeAll, describe, expect, it as plainIt } from "vitest"
import { AccountEvent, TransferSent } from "../../src/demo/domain.js"
import { Balances, balances, createBalances } from "../../src/demo/readModel.js"
import { balancesAcrossAccounts, deposited, opened } from "../support/bankSpecs.js"

/** A ledger of deposits, written by a handler of the application's own through `ReadModel`. */
const deposits = pgTable("bank_deposits", {
  id: text("id").primaryKey(),
  account: text("account").notNull(),
  cents: integer("cents").notNull()
})
const createDeposits = sql`create table if not exists bank_deposits (id text primary key, account text not null, cents integer not null)`

// One PGlite template for the file (the bank's balances and the ledger), copied for each spec.
const pglite = TestStore.pglite({
  setup: async (db) => {
    await db.execute(createBalances)
    await db.execute(createDeposits)
  }
})

// Made before the specs (the first build makes it), so that no spec's own time pays for it.
beforeAll(() => Effect.runPromise(Effect.scoped(Layer.build(pglite))))

/** A deposit ledger whose rows are named by `idOf`: one row per deposit, emptied for a rebuild. */
const ledger = (name: string, idOf: (recorded: RecordedEvent) => string) =>
  Projection.make({
    name,
    event: AccountEvent,
    filter: { streamPrefix: "account-" },
    handle: (event, recorded) =>
      event._tag === "MoneyDeposited"
        ? Effect.flatMap(Projection.ReadModel, ({ db }) =>
            Effect.promise(() =>
              db.insert(deposits).values({
                id: idOf(recorded),
                account: recorded.streamId.slice("account-".length),
                cents: event.amount
              })
            )
          )
        : Effect.void,
    reset: Effect.flatMap(Projection.ReadModel, ({ db }) => Effect.promise(() => db.delete(deposits)))
  })

/** Its rows named by the event's place in its stream: the same on every replay. */
const Ledger = ledger("deposit-ledger", (recorded) => `${recorded.streamId}@${recorded.streamVersion}`)

/** Deposits per stream in a `Ref` the test provides: a projection without a read model, for the in-memory store. */
class Totals extends Context.Tag("test/Totals")<Totals, Ref.Ref<ReadonlyMap<string, number>>>() {}

const TotalDeposits = Projection.make({
  name: "total-deposits",
  event: AccountEvent,
  filter: { streamPrefix: "account-" },
  handle: (event, recorded) =>
    event._tag === "MoneyDeposited"
      ? Effect.flatMap(Totals, (totals) =>
          Ref.update(totals, (map) =>
            new Map(map).set(recorded.streamId, (map.get(recorded.streamId) ?? 0) + event.amount)
          )
        )
      : Effect.void,
  reset: Effect.flatMap(Totals, (totals) => Ref.set(totals, new Map()))
})

const withTotals = <A, E, R>(spec: Effect.Effect<A, E, R>) =>
  Effect.provideServiceEffect(spec, Totals, Ref.make<ReadonlyMap<string, number>>(new Map()))

const totals = Effect.flatMap(Totals, Ref.get)

/** A large deposit opens a review of the account, a command run by a reactor. */
const ReviewOpened = Schema.TaggedStruct("ReviewOpened", { amount: Schema.Number })
const ReviewEvent = Schema.Union(ReviewOpened)

const OpenReview = Command.make({
  name: "OpenReview",
  event: ReviewEvent,
  streams: (input: { readonly account: string; readonly amount: number }) => [
    StreamId.unsafeMake(`review-${input.account}`)
  ],
  initialState: undefined,
  apply: (state) => state,
  decide: (_, input) =>
    Effect.succeed([
      { streamId: StreamId.unsafeMake(`review-${input.account}`), event: ReviewOpened.make({ amount: input.amount }) }
    ])
})

const Reviews = Reactor.make({
  name: "reviews",
  event: AccountEvent,
  filter: { streamPrefix: "account-" },
  handle: (event, recorded) =>
    event._tag === "MoneyDeposited" && event.amount >= 10_000_00
      ? Effect.asVoid(
          execute(
            OpenReview,
            { account: recorded.streamId.slice("account-".length), amount: event.amount },
            { causedBy: recorded }
          )
        )
      : Effect.void
})

/** An email service of the test's: what it sent, in a `Ref`. */
class Mailer extends Context.Tag("test/Mailer")<
  Mailer,
  { readonly send: (to: string, subject: string) => Effect.Effect<void> }
>() {}

const Welcome = Reactor.make({
  name: "welcome",
  event: AccountEvent,
  filter: { streamPrefix: "account-" },
  handle: (event) =>
    event._tag === "AccountOpened"
      ? Effect.flatMap(Mailer, (mailer) => mailer.send(event.owner, "Welcome"))
      : Effect.void
})

/** The message of the error a spec died or failed with. */
const failureMessage = <A, E>(spec: Effect.Effect<A, E, never>): Effect.Effect<string> =>
  Effect.map(Effect.exit(spec), (exit) => {
    if (Exit.isSuccess(exit)) throw new Error("the spec passed; it was expected to fail")
    const error = Cause.squash(exit.cause)
    return error instanceof Error ? error.message : String(error)
  })

describe("projection specs that pass", () => {
  it.effect("the bank's balances on PGlite: several givens, across accounts, with transfers", () =>
    balancesAcrossAccounts(pglite)
  )

  it.effect("a handler of the application's own writing through ReadModel (Drizzle), emptied by its reset", () =>
    ProjectionSpec.make(Ledger, { layer: pglite })
      .given({ "account-alice": [opened("Alice"), deposited(20_00)], "account-bob": [opened("Bob")] })
      .given({ "account-bob": [deposited(3_00), TransferSent.make({ to: "alice", amount: 1_00 })] })
      .given({ "account-alice": [deposited(4_00)] })
      .thenRows(deposits, [
        { id: "account-alice@2", account: "alice", cents: 20_00 },
        { id: "account-bob@2", account: "bob", cents: 3_00 },
        { id: "account-alice@3", account: "alice", cents: 4_00 }
      ])
  )

  it.effect("a projection without a read model, in memory: thenExpect checks before and after a rebuild", () =>
    Effect.gen(function* () {
      let checks = 0
      const seen = yield* ProjectionSpec.make(TotalDeposits)
        .given({ "account-alice": [opened("Alice"), deposited(20_00)], "account-bob": [opened("Bob")] })
        .given({ "account-bob": [deposited(3_00)], "account-alice": [deposited(4_00)] })
        .thenExpect(
          Effect.map(totals, (map) => {
            checks += 1
            return map
          })
        )
        .pipe(withTotals)
      // The second check's, after the rebuild: reset emptied the Ref and the replay filled it again.
      expect(seen).toEqual(
        new Map([
          ["account-alice", 24_00],
          ["account-bob", 3_00]
        ])
      )
      expect(checks).toBe(2)
    })
  )
})

describe("what a failing projection or reactor spec reports", () => {
  plainIt("rows other than expected: the projection and its rows", async () => {
    await expect(
      runSpec(
        ProjectionSpec.make(Balances, { layer: pglite })
          .given({ "account-alice": [opened("Alice"), deposited(50_00)] })
          .thenRows(balances, [{ account: "alice", cents: 40_00 }])
      )
    ).rejects.toThrow(/the projection bank-balances made other rows of the given events than expected/)
  })

  plainIt("rows that a rebuild does not make again: a counter outside the events", async () => {
    let counter = 0
    // Numbers its rows with a count of its own: the replay numbers them on from where the first run stopped.
    const Numbered = ledger("numbered-ledger", () => `deposit-${++counter}`)
    await expect(
      runSpec(
        ProjectionSpec.make(Numbered, { layer: pglite })
          .given({ "account-alice": [opened("Alice"), deposited(20_00), deposited(4_00)] })
          .thenRows(deposits, [
            { id: "deposit-1", account: "alice", cents: 20_00 },
            { id: "deposit-2", account: "alice", cents: 4_00 }
          ])
      )
    ).rejects.toThrow(
      /the projection numbered-ledger made other rows of the same events when it replayed them \(a rebuild\)/
    )
    expect(counter).toBe(4)
  })

  it.effect(
    "a handler that fails: the spec says the projection stopped, at which event and why, not that it timed out",
    () =>
      Effect.gen(function* () {
        class LedgerDown extends Data.TaggedError("LedgerDown")<{ readonly account: string }> {}
        const Failing = Projection.make({
          name: "failing",
          event: AccountEvent,
          handle: (event, recorded) =>
            event._tag === "MoneyDeposited" ? Effect.fail(new LedgerDown({ account: recorded.streamId })) : Effect.void
        })
        const context = yield* Layer.build(InMemoryEventStore.layer)
        // A timeout far beyond the runner's retries: the message must come from the runner stopping.
        const message = yield* failureMessage(
          ProjectionSpec.make(Failing, { layer: Layer.succeedContext(context), timeout: "50 seconds" })
            .given({ "account-alice": [opened("Alice"), deposited(1)] })
            .given({ "account-bob": [opened("Bob")] })
            .thenExpect(Effect.void)
        )
        const log = yield* Context.get(context, EventStore.EventStore).readAll({ after: LogPosition.start })
        const [, deposit, last] = log.events
        expect(message).toContain(
          `The projection failing stopped before it reached position ${last?.position} (the last given event): Projection "failing" stopped at event ${deposit?.eventId} (position ${deposit?.position}): `
        )
        expect(message).toContain(`(position ${deposit?.position}): LedgerDown {"account":"account-alice"}`)
        expect(message).not.toMatch(/in time/)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a handler that never finishes: after the timeout, the projection, the position awaited and its checkpoint",
    () =>
      Effect.gen(function* () {
        const Stuck = Projection.make({ name: "stuck", event: AccountEvent, handle: () => Effect.never })
        // A store built here, to read the position of the last given event after the spec.
        const context = yield* Layer.build(InMemoryEventStore.layer)
        const message = yield* failureMessage(
          ProjectionSpec.make(Stuck, { layer: Layer.succeedContext(context), timeout: "500 millis" })
            .given({ "account-alice": [opened("Alice")] })
            .given({ "account-alice": [deposited(1), deposited(2)] })
            .thenExpect(Effect.void)
        )
        const log = yield* Context.get(context, EventStore.EventStore).readAll({ after: LogPosition.start })
        expect(log.events).toHaveLength(3)
        expect(message).toContain(
          `The projection stuck did not reach position ${log.events.at(-1)?.position} (the last given event) in time: its checkpoint is at `
        )
        // Before the first given event: at the start of the log, or past the empty log it caught up with first.
        const checkpoint = /its checkpoint is at (\S+) /.exec(message)?.[1] ?? ""
        expect(checkpoint < (log.events[0]?.position ?? "")).toBe(true)
      }).pipe(Effect.scoped)
  )

  plainIt("a reactor that appended other events than expected", async () => {
    await expect(
      runSpec(
        ReactorSpec.make(Reviews)
          .given({ "account-alice": [opened("Alice"), deposited(20_000_00)] })
          .thenAppended(ReviewEvent, { "review-alice": [ReviewOpened.make({ amount: 10_000_00 })] })
      )
    ).rejects.toThrow(/the reactor reviews appended other events than expected/)
  })
})

describe("peer traps: the last given event is not the projection's", () => {
  // A spec that waits for the projection's checkpoint to reach the last given event hangs when the projection
  // never handles that event (Emmett): the kit waits for the projection to have handled its own events up to there.
  it.effect("an event of a type it does not read, last", () =>
    ProjectionSpec.make(TotalDeposits)
      .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
      .givenStored({ "account-alice": [{ eventType: "AccountFrozen", data: { reason: "audit" } }] })
      .thenExpect(totals)
      .pipe(
        withTotals,
        Effect.map((seen) => expect(seen).toEqual(new Map([["account-alice", 5_00]])))
      )
  )

  it.effect("an event on a stream outside its filter's prefix, last", () =>
    ProjectionSpec.make(TotalDeposits)
      .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
      .given({ "loan-alice": [deposited(900_00)] })
      .thenExpect(totals)
      .pipe(
        withTotals,
        Effect.map((seen) => expect(seen).toEqual(new Map([["account-alice", 5_00]])))
      )
  )

  it.effect("both, on PGlite", () =>
    ProjectionSpec.make(Balances, { layer: pglite })
      .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
      .given({ "loan-alice": [deposited(900_00)] })
      .givenStored({ "account-alice": [{ eventType: "AccountFrozen", data: { reason: "audit" } }] })
      .thenRows(balances, [{ account: "alice", cents: 5_00 }])
  )
})

describe("reactor specs", () => {
  const reviewed = ReactorSpec.make(Reviews)
  describe.each([
    ["in memory", InMemoryEventStore.layer],
    ["on PGlite", pglite]
  ])("a reactor that runs a command, %s", (_, layer) => {
    it.effect("a large deposit opens a review; a small one does not", () =>
      ReactorSpec.make(Reviews, { layer })
        .given({ "account-alice": [opened("Alice"), deposited(20_000_00), deposited(5)] })
        .given({ "account-bob": [opened("Bob"), deposited(10_000_00)] })
        .thenAppended(ReviewEvent, {
          "review-alice": [ReviewOpened.make({ amount: 20_000_00 })],
          "review-bob": [ReviewOpened.make({ amount: 10_000_00 })]
        })
    )
  })

  it.effect("nothing appended: the expected streams may list none, or be empty", () =>
    reviewed
      .given({ "account-alice": [opened("Alice"), deposited(5)] })
      .thenAppended(ReviewEvent, { "review-alice": [] })
  )

  it.effect("the review it opens is caused by the deposit (causedBy)", () =>
    Effect.gen(function* () {
      const [deposit, review] = yield* reviewed.given({ "account-alice": [deposited(20_000_00)] }).thenExpect(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const account = yield* store.readStream(StreamId.unsafeMake("account-alice"))
          const reviews = yield* store.readStream(StreamId.unsafeMake("review-alice"))
          return [account.events[0], reviews.events[0]] as const
        })
      )
      expect(review?.metadata).toMatchObject({ causationId: deposit?.eventId })
    })
  )

  it.effect("a service of the test's (a mailer) that the reactor calls, checked by thenExpect", () =>
    Effect.gen(function* () {
      const sent = yield* Ref.make<ReadonlyArray<{ readonly to: string; readonly subject: string }>>([])
      const mailer = Layer.succeed(Mailer, {
        send: (to, subject) => Ref.update(sent, (mails) => [...mails, { to, subject }])
      })
      const mails = yield* ReactorSpec.make(Welcome)
        .given({ "account-alice": [opened("Alice"), deposited(1)] })
        .given({ "account-bob": [opened("Bob")], "customer-carol": [opened("Carol")] })
        .thenExpect(Ref.get(sent))
        .pipe(Effect.provide(mailer))
      expect(mails).toEqual([
        { to: "Alice", subject: "Welcome" },
        { to: "Bob", subject: "Welcome" }
      ])
    })
  )
})

describe("a store of its own for each spec", () => {
  plainIt("a projection that writes through ReadModel needs a SQL store, and its type says so", () => {
    // Only its type refuses these (`npm run typecheck` fails if it stops refusing them); nothing runs until a then….
    // @ts-expect-error the default, in-memory store has no ReadModelStore
    expect(ProjectionSpec.make(Balances).thenRows).toBeTypeOf("function")
    // @ts-expect-error nor has an in-memory layer given explicitly
    expect(ProjectionSpec.make(Balances, { layer: InMemoryEventStore.layer }).thenRows).toBeTypeOf("function")
  })

  it.effect("two specs in a row on one TestStore.pglite layer: the second starts empty (and gives stored events)", () =>
    Effect.gen(function* () {
      yield* ProjectionSpec.make(Balances, { layer: pglite })
        .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
        .thenRows(balances, [
          { account: "alice", cents: 50_00 },
          { account: "bob", cents: 0 }
        ])
      // The same stream again, here as events an older release stored (givenStored): accepted (no
      // events there), and no row of the first spec's.
      yield* ProjectionSpec.make(Balances, { layer: pglite })
        .givenStored({
          "account-alice": [
            { eventType: "AccountOpened", data: { owner: "Alice" } },
            { eventType: "MoneyDeposited", data: { amount: 5 } }
          ],
          "account-carol": [{ eventType: "AccountOpened", schemaVersion: 1, data: { owner: "Carol" } }]
        })
        .given({ "account-alice": [deposited(2)] })
        .thenRows(balances, [
          { account: "alice", cents: 7 },
          { account: "carol", cents: 0 }
        ])
    })
  )

  it.effect("a layer that is not fresh: the second spec on a stream the first wrote to is refused", () =>
    Effect.gen(function* () {
      // One PGlite store, built once, shared by two specs.
      const shared = Layer.succeedContext(yield* Layer.build(pglite))
      yield* ProjectionSpec.make(Balances, { layer: shared })
        .given({ "account-alice": [opened("Alice"), deposited(50_00)] })
        .thenRows(balances, [{ account: "alice", cents: 50_00 }])
      const message = yield* failureMessage(
        ProjectionSpec.make(Balances, { layer: shared })
          .given({ "account-alice": [opened("Alice")] })
          .thenRows(balances, [{ account: "alice", cents: 0 }])
      )
      expect(message).toMatch(
        /^the projection bank-balances: the stream account-alice already holds 2 events before the spec's given: run each spec on a store of its own/
      )
    }).pipe(Effect.scoped)
  )
})

describe("under it.effect (Effect's TestClock)", () => {
  it.effect(
    "a projection spec runs on the real clock: it completes, and a timeout fires, while the TestClock stands still",
    () =>
      Effect.gen(function* () {
        expect(yield* Clock.currentTimeMillis).toBe(0)
        const seen = yield* ProjectionSpec.make(TotalDeposits)
          .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
          .thenExpect(totals)
          .pipe(withTotals)
        expect(seen).toEqual(new Map([["account-alice", 5_00]]))
        const Stuck = Projection.make({ name: "stuck", event: AccountEvent, handle: () => Effect.never })
        const message = yield* failureMessage(
          ProjectionSpec.make(Stuck, { timeout: "200 millis" })
            .given({ "account-alice": [opened("Alice")] })
            .thenExpect(Effect.void)
        )
        expect(message).toMatch(
          /^The projection stuck did not reach position \d{20}-\d{19} \(the last given event\) in time/
        )
        expect(yield* Clock.currentTimeMillis).toBe(0)
      })
  )
})
