/**
 * Followers on a hot standby (issue #16): a store whose global log is read on
 * a standby of the primary it appends to. Against a PostgreSQL 15 primary and
 * standby the test starts (test/support/replication.ts), never the shared
 * server.
 */
import { randomUUID } from "node:crypto"
import { expect, it } from "@effect/vitest"
import { drizzle } from "drizzle-orm/postgres-js"
import { Chunk, Context, Effect, Either, Fiber, Layer, Metric, Option, Stream } from "effect"
import {
  EventStore,
  LogMessage,
  type LogPosition,
  PostgresEventStore,
  Projection,
  type RecordedEvent,
  StreamId
} from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { Balances, createBalances } from "../../src/demo/readModel.js"
import { folded, lastWritten, openAll, readModel } from "../sql/projections.js"
import { describeServer } from "../support/postgres.js"
import { connection, inDatabase, useReplication } from "../support/replication.js"

const id = StreamId.unsafeMake

/** The services of a layer built in the current scope. */
const contextOf = <A>(layer: Layer.Layer<A, unknown>) => Layer.build(layer)

/** Everything the log holds, read on `store` page by page. */
const wholeLog = (store: EventStore.EventStore) =>
  Effect.map(Stream.runCollect(store.streamAll({ pageSize: 50 })), Chunk.toArray)

const ids = (events: ReadonlyArray<RecordedEvent>) => events.map((event) => event.eventId)

describeServer("followers on a hot standby", () => {
  const replication = useReplication()

  /** A database of its own on the primary, migrated, and replayed on the standby: its URL on each. */
  const freshDatabase = Effect.gen(function* () {
    const database = `followers_${randomUUID().replaceAll("-", "").slice(0, 12)}`
    const admin = yield* connection(replication.primaryUrl())
    yield* Effect.promise(() => admin.unsafe(`create database "${database}"`))
    const primary = inDatabase(replication.primaryUrl(), database)
    yield* PostgresEventStore.migrate({ url: primary })
    replication.waitReplay()
    return { primary, standby: inDatabase(replication.standbyUrl(), database) }
  })

  it.live(
    "a follower on the standby sees every event once, in the primary's order, while writers commit late",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const urls = yield* freshDatabase
          const writer = Context.get(
            yield* contextOf(PostgresEventStore.layer({ url: urls.primary })),
            EventStore.EventStore
          )
          const follower = Context.get(
            yield* contextOf(PostgresEventStore.layer({ url: urls.primary, replicaUrl: urls.standby })),
            EventStore.EventStore
          )
          const writers = 8
          const appendsEach = 30
          const late = 4
          const total = writers * appendsEach + late

          const following = yield* follower.subscribe({ pageSize: 25 }).pipe(
            Stream.filterMap((message) =>
              LogMessage.is("Event")(message) ? Option.some(message.event) : Option.none()
            ),
            Stream.take(total),
            Stream.runCollect,
            Effect.timeout("60 seconds"),
            Effect.fork
          )
          // Transactions that take their id before the busy writers start and append only once
          // these have committed a share of their appends (counts, not durations): their events
          // commit after others written later, and the follower must wait for them.
          let idsTaken = 0
          let busyCommitted = 0
          const lateWriter = (n: number) =>
            Effect.scoped(
              Effect.gen(function* () {
                const client = yield* connection(urls.primary)
                yield* Effect.promise(() =>
                  client.begin(async (sql) => {
                    await sql`select pg_current_xact_id()`
                    idsTaken++
                    while (busyCommitted < ((n + 1) * writers * appendsEach) / (late + 1)) {
                      await new Promise((resolve) => setTimeout(resolve, 10))
                    }
                    const request = {
                      streams: [{ id: `late-${n}`, expected: "no_stream" }],
                      events: [{ stream: `late-${n}`, id: randomUUID(), type: "Late", data: { n } }]
                    }
                    await sql.unsafe("select eventcore.append($1::text::jsonb)", [JSON.stringify(request)])
                  })
                )
              })
            )
          const busyWriter = (w: number) =>
            Effect.gen(function* () {
              while (idsTaken < late) yield* Effect.sleep("10 millis")
              for (let i = 0; i < appendsEach; i++) {
                yield* writer.append(
                  writesOf({ streamId: id(`writer-${w}`), expected: i === 0 ? "no_stream" : i, events: testEvents(1) })
                )
                busyCommitted++
              }
            })
          yield* Effect.all(
            [
              ...Array.from({ length: late }, (_, n) => lateWriter(n)),
              ...Array.from({ length: writers }, (_, w) => busyWriter(w))
            ],
            { concurrency: "unbounded" }
          )

          const seen = Chunk.toArray(yield* Fiber.join(following))
          const stored = yield* wholeLog(writer)
          expect(stored).toHaveLength(total)
          expect(new Set(ids(seen)).size).toBe(total)
          expect(ids(seen)).toEqual(ids(stored))
          expect(seen.map((event) => event.position)).toEqual(stored.map((event) => event.position))
        })
      ),
    90_000
  )

  it.live("reads cancelled by a conflict with recovery (VACUUM on the primary) are run again", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const urls = yield* freshDatabase
        const writer = Context.get(
          yield* contextOf(PostgresEventStore.layer({ url: urls.primary })),
          EventStore.EventStore
        )
        // Reads long enough (the whole log, 3 MB, in one statement) to be running when a cleanup replays.
        const padding = "x".repeat(1000)
        for (let i = 0; i < 30; i++) {
          yield* writer.append(
            writesOf({
              streamId: id(`s-${i}`),
              expected: "no_stream",
              events: Array.from({ length: 100 }, (_, n) => ({ eventType: "Padded", data: { n, padding } }))
            })
          )
        }
        const expected = ids(yield* wholeLog(writer))
        replication.waitReplay()

        // The standby cancels a conflicting read at once instead of after a second.
        const standbyAdmin = yield* connection(replication.standbyUrl())
        yield* Effect.promise(() => standbyAdmin`alter system set max_standby_streaming_delay = 0`)
        yield* Effect.promise(() => standbyAdmin`select pg_reload_conf()`)
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            await standbyAdmin`alter system reset max_standby_streaming_delay`
            await standbyAdmin`select pg_reload_conf()`
          })
        )
        const standbyStats = yield* connection(urls.standby)
        // The standby's own count of queries it cancelled for conflicts with recovery, in this database.
        const standbyConflicts = Effect.promise(async () => {
          const [row] = await standbyStats`select (confl_snapshot + confl_lock + confl_bufferpin)::int as n
            from pg_stat_database_conflicts where datname = current_database()`
          return row?.n as number
        })

        // Rows deleted and vacuumed away on the primary every 100 ms, in a table eventcore never
        // reads: replaying the cleanup cancels any standby query whose snapshot could still see
        // them, in any table of the database.
        const churnClient = yield* connection(urls.primary)
        yield* Effect.promise(() => churnClient`create table churn (n int)`)
        const churning = yield* Effect.promise(async () => {
          await churnClient`insert into churn select generate_series(1, 200)`
          await churnClient`delete from churn`
          await churnClient`vacuum churn`
        }).pipe(Effect.zipRight(Effect.sleep("100 millis")), Effect.forever, Effect.fork)

        const retries = Metric.value(PostgresEventStore.replicaRetryCounter)
        const before = (yield* retries).count
        const conflictsBefore = yield* standbyConflicts
        // Readers on the standby, each reading the whole log again and again, until the standby has cancelled some.
        // The follower's pool is closed after the reads: its sessions report their conflicts as they end.
        const reads = yield* Effect.gen(function* () {
          const follower = Context.get(
            yield* contextOf(PostgresEventStore.layer({ url: urls.primary, replicaUrl: urls.standby })),
            EventStore.EventStore
          )
          return yield* Effect.all(
            Array.from({ length: 4 }, () =>
              Effect.gen(function* () {
                const results: Array<ReadonlyArray<string>> = []
                while ((yield* retries).count - before < 3) {
                  results.push(ids((yield* follower.readAll({ maxCount: 5000 })).events))
                }
                return results
              })
            ),
            { concurrency: "unbounded" }
          ).pipe(Effect.timeout("60 seconds"))
        }).pipe(Effect.scoped)
        yield* Fiber.interrupt(churning)

        expect((yield* retries).count - before).toBeGreaterThanOrEqual(3)
        // A backend writes its statistics out as it exits, before it leaves pg_stat_activity: once the
        // follower's sessions are gone from the standby, their cancelled queries are counted.
        const followerSessions = Effect.promise(
          async () =>
            (
              await standbyStats`select count(*)::int as n from pg_stat_activity
                where datname = current_database() and application_name = 'eventcore-replica'`
            )[0]?.n as number
        )
        while ((yield* followerSessions) > 0) yield* Effect.sleep("50 millis")
        expect(yield* standbyConflicts).toBeGreaterThan(conflictsBefore)
        for (const result of reads.flat()) expect(result).toEqual(expected)
      })
    )
  )

  it.live(
    "reads follow the standby's replay: waitForLog waits for it, stream reads go there only when asked",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const urls = yield* freshDatabase
          const onPrimary = Context.get(
            yield* contextOf(PostgresEventStore.layer({ url: urls.primary, replicaUrl: urls.standby })),
            EventStore.EventStore
          )
          const onStandby = Context.get(
            yield* contextOf(
              PostgresEventStore.layer({ url: urls.primary, replicaUrl: urls.standby, readStreamsFromReplica: true })
            ),
            EventStore.EventStore
          )
          const stream = id("paused")
          yield* onPrimary.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(1) }))
          replication.waitReplay()

          const standbyAdmin = yield* connection(replication.standbyUrl())
          yield* Effect.promise(() => standbyAdmin`select pg_wal_replay_pause()`)
          yield* Effect.addFinalizer(() => Effect.promise(() => standbyAdmin`select pg_wal_replay_resume()`))
          // A pause is only requested at first: the standby could still replay what comes next.
          const pauseState = Effect.promise(
            async () => (await standbyAdmin`select pg_get_wal_replay_pause_state() as state`)[0]?.state as string
          )
          while ((yield* pauseState) !== "paused") yield* Effect.sleep("10 millis")
          const appended = yield* onPrimary.append(writesOf({ streamId: stream, expected: 1, events: testEvents(1) }))
          const position = appended.events[0]?.position as LogPosition.LogPosition

          // Replay paused: the standby does not have the second event yet.
          expect((yield* onPrimary.readStream(stream)).version).toBe(2)
          expect((yield* onStandby.readStream(stream)).version).toBe(1)
          expect((yield* onPrimary.readAll()).events).toHaveLength(1)
          const timedOut = yield* Effect.either(
            Effect.provideService(
              EventStore.waitForLog(position, { timeout: "300 millis" }),
              EventStore.EventStore,
              onPrimary
            )
          )
          expect(Either.isLeft(timedOut) && timedOut.left._tag).toBe("LogTimeout")

          const waiting = yield* Effect.fork(
            Effect.provideService(
              EventStore.waitForLog(position, { timeout: "60 seconds" }),
              EventStore.EventStore,
              onPrimary
            )
          )
          yield* Effect.sleep("100 millis")
          expect(waiting.unsafePoll()).toBeNull()
          yield* Effect.promise(() => standbyAdmin`select pg_wal_replay_resume()`)
          yield* Fiber.join(waiting)
          const read = yield* onPrimary.readAll()
          expect(read.events.map((event) => event.position)).toContain(position)
          expect((yield* onStandby.readStream(stream)).version).toBe(2)
        })
      ),
    60_000
  )

  it.live("a projection reads the log on the standby and writes its read model on the primary", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const urls = yield* freshDatabase
        const client = yield* connection(urls.primary)
        const db = drizzle({ client })
        yield* Effect.promise(() => db.execute(createBalances))
        const context = yield* contextOf(
          PostgresEventStore.layer({ url: urls.primary, replicaUrl: urls.standby, maxConnections: 4 })
        )
        yield* Effect.gen(function* () {
          const running = yield* Effect.fork(Projection.run(Balances))
          yield* openAll([
            ["ann", 500],
            ["bob", 300],
            ["cy", 0]
          ])
          // The last event as the primary has it: waitFor completes only once the standby has replayed it too.
          yield* Projection.waitFor(Balances, yield* lastWritten(db), { timeout: "60 seconds" })
          expect(yield* readModel(db)).toEqual(yield* folded(db))
          yield* Fiber.interrupt(running)
        }).pipe(Effect.provide(context))
      })
    )
  )
})
