/**
 * Projections and reactors on PGlite (the read model in a Drizzle table of
 * the application's own, in the same database) and on the in-memory store.
 */
import { PGlite } from "@electric-sql/pglite"
import { eq } from "drizzle-orm"
import { drizzle } from "drizzle-orm/pglite"
import { Data, Effect, Fiber, Schedule, Schema, type Scope } from "effect"
import {
  EventStore,
  execute,
  InMemoryEventStore,
  LogPosition,
  PgliteEventStore,
  Projection,
  Reactor,
  type RecordedEvent
} from "eventcore"
import { writesOf } from "eventcore/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AccountEvent, accountStream, Deposit, MoneyDeposited, Open, Transfer } from "../examples/bank/domain.js"
import { Balances, balances, createBalances, type ReadModelError } from "../examples/bank/readModel.js"

/** A fresh migrated PGlite with the bank's read-model table, per test. */
let template: PGlite | undefined
beforeAll(async () => {
  template = await PGlite.create()
  await Effect.runPromise(PgliteEventStore.migrate(template))
  await drizzle({ client: template }).execute(createBalances)
}, 120_000)
afterAll(() => template?.close())

const withDatabase = <A, E>(
  body: (db: PGlite) => Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore | Scope.Scope>
) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* Effect.acquireRelease(
          Effect.promise(async () => (await (template as PGlite).clone()) as PGlite),
          (db) => Effect.promise(() => db.close())
        )
        return yield* Effect.provide(body(db), PgliteEventStore.layerFromClient(db))
      })
    )
  )

/** The balances the read model holds, by account. */
const readModel = (db: PGlite) =>
  Effect.promise(async () =>
    Object.fromEntries(
      (await drizzle({ client: db }).select().from(balances).orderBy(balances.account)).map((row) => [
        row.account,
        row.cents
      ])
    )
  )

/** The balances folded from the streams themselves. */
const folded = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const result: Record<string, number> = {}
  let position = LogPosition.start
  for (;;) {
    const page = yield* store.readAll({ after: position, filter: { streamPrefix: "account-" } })
    for (const event of page.events) {
      const account = event.streamId.slice("account-".length)
      const data = event.data as { amount?: number }
      result[account] =
        (result[account] ?? 0) +
        (event.eventType === "TransferSent"
          ? -(data.amount ?? 0)
          : event.eventType === "AccountOpened"
            ? 0
            : (data.amount ?? 0))
    }
    position = page.position
    if (page.caughtUp) return result
  }
})

/** The position of the readable head: past every event written so far. */
const lastPosition = Effect.flatMap(EventStore.EventStore, (store) =>
  Effect.gen(function* () {
    let position = LogPosition.start
    for (;;) {
      const page = yield* store.readAll({ after: position })
      position = page.position
      if (page.caughtUp) return position
    }
  })
)

const openAll = (accounts: ReadonlyArray<readonly [string, number]>) =>
  Effect.forEach(accounts, ([account, cents]) =>
    execute(Open, { account, owner: account, ...(cents > 0 ? { initialDeposit: cents } : {}) })
  )

describe("a projection on PGlite", () => {
  it("keeps the read model equal to the fold of the streams, and waitFor reads one's own writes", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([
          ["alice", 100],
          ["bob", 0]
        ])
        yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 3 }))
        const transfer = yield* execute(Transfer, { from: "alice", to: "bob", amount: 30 })
        yield* Projection.waitFor(Balances, (transfer.events.at(-1) as RecordedEvent).position)
        expect(yield* readModel(db)).toEqual({ alice: 70, bob: 30 })
        for (let i = 0; i < 20; i++) yield* execute(Deposit, { account: i % 2 === 0 ? "alice" : "bob", amount: i + 1 })
        yield* Projection.waitFor(Balances, yield* lastPosition)
        expect(yield* readModel(db)).toEqual(yield* folded)
        const [status] = yield* Projection.status
        expect(status).toMatchObject({ name: "bank-balances", kind: "projection", status: "running", lag: 0 })
        expect(status?.owner).toMatch(/\/\d+\//)
      })
    ))

  it("applies every event once across restarts: interrupted runs resume from their checkpoint", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([
          ["a", 1000],
          ["b", 1000]
        ])
        for (let round = 0; round < 6; round++) {
          const runner = yield* Effect.fork(Projection.run(Balances, { batchSize: 2 }))
          for (let i = 0; i < 5; i++)
            yield* execute(Transfer, { from: round % 2 ? "a" : "b", to: round % 2 ? "b" : "a", amount: 7 })
          yield* Effect.sleep(`${round * 7} millis`)
          yield* Fiber.interrupt(runner)
        }
        yield* Effect.forkScoped(Projection.run(Balances))
        yield* Projection.waitFor(Balances, yield* lastPosition)
        expect(yield* readModel(db)).toEqual(yield* folded)
      })
    ))

  it("one instance runs; another stands by and takes over when the first ends", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([["solo", 5]])
        const first = yield* Effect.fork(Projection.run(Balances))
        yield* Projection.waitFor(Balances, yield* lastPosition)
        const second = yield* Effect.fork(Projection.run(Balances))
        yield* Effect.sleep("300 millis")
        const [running] = yield* Projection.status
        yield* execute(Deposit, { account: "solo", amount: 5 })
        yield* Projection.waitFor(Balances, yield* lastPosition)
        yield* Fiber.interrupt(first)
        yield* execute(Deposit, { account: "solo", amount: 5 })
        yield* Projection.waitFor(Balances, yield* lastPosition, { timeout: "10 seconds" })
        const [afterTakeover] = yield* Projection.status
        yield* Fiber.interrupt(second)
        expect(running?.status).toBe("running")
        expect(afterTakeover?.status).toBe("running")
        expect(afterTakeover?.owner).not.toBe(running?.owner)
        expect(yield* readModel(db)).toEqual({ solo: 15 })
        const [stopped] = yield* Projection.status
        expect(stopped?.status).toBe("stopped")
      })
    ))

  it("rebuild resets the read model and replays it to the same state", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([
          ["r1", 50],
          ["r2", 20]
        ])
        yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 1 }))
        yield* execute(Transfer, { from: "r1", to: "r2", amount: 15 })
        yield* Projection.waitFor(Balances, yield* lastPosition)
        const live = yield* readModel(db)
        // Damage the read model, as a bug in an old handler would have.
        yield* Effect.promise(() =>
          drizzle({ client: db }).update(balances).set({ cents: 0 }).where(eq(balances.account, "r1"))
        )
        yield* Projection.rebuild(Balances)
        yield* Projection.waitFor(Balances, yield* lastPosition)
        expect(yield* readModel(db)).toEqual(live)
        expect(live).toEqual({ r1: 35, r2: 35 })
      })
    ))
})

class Poisoned extends Data.TaggedError("Poisoned")<{ readonly amount: number }> {}

/** Like Balances, but an amount of 13 cannot be projected. */
const Fragile = Projection.make({
  name: "fragile",
  event: AccountEvent,
  handle: (event, recorded): Effect.Effect<void, Poisoned | ReadModelError, Projection.ReadModel> =>
    event._tag === "MoneyDeposited" && event.amount === 13
      ? Effect.fail(new Poisoned({ amount: 13 }))
      : Balances.handle(event, recorded)
})

describe("a projection whose handler keeps failing", () => {
  const retry = { retry: Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(2))) }
  it("stops with ProjectionFailed at that event, says failed, and resumes there next time", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([["p", 1]])
        yield* execute(Deposit, { account: "p", amount: 2 })
        const poison = (yield* execute(Deposit, { account: "p", amount: 13 })).events[0] as RecordedEvent
        yield* execute(Deposit, { account: "p", amount: 4 })
        const failure = yield* Effect.flip(Projection.run(Fragile, { batchSize: 10, ...retry }))
        expect(failure).toMatchObject({
          _tag: "ProjectionFailed",
          projection: "fragile",
          eventId: poison.eventId,
          position: poison.position
        })
        // Everything before the poison is committed; nothing after it.
        expect(yield* readModel(db)).toEqual({ p: 3 })
        const [status] = yield* Projection.status
        expect(status).toMatchObject({ status: "failed", error: expect.stringContaining("Poisoned") })
        expect((status?.position ?? poison.position) < poison.position).toBe(true)
        const again = yield* Effect.flip(Projection.run(Fragile, retry))
        expect(again._tag).toBe("ProjectionFailed")
        expect(yield* readModel(db)).toEqual({ p: 3 })
      })
    ))

  it("with onError skip, records a dead letter and moves on", () =>
    withDatabase((db) =>
      Effect.gen(function* () {
        yield* openAll([["s", 1]])
        const poison = (yield* execute(Deposit, { account: "s", amount: 13 })).events[0] as RecordedEvent
        yield* execute(Deposit, { account: "s", amount: 4 })
        yield* Effect.forkScoped(Projection.run(Fragile, { onError: "skip", ...retry }))
        yield* Projection.waitFor(Fragile, yield* lastPosition)
        expect(yield* readModel(db)).toEqual({ s: 5 })
        const letters = yield* Projection.deadLetters(Fragile)
        expect(letters).toEqual([
          {
            eventId: poison.eventId,
            position: poison.position,
            eventType: "MoneyDeposited",
            error: expect.stringContaining("Poisoned")
          }
        ])
      })
    ))

  it("an event that no longer decodes is such a failure, with the decode error", () =>
    withDatabase(() =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* openAll([["d", 1]])
        const bad = yield* store.append(
          writesOf({
            streamId: accountStream("d"),
            expected: 2,
            events: [{ eventType: "MoneyDeposited", data: { amount: "ten" } }]
          })
        )
        const failure = yield* Effect.flip(Projection.run(Balances, retry))
        expect(failure).toMatchObject({ _tag: "ProjectionFailed", eventId: bad.events[0]?.eventId })
        expect(String((failure as { cause: unknown }).cause)).toContain("amount")
      })
    ))
})

describe("reactors", () => {
  it("run commands at least once, and the commands' events carry correlation and causation ids", () =>
    withDatabase(() =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        // Every deposit to "source" is mirrored as a deposit to "mirror".
        const Mirror = Reactor.make({
          name: "mirror",
          event: Schema.Union(MoneyDeposited),
          filter: { streamPrefix: "account-source" },
          handle: (event, recorded) =>
            Effect.asVoid(
              Effect.orDie(execute(Deposit, { account: "mirror", amount: event.amount }, { causedBy: recorded }))
            )
        })
        yield* openAll([
          ["source", 0],
          ["mirror", 0]
        ])
        const deposit = (yield* execute(Deposit, { account: "source", amount: 9 })).events[0] as RecordedEvent
        yield* Effect.forkScoped(Reactor.run(Mirror))
        yield* Projection.waitFor(Mirror, deposit.position)
        const mirrored = (yield* store.readStream(accountStream("mirror"))).events.at(-1) as RecordedEvent
        expect(mirrored.data).toEqual({ amount: 9 })
        expect(deposit.metadata.correlationId).toBe(deposit.metadata.causationId)
        expect(mirrored.metadata).toEqual({
          correlationId: deposit.metadata.correlationId,
          causationId: deposit.eventId
        })
      })
    ))
})

describe("on the in-memory store", () => {
  it("reactors and projections without a ReadModel run, with checkpoints in memory", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const seen: Array<number> = []
        const Counter = Projection.make({
          name: "counter",
          event: Schema.Union(MoneyDeposited),
          handle: (event) => Effect.sync(() => void seen.push(event.amount))
        })
        yield* openAll([["m", 0]])
        for (const amount of [1, 2, 3]) yield* execute(Deposit, { account: "m", amount })
        const runner = yield* Effect.fork(Projection.run(Counter, { batchSize: 2 }))
        yield* Projection.waitFor(Counter, yield* lastPosition)
        yield* Fiber.interrupt(runner)
        yield* execute(Deposit, { account: "m", amount: 4 })
        yield* Effect.forkScoped(Projection.run(Counter))
        yield* Projection.waitFor(Counter, yield* lastPosition)
        expect(seen).toEqual([1, 2, 3, 4])
        const [status] = yield* Projection.status
        expect(status).toMatchObject({ name: "counter", status: "running", lag: 0 })
      }).pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer))
    ))

  it("waitFor fails with ProjectionTimeout when the projection does not get there", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Projection.waitFor({ name: "nobody" }, LogPosition.make(5n, 5n), { timeout: "100 millis" })
        )
        expect(error).toMatchObject({ _tag: "ProjectionTimeout", projection: "nobody" })
      }).pipe(Effect.provide(InMemoryEventStore.layer))
    ))
})
