/**
 * Faults on a PostgreSQL server the test owns: a crash and restart in the
 * middle of a run, and a statement timeout. (Pool exhaustion and a terminated
 * backend are in test/postgres/store.test.ts.)
 */

import { drizzle } from "drizzle-orm/postgres-js"
import { Chunk, Context, Deferred, Effect, Either, Fiber, Layer, Logger, Schedule, Stream } from "effect"
import { EventStore, execute, PostgresEventStore, Projection, StreamId } from "eventcore"
import { writesOf } from "eventcore/testing"
import postgres from "postgres"
import { beforeAll, describe, expect, it } from "vitest"
import { AccountEvent, Open, Transfer } from "../../src/demo/domain.js"
import { createBalances } from "../../src/demo/readModel.js"
import { folded, lastWritten } from "../sql/projections.js"
import { upsertBalance } from "../support/balances.js"
import { useOwnServer } from "../support/ownServer.js"

const id = StreamId.unsafeMake

/**
 * Looks every 20 ms until `done`: what a test waits for before its next step is
 * a count, never a duration. The deadline only ends a test that would hang.
 */
const until = (what: string, done: () => boolean) =>
  Effect.gen(function* () {
    while (!done()) yield* Effect.sleep("20 millis")
  }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`never: ${what}`) }))

/** A logger that keeps each message, for the tests that wait for a warning. */
const recordingMessages = (into: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message }) => into.push(String(message)))
  )

describe("faults on a server the test owns", () => {
  const server = useOwnServer()
  beforeAll(async () => {
    await Effect.runPromise(PostgresEventStore.migrate({ url: server.url() }))
    // The throwaway server runs with synchronous_commit off for speed, which lets a
    // crash lose acknowledged commits: this test is about what a durable server keeps.
    const sql = postgres(server.url(), { max: 1, onnotice: () => {} })
    await sql`alter system set synchronous_commit = on`
    await sql`select pg_reload_conf()`
    await sql.end()
  })

  it("a crash and restart mid-run: the store recovers in-process, acknowledged appends are all there, none half-written", async () => {
    const pairs = ["a", "b", "c", "d"]
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = Context.get(
            yield* Layer.build(
              PostgresEventStore.layer({ url: server.url(), maxConnections: 4, acquireTimeout: "3 seconds" })
            ),
            EventStore.EventStore
          )
          let revived = false
          const acknowledged: Array<string> = []
          const failures: Array<string> = []
          let afterRevival = 0
          // Each append writes one event to a pair stream and one to a ledger,
          // under the same marker: both must exist, or neither.
          const writer = (w: number) =>
            Effect.gen(function* () {
              for (let i = 0; !(revived && afterRevival >= 40); i++) {
                const marker = `${w}-${i}`
                const outcome = yield* Effect.either(
                  store.append(
                    writesOf(
                      {
                        streamId: id(`pair-${pairs[i % 4]}`),
                        expected: "any",
                        events: [{ eventType: "Half", data: { marker } }]
                      },
                      {
                        streamId: id(`ledger-${w}`),
                        expected: "any",
                        events: [{ eventType: "Half", data: { marker } }]
                      }
                    )
                  )
                )
                if (Either.isRight(outcome)) {
                  acknowledged.push(marker)
                  if (revived) afterRevival++
                } else {
                  failures.push(`${outcome.left._tag}: ${outcome.left.message}`)
                  yield* Effect.sleep("20 millis")
                }
              }
            })
          const writers = yield* Effect.forEach([0, 1, 2, 3], (w) => Effect.fork(writer(w)))
          // Mid-run: the crash comes after 40 acknowledged appends, the revival after the writers have seen it.
          yield* until("40 appends acknowledged", () => acknowledged.length >= 40)
          yield* Effect.sync(() => server.crash())
          yield* until("an append failed on the crashed server", () => failures.length > 0)
          yield* Effect.sync(() => server.revive())
          revived = true
          yield* Fiber.joinAll(writers)
          return { acknowledged, failures, afterRevival }
        })
      )
    )
    expect(outcome.failures.length).toBeGreaterThan(0)
    for (const failure of outcome.failures) expect(failure).toMatch(/^StoreError: /)
    expect(outcome.afterRevival).toBeGreaterThanOrEqual(40)

    const sql = postgres(server.url(), { max: 1, onnotice: () => {} })
    try {
      const rows = await sql<{ marker: string; n: number }[]>`
        select data->>'marker' as marker, count(*)::int as n from eventcore.events group by 1`
      const stored = new Map(rows.map((row) => [row.marker, row.n]))
      for (const marker of outcome.acknowledged) expect(stored.get(marker)).toBe(2)
      for (const [marker, n] of stored) expect([marker, n]).toEqual([marker, 2])
      const gaps = await sql`
        select stream_id from eventcore.events group by stream_id
        having max(stream_version) <> count(*) or min(stream_version) <> 1`
      expect(gaps).toEqual([])
    } finally {
      await sql.end()
    }
  }, 120_000)

  it("a subscription rides out a crash and restart: it reads again on its schedule and delivers every event once", async () => {
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = Context.get(
            yield* Layer.build(
              PostgresEventStore.layer({ url: server.url(), maxConnections: 4, acquireTimeout: "3 seconds" })
            ),
            EventStore.EventStore
          )
          const start = (yield* store.readAll({ maxCount: 0 })).position
          const { position: from } = yield* Effect.iterate(
            { position: start, caughtUp: false },
            {
              while: (read) => !read.caughtUp,
              body: (read) => store.readAll({ after: read.position, maxCount: 10_000 })
            }
          )
          const delivered: Array<string> = []
          const failedReads: Array<string> = []
          yield* Effect.forkScoped(
            Stream.runForEach(store.subscribe({ after: from, retry: Schedule.spaced("100 millis") }), (message) =>
              Effect.sync(() => {
                if (message._tag === "Event") delivered.push((message.event.data as { marker: string }).marker)
              })
            ).pipe(Effect.provide(recordingMessages(failedReads)))
          )
          const acknowledged: Array<string> = []
          let revived = false
          const writer = Effect.gen(function* () {
            for (let i = 0; acknowledged.length < 60 || !revived; i++) {
              const marker = `live-${i}`
              const appended = yield* Effect.either(
                store.append(
                  writesOf({
                    streamId: id("followed"),
                    expected: "any",
                    events: [{ eventType: "Live", data: { marker } }]
                  })
                )
              )
              if (Either.isRight(appended)) acknowledged.push(marker)
              yield* Effect.sleep("20 millis")
            }
          })
          const writing = yield* Effect.fork(writer)
          // The crash once the subscription follows the writer, the revival once it has failed to read.
          yield* until("10 events delivered", () => delivered.length >= 10)
          yield* Effect.sync(() => server.crash())
          yield* until("a read of the crashed server failed", () =>
            failedReads.some((line) => line.includes("reading the global log failed"))
          )
          yield* Effect.sync(() => server.revive())
          revived = true
          yield* Fiber.join(writing)
          // Everything stored after `from`, as a fresh reader reads it.
          const stored = yield* Stream.runCollect(store.streamAll({ after: from })).pipe(
            Effect.map((events) => Chunk.toArray(events).map((e) => (e.data as { marker: string }).marker))
          )
          yield* until("every stored event delivered", () => delivered.length >= stored.length)
          return { acknowledged, delivered: [...delivered], stored, failedReads }
        })
      )
    )
    expect(outcome.failedReads.some((line) => line.includes("reading the global log failed"))).toBe(true)
    expect(outcome.delivered).toEqual(outcome.stored)
    expect(new Set(outcome.delivered).size).toBe(outcome.delivered.length)
    for (const marker of outcome.acknowledged) expect(outcome.delivered).toContain(marker)
  }, 120_000)

  it("a projection across a crash and restart mid-batch: every event applied exactly once", async () => {
    const admin = postgres(server.url(), { max: 1, onnotice: () => {} })
    await admin.unsafe("drop table if exists bank_balances")
    await drizzle({ client: admin }).execute(createBalances)
    await admin.end()
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(
            PostgresEventStore.layer({ url: server.url(), maxConnections: 4, acquireTimeout: "3 seconds" })
          )
          const accounts = ["x", "y", "z"]
          const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>) =>
            Effect.provide(effect, context)
          for (const account of accounts) {
            yield* run(
              Effect.either(execute(Open, { account: `crash-${account}`, owner: account, initialDeposit: 1000 }))
            )
          }
          // Started once the log holds more than a batch of the accounts' events, the projection stops at
          // its fifth event, inside its first batch (four events written, not committed), until the crash.
          let handled = 0
          const inBatch = yield* Deferred.make<void>()
          const crashed = yield* Deferred.make<void>()
          const Held = Projection.make({
            name: "bank-balances",
            event: AccountEvent,
            handle: (event, recorded) =>
              Effect.gen(function* () {
                if (++handled === 5) {
                  yield* Deferred.succeed(inBatch, undefined)
                  yield* Deferred.await(crashed)
                }
                yield* upsertBalance(event, recorded)
              })
          })
          let revived = false
          let transfers = 0
          let afterRevival = 0
          const writer = Effect.gen(function* () {
            for (let i = 0; !(revived && afterRevival >= 50); i++) {
              const transfer = yield* run(
                Effect.either(
                  execute(Transfer, {
                    from: `crash-${accounts[i % 3]}`,
                    to: `crash-${accounts[(i + 1) % 3]}`,
                    amount: 1 + (i % 5)
                  })
                )
              )
              if (Either.isRight(transfer)) {
                transfers++
                if (revived) afterRevival++
              } else {
                yield* Effect.sleep("20 millis")
              }
            }
          })
          const writing = yield* Effect.fork(writer)
          yield* until("15 transfers acknowledged", () => transfers >= 15)
          const projectionLogs: Array<string> = []
          const projecting = yield* Effect.forkScoped(
            run(Projection.run(Held, { batchSize: 20 })).pipe(Effect.provide(recordingMessages(projectionLogs)))
          )
          yield* Effect.raceFirst(Deferred.await(inBatch), Fiber.join(projecting))
          const batchWritten = yield* Effect.acquireUseRelease(
            Effect.sync(() => postgres(server.url(), { max: 1, onnotice: () => {} })),
            (client) =>
              Effect.promise(
                () => client`select backend_xid is not null as written from pg_stat_activity
                  where application_name = 'eventcore-projection'`
              ),
            (client) => Effect.promise(() => client.end())
          )
          expect(batchWritten).toEqual([{ written: true }])
          yield* Effect.sync(() => server.crash())
          yield* Deferred.succeed(crashed, undefined)
          // The revival once the projection has found its session gone (the batch's next statement failed).
          yield* until("the projection lost its session", () =>
            projectionLogs.some((line) => line.includes("lost its database session"))
          )
          yield* Effect.sync(() => server.revive())
          revived = true
          yield* Fiber.join(writing)
          // The balances folded from every stored event, read from the table: the log's
          // readable head can be held back by the projection's own batch.
          const { expected, last } = yield* Effect.acquireUseRelease(
            Effect.sync(() => postgres(server.url(), { max: 1, onnotice: () => {} })),
            (client) => Effect.all({ expected: folded(drizzle({ client })), last: lastWritten(drizzle({ client })) }),
            (client) => Effect.promise(() => client.end())
          )
          yield* run(Projection.waitFor(Held, last, { timeout: "60 seconds" }))
          return { expected }
        })
      )
    )
    const sql = postgres(server.url(), { max: 1, onnotice: () => {} })
    try {
      const rows = await sql<{ account: string; cents: number }[]>`select account, cents from bank_balances order by 1`
      expect(Object.fromEntries(rows.map((row) => [row.account, row.cents]))).toEqual(outcome.expected)
    } finally {
      await sql.end()
    }
  }, 120_000)

  it("a statement timeout ends the append with a StoreError that says so, and writes nothing", async () => {
    const admin = postgres(server.url(), { max: 2, onnotice: () => {} })
    try {
      const outcome = await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            // Sessions opened from now on (the store's) get the timeout.
            yield* Effect.promise(() => admin`alter role postgres set statement_timeout = '200ms'`)
            const store = Context.get(
              yield* Layer.build(PostgresEventStore.layer({ url: server.url(), maxConnections: 1 })),
              EventStore.EventStore
            )
            // A lock held elsewhere keeps the append waiting past its timeout.
            const release = yield* Effect.makeLatch(false)
            const locked = yield* Effect.makeLatch(false)
            const holder = yield* Effect.fork(
              Effect.promise(() =>
                admin.begin(async (tx) => {
                  await tx`set local statement_timeout = 0`
                  await tx`lock table eventcore.events in exclusive mode`
                  await Effect.runPromise(Effect.zipRight(locked.open, release.await))
                })
              )
            )
            yield* locked.await
            const result = yield* Effect.either(
              store.append(
                writesOf({ streamId: id("slow"), expected: "no_stream", events: [{ eventType: "E", data: {} }] })
              )
            )
            yield* release.open
            yield* Fiber.join(holder)
            return result
          })
        )
      )
      expect(Either.isLeft(outcome) && outcome.left._tag).toBe("StoreError")
      expect(Either.isLeft(outcome) && outcome.left.message).toContain("statement_timeout")
      const rows = await admin`select count(*)::int as n from eventcore.events where stream_id = 'slow'`
      expect(rows[0]?.n).toBe(0)
    } finally {
      await admin`alter role postgres reset statement_timeout`
      await admin.end()
    }
  }, 60_000)
})
