/**
 * Projections on a PostgreSQL server, where instances, connections and
 * processes really come and go: exactly once while backends are terminated
 * under load, a deposed instance's batch rolled back by the checkpoint's
 * compare-and-set, and a standby process taking over from one killed with
 * SIGKILL.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { expect, it } from "@effect/vitest"
import { drizzle } from "drizzle-orm/postgres-js"
import { Deferred, Effect, Fiber, Layer, Option } from "effect"
import { type EventStore, execute, PostgresEventStore, Projection, type RecordedEvent } from "eventcore"
import postgres from "postgres"
import { AccountEvent, Deposit, Open, Transfer } from "../../src/demo/domain.js"
import { Balances, balances, createBalances } from "../../src/demo/readModel.js"
import { folded, lastWritten } from "../sql/projections.js"
import { upsertBalance } from "../support/balances.js"
import { bundle } from "../support/bundle.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

const root = join(import.meta.dirname, "..", "..")
/** The projection's process, run by Node itself (see ../support/bundle.ts). */
const runner = await bundle(join("test", "support", "projectionProcess.ts"), "projection-process")

/** A connection of the test's own, closed with the scope. */
const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => postgres(url, { max: 2, onnotice: () => {} })),
    (client) => Effect.promise(() => client.end({ timeout: 1 }))
  )

/** The balances the read model holds. */
const readModel = (client: postgres.Sql) =>
  Effect.promise(async () =>
    Object.fromEntries(
      (await drizzle({ client }).select().from(balances).orderBy(balances.account)).map((row) => [
        row.account,
        row.cents
      ])
    )
  )

const accounts = ["a", "b", "c", "d", "e"]

const openAccounts = Effect.forEach(accounts, (account) =>
  execute(Open, { account, owner: account, initialDeposit: 10_000 })
)

describeServer("projections on PostgreSQL", () => {
  const server = usePostgresTemplate()

  const storeOn = (url: string, maxConnections = 12) =>
    Layer.build(PostgresEventStore.layer({ url, maxConnections, acquireTimeout: "5 seconds" }))

  it.live(
    "exactly once under eight writers while backends are terminated, the projection's own in mid-batch among them",
    () =>
      Effect.gen(function* () {
        const { url, database } = yield* server.freshDatabase
        const admin = yield* connection(url)
        yield* Effect.promise(() => drizzle({ client: admin }).execute(createBalances))
        const context = yield* storeOn(url)
        const withStore = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>) =>
          Effect.provide(effect, context)
        yield* withStore(openAccounts)
        const projection = yield* Effect.forkScoped(withStore(Projection.run(Balances, { batchSize: 7 })))

        // Counts, not a duration: the writers write until the killer has terminated this many backends.
        const wanted = { pool: 6, projection: 3 }
        const terminated = { pool: 0, projection: 0 }
        const terminatedOne = (rows: ReadonlyArray<{ readonly terminated: boolean }>) =>
          rows.some((row) => row.terminated) ? 1 : 0
        /** One of the store's pool connections, a busy one if there is one. */
        const terminatePoolConnection = Effect.promise(
          () => admin<Array<{ terminated: boolean }>>`select pg_terminate_backend(pid) as terminated
            from pg_stat_activity where datname = ${database} and application_name = 'eventcore'
            order by state = 'idle', random() limit 1`
        ).pipe(Effect.map(terminatedOne))
        /** The projection's session, as soon as it is inside a batch that has written (holds a transaction id). */
        const terminateProjectionMidBatch = Effect.gen(function* () {
          for (;;) {
            const rows = yield* Effect.promise(
              () => admin<Array<{ terminated: boolean }>>`select pg_terminate_backend(pid) as terminated
                from pg_stat_activity where datname = ${database} and application_name = 'eventcore-projection'
                and backend_xid is not null`
            )
            if (terminatedOne(rows) === 1) return 1
            yield* Effect.sleep("5 millis")
          }
        })
        const killer = yield* Effect.fork(
          Effect.gen(function* () {
            for (let kill = 0; terminated.pool < wanted.pool || terminated.projection < wanted.projection; kill++) {
              // A few hundred ms between kills, so that the writers and the projection get on between them.
              yield* Effect.sleep(`${100 + Math.floor(Math.random() * 200)} millis`)
              if (terminated.projection >= wanted.projection || (kill % 2 === 0 && terminated.pool < wanted.pool)) {
                terminated.pool += yield* terminatePoolConnection
              } else {
                terminated.projection += yield* terminateProjectionMidBatch
              }
            }
          })
        )
        const writers = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, w) => w),
          (w) =>
            Effect.fork(
              withStore(
                Effect.gen(function* () {
                  let i = 0
                  while (i < 15 || Option.isNone(yield* killer.poll)) {
                    yield* Effect.either(
                      execute(Transfer, {
                        from: accounts[(w + i) % 5] as string,
                        to: accounts[(w + i + 1) % 5] as string,
                        amount: 1 + ((w * 7 + i) % 13)
                      })
                    )
                    i++
                  }
                  return i
                })
              )
            )
        )
        // A projection that stopped fails the test with its own error, rather than leave the killer waiting.
        yield* Effect.raceFirst(Fiber.join(killer), Fiber.join(projection))
        const transfers = (yield* Fiber.joinAll(writers)).reduce((sum, n) => sum + n, 0)
        // From the table: the log's readable head can be held back by the projection's own batch.
        const expected = yield* folded(drizzle({ client: admin }))
        const last = yield* lastWritten(drizzle({ client: admin }))
        yield* Effect.raceFirst(
          withStore(Projection.waitFor(Balances, last, { timeout: "60 seconds" })),
          Fiber.join(projection)
        )
        expect(terminated).toEqual(wanted)
        expect(yield* readModel(admin)).toEqual(expected)
        yield* Effect.logInfo(
          `${transfers} transfers while ${terminated.pool} pool connections and the projection's session ${terminated.projection} times were terminated`
        )
      }).pipe(Effect.scoped),
    150_000
  )

  it.live("a deposed instance's batch is rolled back by the checkpoint's compare-and-set, not committed twice", () =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      const admin = yield* connection(url)
      yield* Effect.promise(() => drizzle({ client: admin }).execute(createBalances))
      const context = yield* storeOn(url)
      const withStore = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>) =>
        Effect.provide(effect, context)
      const opened = yield* withStore(execute(Open, { account: "z", owner: "z", initialDeposit: 5 }))
      const last = opened.events.at(-1) as RecordedEvent

      // The projection's first batch stops inside its transaction until released.
      const entered = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      let first = true
      const Held = Projection.make({
        name: "bank-balances",
        event: AccountEvent,
        handle: (event, recorded) =>
          Effect.gen(function* () {
            if (first) {
              first = false
              yield* Deferred.succeed(entered, undefined)
              yield* Deferred.await(release)
            }
            yield* upsertBalance(event, recorded)
          })
      })
      const projection = yield* Effect.forkScoped(withStore(Projection.run(Held, { batchSize: 10 })))
      yield* Effect.raceFirst(Deferred.await(entered), Fiber.join(projection)).pipe(
        Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error("the projection never handled an event")
        })
      )

      // Meanwhile "another instance" projects the same batch and commits its checkpoint first.
      yield* Effect.promise(() =>
        admin.begin(async (tx) => {
          await tx`insert into bank_balances (account, cents) values ('z', 5)`
          await tx`update eventcore.projections set position = ${last.position} where name = 'bank-balances'`
        })
      )
      yield* Deferred.succeed(release, undefined)

      // Its position, not the readable head: the held batch, still rolling back, may hold the head before it.
      const deposit = yield* withStore(execute(Deposit, { account: "z", amount: 1 }))
      yield* withStore(
        Projection.waitFor(Held, (deposit.events.at(-1) as RecordedEvent).position, { timeout: "30 seconds" })
      )
      // 5 from the other instance's batch, 1 from the deposit after it: the held batch added nothing.
      expect(yield* readModel(admin)).toEqual({ z: 6 })
    }).pipe(Effect.scoped)
  )

  it.live("a standby process, standing by, takes over when the active one is killed with SIGKILL", () =>
    Effect.gen(function* () {
      const { url, database } = yield* server.freshDatabase
      const admin = yield* connection(url)
      yield* Effect.promise(() => drizzle({ client: admin }).execute(createBalances))
      const context = yield* storeOn(url, 4)
      const withStore = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore>) =>
        Effect.provide(effect, context)
      yield* withStore(openAccounts)

      const startRunner = Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, [runner, url], {
            cwd: root,
            stdio: ["ignore", "pipe", "pipe"]
          })
        ),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      ).pipe(
        Effect.flatMap((child) =>
          Effect.async<{ readonly child: typeof child; readonly pid: number }>((resume) => {
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
              const pid = /^pid (\d+)$/m.exec(chunk)?.[1]
              if (pid !== undefined) resume(Effect.succeed({ child, pid: Number(pid) }))
            })
          })
        )
      )
      /** The process the projection's status names as its running owner, if it runs. */
      const runningOwner = Effect.map(withStore(Projection.status), ([status]) =>
        status?.status === "running" && status.owner !== undefined ? Number(status.owner.split("/")[1]) : undefined
      )
      /**
       * Looks every 100 ms until `done`. The deadline only ends a test that would hang: it is far
       * past anything awaited here (a process's start, the standby's one-second poll for the lock).
       */
      const until = <E>(what: string, done: Effect.Effect<boolean, E>) =>
        Effect.gen(function* () {
          while (!(yield* done)) yield* Effect.sleep("100 millis")
        }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`never: ${what}`) }))
      /** Sessions of instances whose last statement was the try for the name's lock: instances standing by. */
      const standingBy = Effect.promise(
        () => admin<Array<{ n: number }>>`select count(*)::int as n from pg_stat_activity
          where datname = ${database} and application_name = 'eventcore-projection'
          and query like '%pg_try_advisory_lock%'`
      ).pipe(Effect.map(([row]) => row?.n ?? 0))

      const active = yield* startRunner
      yield* until(
        "the first process runs the projection",
        Effect.map(runningOwner, (pid) => pid === active.pid)
      )
      const standby = yield* startRunner
      // Its session has asked for the lock and been refused: it stands by, the first keeps the name.
      yield* until(
        "the second process stands by",
        Effect.map(standingBy, (n) => n === 1)
      )
      expect(yield* runningOwner).toBe(active.pid)

      const killedAt = Date.now()
      active.child.kill("SIGKILL")
      yield* until(
        "the standby takes over",
        Effect.map(runningOwner, (pid) => pid === standby.pid)
      )
      const takeover = Date.now() - killedAt

      for (let i = 0; i < 5; i++) {
        yield* withStore(Effect.either(execute(Transfer, { from: "a", to: "b", amount: 3 })))
      }
      const expected = yield* folded(drizzle({ client: admin }))
      yield* withStore(
        Projection.waitFor(Balances, yield* lastWritten(drizzle({ client: admin })), { timeout: "30 seconds" })
      )
      expect(yield* readModel(admin)).toEqual(expected)
      yield* Effect.logInfo(`takeover after SIGKILL: ${takeover} ms`)
    }).pipe(Effect.scoped)
  )
})
