/**
 * Projections and reactors on PGlite (the read model in a Drizzle table of
 * the application's own, in the same database) and on the in-memory store.
 */
import { PGlite } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { Effect, Fiber, Schema } from "effect"
import { execute, InMemoryEventStore, LogPosition, PgliteEventStore, Projection } from "eventcore"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Deposit, MoneyDeposited } from "../src/demo/domain.js"
import { createBalances } from "../src/demo/readModel.js"
import { defineProjectionTests, lastPosition, openAll, type WithDatabase } from "./sql/projections.js"

/** A migrated PGlite with the bank's read-model table, cloned for each test. */
let template: PGlite | undefined
beforeAll(async () => {
  template = await PGlite.create()
  await Effect.runPromise(PgliteEventStore.migrate(template))
  await drizzle({ client: template }).execute(createBalances)
}, 120_000)
afterAll(() => template?.close())

const withDatabase: WithDatabase = (body) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* Effect.acquireRelease(
          Effect.promise(async () => (await (template as PGlite).clone()) as PGlite),
          (db) => Effect.promise(() => db.close())
        )
        return yield* Effect.provide(body(drizzle({ client: db })), PgliteEventStore.layerFromClient(db))
      })
    )
  )

describe("PGlite", () => defineProjectionTests(withDatabase))

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
