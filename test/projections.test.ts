/**
 * Projections and reactors on PGlite (the read model in a Drizzle table of
 * the application's own, in the same database) and on the in-memory store.
 */
import { readFileSync } from "node:fs"
import { PGlite } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { Effect, Fiber, Schema } from "effect"
import { EventStore, execute, InMemoryEventStore, LogPosition, PgliteEventStore, Projection, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { beforeAll, describe, expect, it } from "vitest"
import { accountStream, Deposit, MoneyDeposited } from "../src/demo/domain.js"
import { Balances, createBalances } from "../src/demo/readModel.js"
import { defineProjectionTests, lastPosition, openAll, type WithDatabase } from "./sql/projections.js"
import { defineRowProjectionTests } from "./sql/rowProjections.js"
import { migrateUntil } from "./sql/upgrade.js"
import { initialisedDump } from "./support/initialisedPglite.js"

/**
 * A migrated PGlite with the bank's read-model table, made once from the
 * initialised cluster and loaded from its dump for each test (1 s, where
 * `clone()` took 1.5-2.5 s and a fresh instance 3-6).
 */
let template: Blob | undefined
beforeAll(async () => {
  const db = await PGlite.create({ loadDataDir: await initialisedDump() })
  try {
    await Effect.runPromise(PgliteEventStore.migrate(db))
    await drizzle({ client: db }).execute(createBalances)
    template = await db.dumpDataDir("none")
  } finally {
    await db.close()
  }
}, 120_000)
const copyOfTemplate = () => {
  if (template === undefined) throw new Error("the PGlite template is not ready")
  return PGlite.create({ loadDataDir: template })
}

const withDatabase: WithDatabase = (body) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* Effect.acquireRelease(Effect.promise(copyOfTemplate), (db) =>
          Effect.promise(() => db.close())
        )
        return yield* Effect.provide(body(drizzle({ client: db })), PgliteEventStore.layerFromClient(db))
      })
    )
  )

describe("PGlite", () => {
  defineProjectionTests(withDatabase)
  defineRowProjectionTests(withDatabase)
})

describe("a checkpoint from before migration 0009", () => {
  const migration = "0009_projection_filters_and_standbys"
  const journal = JSON.parse(readFileSync(new URL("../drizzle/meta/_journal.json", import.meta.url), "utf8")) as {
    entries: ReadonlyArray<{ tag: string; when: number }>
  }

  it("is read as it is (every event counts), and once migrated, counts only its own after it runs again", async () => {
    // The database as that migration found it: migrated up to the one before, with the read model's table.
    const db = await PGlite.create({ loadDataDir: await initialisedDump() })
    try {
      await migrateUntil(migration)({
        query: async (text, params) => (await db.query<Record<string, unknown>>(text, params as Array<unknown>)).rows
      })
      await drizzle({ client: db }).execute(createBalances)
      const status = Effect.map(Projection.status, (rows) => rows.map(({ status, lag }) => ({ status, lag })))
      const audit = StreamId.unsafeMake("audit-1")
      // A store on it as it is, not migrated: as the command line reads it.
      await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          // What `openAll([["old", 5]])` writes, appended directly: a command reads streams, and reading
          // events needs a later migration (0010's schema versions) than this database has.
          yield* store.append(
            writesOf({
              streamId: accountStream("old"),
              expected: "no_stream",
              events: [
                { eventType: "AccountOpened", data: { owner: "old" } },
                { eventType: "MoneyDeposited", data: { amount: 5 } }
              ]
            })
          )
          yield* store.append(writesOf({ streamId: audit, expected: "no_stream", events: testEvents(3) }))
          yield* Effect.promise(() =>
            db.query("insert into eventcore.projections (name, kind, position, status) values ($1, $2, $3, $4)", [
              Balances.name,
              "projection",
              LogPosition.start,
              "stopped"
            ])
          )
          expect(yield* status).toEqual([{ status: "stopped", lag: 5 }])
        }).pipe(Effect.provideService(EventStore.EventStore, PgliteEventStore.make(db)))
      )
      const report = await Effect.runPromise(PgliteEventStore.migrate(db))
      expect(report.applied).toEqual(
        journal.entries.map((entry) => entry.tag).slice(journal.entries.findIndex((entry) => entry.tag === migration))
      )
      await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          expect(yield* status).toEqual([{ status: "stopped", lag: 5 }])
          const runner = yield* Effect.fork(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastPosition)
          yield* Fiber.interrupt(runner)
          yield* store.append(writesOf({ streamId: audit, expected: 3, events: testEvents(2) }))
          yield* execute(Deposit, { account: "old", amount: 1 })
          expect(yield* status).toEqual([{ status: "stopped", lag: 1 }])
        }).pipe(Effect.provide(PgliteEventStore.layerFromClient(db)))
      )
    } finally {
      await db.close()
    }
  })
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

  it("a batch handler gets the events in log order, in batches of at most batchSize, and make wants one handler", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const batches: Array<ReadonlyArray<number>> = []
        const Batched = Projection.make({
          name: "batched",
          event: Schema.Union(MoneyDeposited),
          handleBatch: (events) => Effect.sync(() => void batches.push(events.map(({ event }) => event.amount)))
        })
        yield* openAll([["b", 0]])
        for (let amount = 1; amount <= 7; amount++) yield* execute(Deposit, { account: "b", amount })
        yield* Effect.forkScoped(Projection.run(Batched, { batchSize: 3 }))
        yield* Projection.waitFor(Batched, yield* lastPosition)
        expect(batches.flat()).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(Math.max(...batches.map((batch) => batch.length))).toBeLessThanOrEqual(3)
        expect(() => Projection.make({ name: "neither", event: Schema.Union(MoneyDeposited) } as never)).toThrow(
          'Projection "neither": give it either handle or handleBatch'
        )
      }).pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer))
    ))

  it("status counts only the events a projection handles, and reports an instance standing by", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const Deposits = Projection.make({
          name: "deposits",
          event: Schema.Union(MoneyDeposited),
          filter: { streamPrefix: "account-" },
          handle: () => Effect.void
        })
        yield* openAll([["n", 0]])
        yield* execute(Deposit, { account: "n", amount: 1 })
        const runner = yield* Effect.fork(Projection.run(Deposits))
        yield* Projection.waitFor(Deposits, yield* lastPosition)
        // Of its types outside its prefix, and of other types in it: not its events.
        const store = yield* EventStore.EventStore
        yield* store.append(
          writesOf({
            streamId: StreamId.unsafeMake("savings-n"),
            expected: "no_stream",
            events: [{ eventType: "MoneyDeposited", data: { amount: 1 } }]
          })
        )
        yield* openAll([["m", 0]])
        yield* Projection.waitFor(Deposits, yield* lastPosition)
        const second = yield* Effect.fork(Projection.run(Deposits))
        const rows = yield* Projection.status.pipe(
          Effect.delay("10 millis"),
          Effect.repeat({ until: (rows) => rows.length === 2 })
        )
        expect(rows).toEqual([
          expect.objectContaining({ name: "deposits", status: "running", lag: 0 }),
          expect.objectContaining({ name: "deposits", status: "standby", lag: 0 })
        ])
        expect(rows[1]?.owner).not.toBe(rows[0]?.owner)
        yield* Fiber.interrupt(second)
        yield* Fiber.interrupt(runner)
        yield* execute(Deposit, { account: "n", amount: 2 })
        yield* execute(Deposit, { account: "m", amount: 3 })
        expect(yield* Projection.status).toEqual([expect.objectContaining({ status: "stopped", lag: 2 })])
      }).pipe(Effect.provide(InMemoryEventStore.layer))
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
