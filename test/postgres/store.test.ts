import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Random,
  Redacted,
  Schedule,
  Stream
} from "effect"
import { EventStore, execute, PostgresEventStore, StreamId, StreamWrites } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { balanceOf, Deposit, Open, Transfer } from "../../src/demo/domain.js"
import { defineEnforcementTests } from "../sql/enforcement.js"
import { shippedMigrations } from "../support/migrations.js"
import { databaseUrl, describeServer, usePostgresTemplate } from "../support/postgres.js"
import { makeRecordingTracer } from "../support/recording.js"
import { defineStoredTypesTests } from "../support/storedTypes.js"

const id = StreamId.unsafeMake
const store = EventStore.EventStore

/** The store of a layer built in the current scope (so it stays open until the scope closes). */
const storeIn = (layer: Layer.Layer<EventStore.EventStore, unknown>) =>
  Effect.map(Layer.build(layer), Context.get(EventStore.EventStore))

/** A postgres.js client on `url` that counts the statements it sends. */
const countingClient = (url: string) => {
  const statements: Array<string> = []
  const client = postgres(url, {
    max: 1,
    onnotice: () => {},
    debug: (_connection, query) => {
      statements.push(query)
    }
  })
  return { client, statements }
}

describeServer("PostgreSQL server", () => {
  const server = usePostgresTemplate()

  /** Runs `effect` against a store over a fresh database. */
  const withStore = <A, E>(
    effect: Effect.Effect<A, E, EventStore.EventStore>,
    config: Omit<PostgresEventStore.PostgresConfig, "url"> = {}
  ) => Effect.provide(effect, server.layer(config))

  describe("the database enforces", () => {
    defineEnforcementTests((body) =>
      Effect.runPromise(
        Effect.scoped(
          Effect.flatMap(server.freshDatabase, ({ url }) =>
            Effect.acquireUseRelease(
              Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
              (client) =>
                Effect.promise(() =>
                  body({ query: (text, params) => client.unsafe(text, params as never), schema: "eventcore" })
                ),
              (client) => Effect.promise(() => client.end())
            )
          )
        )
      )
    )
  })

  describe("the event types it holds", () => {
    defineStoredTypesTests(() => server.layer())
  })

  describe("one round trip per append", () => {
    it.live(
      "an append is one statement, whatever the number of streams and events; a read is one, streaming one per page",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { url } = yield* server.freshDatabase
            const { client, statements } = countingClient(url)
            yield* Effect.addFinalizer(() => Effect.promise(() => client.end()))
            const s = PostgresEventStore.make(client)
            // Opening the connection fetches the server's types once; count from after that.
            yield* Effect.either(s.readStream(id("warm-up")))

            const small = writesOf({ streamId: id("one"), expected: "no_stream", events: testEvents(1) })
            const large = writesOf(
              ...Array.from({ length: 10 }, (_, i) => ({
                streamId: id(`many-${i}`),
                expected: "no_stream" as const,
                events: testEvents(10)
              })),
              { streamId: id("one"), expected: 1 }
            )
            const perCall = [] as Array<number>
            for (const writes of [small, large]) {
              const before = statements.length
              yield* s.append(writes)
              perCall.push(statements.length - before)
            }
            const before = statements.length
            const read = yield* s.readStream(id("many-3"))
            perCall.push(statements.length - before)
            expect(read.events).toHaveLength(10)
            // Streaming 10 events in pages of 5 and of 4: one read per page, none to find the end.
            for (const pageSize of [5, 4]) {
              const before = statements.length
              const streamed = yield* Stream.runCollect(s.streamEvents(id("many-3"), { pageSize }))
              expect(streamed.length).toBe(10)
              perCall.push(statements.length - before)
            }
            expect(perCall).toEqual([1, 1, 1, 2, 3])
            expect(statements.filter((q) => q.includes('"eventcore".append('))).toHaveLength(2)
          })
        )
    )
  })

  describe("concurrency on a real server", () => {
    it.live("opposite-direction appends lock in one fixed order and never deadlock", () =>
      withStore(
        Effect.gen(function* () {
          const a = id("acct-a")
          const b = id("acct-b")
          const latch = yield* Effect.makeLatch(false)
          const fibers = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, i) => i),
            (i) =>
              Effect.fork(
                latch.await.pipe(
                  Effect.zipRight(
                    Effect.forEach(Array.from({ length: 10 }), () =>
                      Effect.flatMap(store, (s) =>
                        s.append(
                          i % 2 === 0
                            ? writesOf(
                                { streamId: a, expected: "any", events: testEvents(1) },
                                { streamId: b, expected: "any", events: testEvents(1) }
                              )
                            : writesOf(
                                { streamId: b, expected: "any", events: testEvents(1) },
                                { streamId: a, expected: "any", events: testEvents(1) }
                              )
                        )
                      )
                    )
                  )
                )
              )
          )
          yield* latch.open
          const exits = yield* Effect.forEach(fibers, Fiber.await)
          expect(exits.every(Exit.isSuccess)).toBe(true)
          const s = yield* store
          for (const stream of [a, b]) {
            const read = yield* s.readStream(stream)
            expect(read.events.map((e) => e.streamVersion)).toEqual(Array.from({ length: 160 }, (_, v) => v + 1))
          }
        }),
        { maxConnections: 16 }
      )
    )

    it.live("write skew through read-only participants is refused under real parallelism", () =>
      withStore(
        Effect.gen(function* () {
          // Invariant: at most one of the two on-call streams may go off duty.
          // Each writer checks the other (read-only) and writes only its own.
          // Even rounds: both streams new (nothing to lock yet); odd rounds:
          // both exist at version 1.
          const s = yield* store
          let violations = 0
          for (let round = 0; round < 30; round++) {
            const left = id(`oncall-${round}-left`)
            const right = id(`oncall-${round}-right`)
            const expected = round % 2 === 0 ? "no_stream" : 1
            if (expected === 1) {
              yield* s.append(
                writesOf(
                  { streamId: left, expected: "no_stream", events: testEvents(1) },
                  { streamId: right, expected: "no_stream", events: testEvents(1) }
                )
              )
            }
            const latch = yield* Effect.makeLatch(false)
            const goOffDuty = (mine: StreamId.StreamId, other: StreamId.StreamId) =>
              latch.await.pipe(
                Effect.zipRight(
                  Effect.either(
                    s.append(
                      writesOf({ streamId: mine, expected, events: testEvents(1) }, { streamId: other, expected })
                    )
                  )
                )
              )
            const fibers = yield* Effect.all([Effect.fork(goOffDuty(left, right)), Effect.fork(goOffDuty(right, left))])
            yield* latch.open
            const outcomes = yield* Fiber.joinAll(fibers)
            const succeeded = outcomes.filter(Either.isRight).length
            if (succeeded !== 1) violations++
          }
          expect(violations).toBe(0)
        }),
        { maxConnections: 4 }
      )
    )

    it.live("16 fibers of concurrent transfers with retries neither create nor destroy money", () =>
      withStore(
        Effect.gen(function* () {
          const accounts = ["a", "b", "c", "d", "e"]
          for (const account of accounts) {
            yield* execute(Open, { account, owner: account })
            yield* execute(Deposit, { account, amount: 1_000 })
          }
          const retry = Schedule.exponential("2 millis").pipe(
            Schedule.jittered,
            Schedule.intersect(Schedule.recurs(30))
          )
          const latch = yield* Effect.makeLatch(false)
          const fibers = yield* Effect.forEach(Array.from({ length: 16 }), () =>
            Effect.fork(
              latch.await.pipe(
                Effect.zipRight(
                  Effect.forEach(Array.from({ length: 12 }), () =>
                    Effect.gen(function* () {
                      const from = accounts[yield* Random.nextIntBetween(0, 5)] as string
                      const offset = yield* Random.nextIntBetween(1, 5)
                      const to = accounts[(accounts.indexOf(from) + offset) % 5] as string
                      const amount = yield* Random.nextIntBetween(1, 400)
                      return yield* execute(Transfer, { from, to, amount }, { retry }).pipe(
                        Effect.map((r) => r.attempts),
                        Effect.catchTag("InsufficientFunds", () => Effect.succeed(0))
                      )
                    })
                  )
                )
              )
            )
          )
          yield* latch.open
          const attempts = (yield* Fiber.joinAll(fibers)).flat()
          const balances = yield* Effect.forEach(accounts, balanceOf)
          expect(balances.reduce((x, y) => x + y, 0)).toBe(5_000)
          expect(balances.every((balance) => balance >= 0)).toBe(true)
          // Real contention happened: some commands needed more than one attempt.
          expect(attempts.some((n) => n > 1)).toBe(true)
        }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)),
        { maxConnections: 16 }
      )
    )
  })

  describe("errors at the edge", () => {
    it.live("an unreachable server fails the layer with a StoreError that says what to do and hides the password", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Layer.build(
            PostgresEventStore.layer({
              url: Redacted.make("postgres://app:s3cret-password@127.0.0.1:1/db"),
              acquireTimeout: "5 seconds"
            })
          ).pipe(Effect.scoped)
        )
        expect(error._tag).toBe("StoreError")
        expect(error.message).toContain("Cannot reach PostgreSQL")
        expect(error.message).not.toContain("s3cret-password")
        expect(JSON.stringify(error)).not.toContain("s3cret-password")
      })
    )

    it.live("a database that was never migrated fails the layer with a StoreError naming the fix", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const admin = server.adminClient()
          const name = `eventcore_empty_${Date.now()}`
          yield* Effect.acquireRelease(
            Effect.promise(() => admin.unsafe(`create database "${name}"`)),
            () => Effect.promise(() => admin.unsafe(`drop database if exists "${name}" with (force)`))
          )
          const url = new URL(databaseUrl as string)
          url.pathname = `/${name}`
          const error = yield* Effect.flip(
            Layer.build(PostgresEventStore.layer({ url: url.toString() })).pipe(Effect.scoped)
          )
          expect(error.message).toContain("PostgresEventStore.migrate")
          // autoMigrate fixes it.
          const read = yield* Effect.flip(
            Effect.flatMap(store, (s) => s.readStream(id("x"))).pipe(
              Effect.provide(PostgresEventStore.layer({ url: url.toString(), autoMigrate: true }))
            )
          )
          expect(read._tag).toBe("StreamNotFound")
        })
      )
    )

    it.live("when every connection stays busy, waiting for one ends in a StoreError after acquireTimeout", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { url, database } = yield* server.freshDatabase
          const blocker = postgres(url, { max: 1, onnotice: () => {} })
          yield* Effect.addFinalizer(() => Effect.promise(() => blocker.end()))
          const s = yield* storeIn(PostgresEventStore.layer({ url, maxConnections: 1, acquireTimeout: "300 millis" }))
          // A transaction elsewhere holds the events table, so the store's one
          // connection is stuck inside an append.
          const release = yield* Effect.makeLatch(false)
          const locked = yield* Effect.makeLatch(false)
          const holder = yield* Effect.fork(
            Effect.promise(() =>
              blocker.begin(async (tx) => {
                await tx`lock table eventcore.events in access exclusive mode`
                await Effect.runPromise(Effect.zipRight(locked.open, release.await))
              })
            )
          )
          yield* locked.await
          const stuck = yield* Effect.fork(
            s.append(writesOf({ streamId: id("stuck"), expected: "any", events: testEvents(1) }))
          )
          // The read comes once the append holds the connection, waiting on the lock. It can only end
          // while the lock is held (released below) by giving up on a connection.
          const appendWaits = Effect.promise(
            () =>
              server.adminClient()`select from pg_stat_activity where datname = ${database}
                and application_name = 'eventcore' and wait_event_type = 'Lock'`
          )
          while ((yield* appendWaits).length === 0) yield* Effect.sleep("10 millis")
          const error = yield* Effect.flip(s.readStream(id("stuck")))
          expect(error._tag).toBe("StoreError")
          expect(error.message).toContain("No PostgreSQL connection became free within 300ms (pool of 1)")
          yield* release.open
          yield* Fiber.join(holder)
          const appended = yield* Fiber.join(stuck)
          expect(appended.streamVersions.get(id("stuck"))).toBe(1)
        })
      )
    )

    it.live("operations beyond the pool's size wait for a connection and all succeed once one is free", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const blocker = postgres(url, { max: 1, onnotice: () => {} })
          yield* Effect.addFinalizer(() => Effect.promise(() => blocker.end()))
          const s = yield* storeIn(PostgresEventStore.layer({ url, maxConnections: 2, acquireTimeout: "20 seconds" }))
          const release = yield* Effect.makeLatch(false)
          const locked = yield* Effect.makeLatch(false)
          const holder = yield* Effect.fork(
            Effect.promise(() =>
              blocker.begin(async (tx) => {
                await tx`lock table eventcore.events in access exclusive mode`
                await Effect.runPromise(Effect.zipRight(locked.open, release.await))
              })
            )
          )
          yield* locked.await
          // Two appends take both connections and block on the lock; the other
          // ten find no free connection and queue for one.
          const appends = yield* Effect.forEach(Array.from({ length: 12 }), (_, i) =>
            Effect.fork(
              s.append(writesOf({ streamId: id(`queued-${i}`), expected: "no_stream", events: testEvents(2) }))
            )
          )
          yield* Effect.sleep("200 millis")
          const stillWaiting = yield* Effect.forEach(appends, (fiber) => fiber.poll)
          expect(stillWaiting.every(Option.isNone)).toBe(true)
          yield* release.open
          yield* Fiber.join(holder)
          const results = yield* Fiber.joinAll(appends)
          expect(results.map((r, i) => r.streamVersions.get(id(`queued-${i}`)))).toEqual(Array(12).fill(2))
          for (let i = 0; i < 12; i++) expect((yield* s.readStream(id(`queued-${i}`))).version).toBe(2)
        })
      )
    )

    it.live("a backend terminated inside an append: nothing half-written, and the next append succeeds", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const admin = postgres(url, { max: 2, onnotice: () => {} })
          yield* Effect.addFinalizer(() => Effect.promise(() => admin.end()))
          const s = yield* storeIn(PostgresEventStore.layer({ url, maxConnections: 2 }))
          yield* s.append(writesOf({ streamId: id("target"), expected: "no_stream", events: testEvents(1) }))

          const release = yield* Effect.makeLatch(false)
          const locked = yield* Effect.makeLatch(false)
          const holder = yield* Effect.fork(
            Effect.promise(() =>
              admin.begin(async (tx) => {
                await tx`lock table eventcore.events in share mode`
                await Effect.runPromise(Effect.zipRight(locked.open, release.await))
              })
            )
          )
          yield* locked.await
          // The append's insert waits on the lock: it has locked the stream rows
          // and is mid-transaction when its backend is terminated.
          const appending = yield* Effect.fork(
            s.append(
              writesOf(
                { streamId: id("target"), expected: 1, events: testEvents(5) },
                { streamId: id("other"), expected: "no_stream", events: testEvents(5) }
              )
            )
          )
          const waiting = yield* Effect.promise(async () => {
            for (;;) {
              const rows = await admin`select pid from pg_stat_activity where datname = current_database()
                  and application_name = 'eventcore' and wait_event_type = 'Lock'`
              if (rows.length > 0) return rows.map((r) => r.pid as number)
              await new Promise((resolve) => setTimeout(resolve, 50))
            }
          })
          expect(waiting).toHaveLength(1)
          yield* Effect.promise(() => admin`select pg_terminate_backend(${waiting[0] as number})`)
          const error = yield* Effect.flip(Fiber.join(appending))
          expect(error._tag).toBe("StoreError")
          expect(error.message).toContain("either committed completely or not at all")
          yield* release.open
          yield* Fiber.join(holder)

          const target = yield* s.readStream(id("target"))
          expect(target.version).toBe(1)
          expect(Either.isLeft(yield* Effect.either(s.readStream(id("other"))))).toBe(true)
          const next = yield* s.append(writesOf({ streamId: id("target"), expected: 1, events: testEvents(2) }))
          expect(next.streamVersions.get(id("target"))).toBe(3)
        })
      )
    )
  })

  describe("conflict diagnosis", () => {
    /** `client`, but its first append after `arm` fails as a raced write (40001) would, before reaching the server. */
    const racingOnce = (client: postgres.Sql) => {
      let armed = false
      const racing = new Proxy(client, {
        get(target, key, receiver) {
          if (key !== "unsafe") return Reflect.get(target, key, receiver)
          return (statement: string, ...rest: Array<never>) => {
            if (!armed || !statement.includes('"eventcore".append(')) return target.unsafe(statement, ...rest)
            armed = false
            const raced = Object.assign(new Error("could not serialize access due to concurrent update"), {
              code: "40001"
            })
            return { values: () => Promise.reject(raced) }
          }
        }
      })
      return {
        client: racing,
        arm: () => {
          armed = true
        }
      }
    }

    for (const fetchTypes of [false, true]) {
      /** A store over a fresh database whose next append, once armed, fails as if raced. */
      const racedStore = Effect.gen(function* () {
        const { url } = yield* server.freshDatabase
        const client = postgres(url, { max: 1, onnotice: () => {}, fetch_types: fetchTypes })
        yield* Effect.addFinalizer(() => Effect.promise(() => client.end()))
        const racing = racingOnce(client)
        return { store: PostgresEventStore.make(racing.client), arm: racing.arm }
      })

      it.live(`a raced append names the conflicting stream and its version (fetch_types: ${fetchTypes})`, () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { store: s, arm } = yield* racedStore
            yield* s.append(
              writesOf(
                { streamId: id("a'b,\"c{}"), expected: "no_stream", events: testEvents(2) },
                { streamId: id("other"), expected: "no_stream", events: testEvents(1) }
              )
            )
            arm()
            const conflict = yield* Effect.flip(
              s.append(
                writesOf(
                  { streamId: id("other"), expected: 1, events: testEvents(1) },
                  { streamId: id("a'b,\"c{}"), expected: 1, events: testEvents(1) },
                  { streamId: id("new"), expected: "no_stream", events: testEvents(1) }
                )
              )
            )
            expect(conflict).toMatchObject({ _tag: "VersionConflict", streamId: "a'b,\"c{}", expected: 1, actual: 2 })
          })
        )
      )

      it.live(
        `with several stale participants, a raced append names the first in byte order, as the database's own check does (fetch_types: ${fetchTypes})`,
        () =>
          Effect.scoped(
            Effect.gen(function* () {
              const { store: s, arm } = yield* racedStore
              yield* s.append(
                writesOf(
                  { streamId: id("a-current"), expected: "no_stream", events: testEvents(1) },
                  { streamId: id("b-stale"), expected: "no_stream", events: testEvents(3) },
                  { streamId: id("c-stale"), expected: "no_stream", events: testEvents(2) }
                )
              )
              // In request order the first stale stream is c-stale; in byte order, b-stale.
              const stale = writesOf(
                { streamId: id("c-stale"), expected: 1, events: testEvents(1) },
                { streamId: id("a-current"), expected: 1, events: testEvents(1) },
                { streamId: id("b-stale"), expected: 1, events: testEvents(1) }
              )
              const checked = yield* Effect.flip(s.append(stale))
              arm()
              const diagnosed = yield* Effect.flip(s.append(stale))
              expect(diagnosed).toMatchObject({ _tag: "VersionConflict", streamId: "b-stale", expected: 1, actual: 3 })
              expect(diagnosed).toEqual(checked)
            })
          )
      )
    }
  })

  describe("configuration and lifecycle", () => {
    it.live("layerConfig reads DATABASE_URL, EVENTCORE_MAX_CONNECTIONS and EVENTCORE_ACQUIRE_TIMEOUT", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const provider = ConfigProvider.fromMap(
            new Map([
              ["DATABASE_URL", url],
              ["EVENTCORE_MAX_CONNECTIONS", "3"],
              ["EVENTCORE_ACQUIRE_TIMEOUT", "2 seconds"]
            ])
          )
          const config = yield* Effect.withConfigProvider(PostgresEventStore.config, provider)
          expect(config.maxConnections).toBe(3)
          expect(Duration.toMillis(config.acquireTimeout as Duration.Duration)).toBe(2_000)
          expect(String(config.url)).not.toContain("postgres://")
          const result = yield* Effect.flatMap(store, (s) =>
            s.append(writesOf({ streamId: id("configured"), expected: "no_stream", events: testEvents(1) }))
          ).pipe(Effect.provide(PostgresEventStore.layerConfig), Effect.withConfigProvider(provider))
          expect(result.events).toHaveLength(1)
        })
      )
    )

    it.live("layerFromClient never closes the application's pool", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const client = postgres(url, { max: 2, onnotice: () => {} })
          yield* Effect.addFinalizer(() => Effect.promise(() => client.end()))
          yield* Effect.flatMap(store, (s) =>
            s.append(writesOf({ streamId: id("shared"), expected: "no_stream", events: testEvents(1) }))
          ).pipe(Effect.provide(PostgresEventStore.layerFromClient(client)))
          const rows = yield* Effect.promise(() => client`select count(*)::int as n from eventcore.events`)
          expect(rows[0]?.n).toBe(1)
        })
      )
    )

    it.live("migrate is idempotent and safe when several processes run it at once", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const admin = server.adminClient()
          const name = `eventcore_migrate_${Date.now()}`
          yield* Effect.acquireRelease(
            Effect.promise(() => admin.unsafe(`create database "${name}"`)),
            () => Effect.promise(() => admin.unsafe(`drop database if exists "${name}" with (force)`))
          )
          const url = new URL(databaseUrl as string)
          url.pathname = `/${name}`
          const reports = yield* Effect.all(
            Array.from({ length: 4 }, () => PostgresEventStore.migrate({ url: url.toString() })),
            { concurrency: "unbounded" }
          )
          expect(reports.flatMap((r) => r.applied).sort()).toEqual([...shippedMigrations].sort())
          const again = yield* PostgresEventStore.migrate({ url: url.toString() })
          expect(again.applied).toEqual([])
        })
      )
    )
  })

  describe("observability", () => {
    it.live("appends and reads run in spans with the stream and event counts; conflicts are counted", () => {
      const { spans, layer: tracerLayer } = makeRecordingTracer()
      return withStore(
        Effect.gen(function* () {
          const s = yield* store
          const conflictsBefore = (yield* Metric.value(EventStore.conflictCounter)).count
          yield* s.append(
            writesOf(
              { streamId: id("span-a"), expected: "no_stream", events: testEvents(3) },
              { streamId: id("span-b"), expected: "no_stream" }
            )
          )
          yield* s.readStream(id("span-a"))
          yield* Effect.flip(s.append(writesOf({ streamId: id("span-a"), expected: 1, events: testEvents(1) })))
          const append = spans.find((span) => span.name === "eventcore.append")
          expect(Object.fromEntries(append?.attributes ?? [])).toMatchObject({
            "db.system": "postgresql",
            "eventcore.stream_count": 2,
            "eventcore.event_count": 3
          })
          const read = spans.find((span) => span.name === "eventcore.read_stream")
          expect(Object.fromEntries(read?.attributes ?? [])).toMatchObject({
            "db.system": "postgresql",
            "eventcore.stream_id": "span-a",
            "eventcore.event_count": 3
          })
          const failed = spans.filter((span) => span.name === "eventcore.append")[1]
          expect(failed?.exit && Exit.isFailure(failed.exit)).toBe(true)
          const conflictsAfter = (yield* Metric.value(EventStore.conflictCounter)).count
          expect(conflictsAfter - conflictsBefore).toBe(1)
        }).pipe(Effect.provide(tracerLayer))
      )
    })
  })

  it.live("StreamWrites values are reusable across appends (immutability)", () =>
    withStore(
      Effect.gen(function* () {
        const s = yield* store
        const base = Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, id("re"), "any"))
        const one = Either.getOrThrow(StreamWrites.append(base, { streamId: id("re"), eventType: "E", data: 1 }))
        yield* s.append(one)
        yield* s.append(one)
        expect((yield* s.readStream(id("re"))).version).toBe(2)
        expect(StreamWrites.events(base)).toEqual([])
      })
    )
  )
})
