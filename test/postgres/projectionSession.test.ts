/**
 * A projection's session whose backend is terminated between two statements of a batch. postgres.js
 * would open the session's one connection again for the next statement, and the rest of the batch,
 * the checkpoint's compare-and-set and the COMMIT would run on it in autocommit, without the name's
 * lock: the events handled before the termination would be lost from the read model, and the
 * instance would run on without owning the name. The session refuses to reconnect instead.
 */
import { expect, it } from "@effect/vitest"
import { drizzle } from "drizzle-orm/postgres-js"
import { Deferred, Effect, Layer } from "effect"
import { type EventStore, execute, PostgresEventStore, Projection, type RecordedEvent } from "eventcore"
import postgres from "postgres"
import { AccountEvent, Deposit, Open } from "../../src/demo/domain.js"
import { createBalances } from "../../src/demo/readModel.js"
import { upsertBalance } from "../support/balances.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("a projection's session terminated between two statements of a batch", () => {
  const server = usePostgresTemplate()

  it.live("the batch is rolled back whole and handled again: every event once, and the name's lock held", () =>
    Effect.gen(function* () {
      const { url, database } = yield* server.freshDatabase
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
        (client) => Effect.promise(() => client.end({ timeout: 1 }))
      )
      yield* Effect.promise(() => drizzle({ client: admin }).execute(createBalances))
      const context = yield* Layer.build(PostgresEventStore.layer({ url }))
      const withStore = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>) =>
        Effect.provide(effect, context)
      yield* withStore(execute(Open, { account: "z", owner: "z" }))
      for (let i = 0; i < 5; i++) yield* withStore(execute(Deposit, { account: "z", amount: 1 }))

      // The fourth event of the first batch waits, three written in its transaction, until released.
      const entered = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      let handled = 0
      const Held = Projection.make({
        name: "bank-balances",
        event: AccountEvent,
        handle: (event, recorded) =>
          Effect.gen(function* () {
            if (++handled === 4) {
              yield* Deferred.succeed(entered, undefined)
              yield* Deferred.await(release)
            }
            yield* upsertBalance(event, recorded)
          })
      })
      yield* Effect.forkScoped(withStore(Projection.run(Held, { batchSize: 10 })))
      yield* Deferred.await(entered)
      const session = () =>
        admin<Array<{ pid: number }>>`select pid from pg_stat_activity
          where datname = ${database} and application_name = 'eventcore-projection'`
      const [held] = yield* Effect.promise(session)
      yield* Effect.promise(() => admin`select pg_terminate_backend(${held?.pid ?? 0})`)
      // Released once the server has ended the backend (the client reads the FATAL and the close meanwhile).
      while ((yield* Effect.promise(session)).some((row) => row.pid === held?.pid)) yield* Effect.sleep("10 millis")
      yield* Effect.sleep("100 millis")
      yield* Deferred.succeed(release, undefined)

      const last = (yield* withStore(execute(Deposit, { account: "z", amount: 1 }))).events.at(-1) as RecordedEvent
      yield* withStore(Projection.waitFor(Held, last.position, { timeout: "30 seconds" }))
      expect(yield* Effect.promise(() => admin`select account, cents from bank_balances`)).toEqual([
        { account: "z", cents: 6 }
      ])
      const [lock] = yield* Effect.promise(
        () => admin`select count(*)::int as held from pg_locks where locktype = 'advisory' and granted
          and database = (select oid from pg_database where datname = ${database})`
      )
      expect(lock?.held).toBe(1)
    }).pipe(Effect.scoped)
  )
})
