/**
 * Failover (issue #16): the primary crashes in the middle of a run, the
 * standby is promoted, and the application points at it. With synchronous
 * replication no acknowledged append is lost; subscriptions and projections
 * resume from their positions and checkpoints, with no event skipped and
 * none handled twice.
 */
import { randomUUID } from "node:crypto"
import { expect, it } from "@effect/vitest"
import { drizzle } from "drizzle-orm/postgres-js"
import { Chunk, Effect, Either, Fiber, Layer, Option, Ref, Stream } from "effect"
import {
  EventStore,
  execute,
  LogMessage,
  LogPosition,
  PostgresEventStore,
  Projection,
  type RecordedEvent
} from "eventcore"
import { Deposit } from "../../src/demo/domain.js"
import { Balances, createBalances } from "../../src/demo/readModel.js"
import { folded, lastWritten, openAll, readModel } from "../sql/projections.js"
import { describeServer } from "../support/postgres.js"
import { connection, inDatabase, useReplication } from "../support/replication.js"

/** Events of the log as a subscription delivers them, collected into `into`, from `after` on. */
const collect = (into: Ref.Ref<ReadonlyArray<RecordedEvent>>, after: LogPosition.LogPosition) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.subscribe({ after, pageSize: 20 }).pipe(
      Stream.filterMap((message) => (LogMessage.is("Event")(message) ? Option.some(message.event) : Option.none())),
      Stream.runForEach((event) => Ref.update(into, (events) => [...events, event]))
    )
  )

const accounts = ["ann", "bob", "cy", "dee"]

/** Deposits into `account` until one fails (the primary is gone): the events of those acknowledged. */
const depositUntilFailure = (account: string, acknowledged: Ref.Ref<ReadonlyArray<string>>) =>
  Effect.gen(function* () {
    for (;;) {
      const result = yield* Effect.either(execute(Deposit, { account, amount: 1 }))
      if (Either.isLeft(result)) return
      yield* Ref.update(acknowledged, (ids) => [...ids, ...result.right.events.map((event) => event.eventId)])
    }
  })

describeServer("failover to a promoted standby", () => {
  const replication = useReplication()

  it.live(
    "acknowledged appends survive, a subscription and a projection resume exactly where they were",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const database = `failover_${randomUUID().replaceAll("-", "").slice(0, 12)}`
          const admin = yield* connection(replication.primaryUrl())
          yield* Effect.promise(() => admin.unsafe(`create database "${database}"`))
          // Synchronous replication: a commit returns once the standby has the WAL,
          // so what the primary acknowledged is on the standby when it crashes.
          yield* Effect.promise(() => admin`alter system set synchronous_standby_names = '*'`)
          yield* Effect.promise(() => admin`select pg_reload_conf()`)
          // The reload is only signalled: commits wait for the standby once the primary says it is synchronous.
          const synchronous = Effect.promise(
            async () =>
              (await admin`select exists (select from pg_stat_replication where sync_state = 'sync') as sync`)[0]
                ?.sync === true
          )
          while (!(yield* synchronous)) yield* Effect.sleep("20 millis")
          const primary = inDatabase(replication.primaryUrl(), database)
          const standby = inDatabase(replication.standbyUrl(), database)
          yield* PostgresEventStore.migrate({ url: primary })
          const primaryClient = yield* connection(primary)
          yield* Effect.promise(() => drizzle({ client: primaryClient }).execute(createBalances))
          replication.waitReplay()

          const acknowledged = yield* Ref.make<ReadonlyArray<string>>([])
          const seenBefore = yield* Ref.make<ReadonlyArray<RecordedEvent>>([])
          const seenAfter = yield* Ref.make<ReadonlyArray<RecordedEvent>>([])

          // Before: the application on the primary, following the log on the standby.
          yield* Effect.scoped(
            Effect.gen(function* () {
              const context = yield* Layer.build(
                PostgresEventStore.layer({ url: primary, replicaUrl: standby, maxConnections: 4 })
              )
              const inContext = <A, E>(
                effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>
              ) => Effect.provide(effect, context)
              yield* inContext(openAll(accounts.map((account) => [account, 100] as const)))
              const projecting = yield* Effect.fork(inContext(Projection.run(Balances)))
              const following = yield* Effect.fork(inContext(collect(seenBefore, LogPosition.start)))
              const writing = yield* Effect.fork(
                inContext(
                  Effect.all(
                    accounts.map((account) => depositUntilFailure(account, acknowledged)),
                    { concurrency: "unbounded" }
                  )
                )
              )
              // Mid-run: writers, the projection and the follower all busy, and each a count of events on.
              const midRun = Effect.gen(function* () {
                const [status] = yield* inContext(Projection.status)
                return (
                  (yield* Ref.get(acknowledged)).length >= 150 &&
                  (yield* Ref.get(seenBefore)).length >= 50 &&
                  status !== undefined &&
                  status.position !== LogPosition.start
                )
              })
              while (!(yield* midRun)) yield* Effect.sleep("20 millis")
              replication.crashPrimary()
              yield* Fiber.join(writing)
              yield* Fiber.interrupt(following)
              yield* Fiber.interrupt(projecting)
            })
          )

          const promotedAt = Date.now()
          replication.promote()

          // After: the application pointed at the promoted standby.
          const context = yield* Layer.build(PostgresEventStore.layer({ url: standby, maxConnections: 4 }))
          const promotedClient = yield* connection(standby)
          const db = drizzle({ client: promotedClient })
          const before = yield* Ref.get(seenBefore)
          const resumeFrom = before.at(-1)?.position ?? LogPosition.start
          const resumed = yield* Effect.gen(function* () {
            const projecting = yield* Effect.fork(Projection.run(Balances))
            const following = yield* Effect.fork(collect(seenAfter, resumeFrom))
            yield* Projection.waitFor(Balances, yield* lastWritten(db), { timeout: "30 seconds" })
            const caughtUpAfter = Date.now() - promotedAt
            // The log goes on on the new primary.
            for (const account of accounts) yield* execute(Deposit, { account, amount: 5 })
            const head = yield* lastWritten(db)
            yield* Projection.waitFor(Balances, head, { timeout: "30 seconds" })
            const store = yield* EventStore.EventStore
            const stored = Chunk.toArray(yield* Stream.runCollect(store.streamAll({ pageSize: 100 })))
            while ((yield* Ref.get(seenAfter)).at(-1)?.position !== head) yield* Effect.sleep("20 millis")
            yield* Fiber.interrupt(following)
            yield* Fiber.interrupt(projecting)
            return { stored, caughtUpAfter }
          }).pipe(Effect.provide(context))

          const stored = resumed.stored
          const storedIds = new Set(stored.map((event) => event.eventId))
          // Nothing acknowledged was lost.
          for (const eventId of yield* Ref.get(acknowledged)) expect(storedIds.has(eventId)).toBe(true)
          // The follower saw every event once, in the log's order, across the failover.
          const seen = [...before, ...(yield* Ref.get(seenAfter))]
          expect(seen.map((event) => event.eventId)).toEqual(stored.map((event) => event.eventId))
          // The projection's read model: every event once, whichever side handled it.
          expect(yield* readModel(db)).toEqual(yield* folded(db))
          console.info(
            `failover: ${stored.length} events stored (${(yield* Ref.get(acknowledged)).length} deposits acknowledged before the crash), ` +
              `follower saw ${before.length} before and ${seen.length - before.length} after; ` +
              `projection caught up ${resumed.caughtUpAfter} ms after promotion`
          )
        })
      ),
    120_000
  )
})
