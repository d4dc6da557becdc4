/**
 * A store opened with a replica while its primary migrates (issue #23): the
 * layer waits for the standby to replay the primary's migrations instead of
 * refusing it for missing tables. Against a PostgreSQL 15 primary and standby
 * the test starts (test/support/replication.ts).
 */
import { randomUUID } from "node:crypto"
import { expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Either, Fiber, Layer } from "effect"
import { EventStore, PostgresEventStore } from "eventcore"
import { databaseUrl, describeServer } from "../support/postgres.js"
import { connection, inDatabase, useReplication } from "../support/replication.js"

describeServer("a replica behind the primary's migrations", () => {
  const replication = useReplication()

  /** A new, empty database on the primary: its URL on each server (the standby has yet to replay its creation). */
  const newDatabase = Effect.gen(function* () {
    const database = `migrations_${randomUUID().replaceAll("-", "").slice(0, 12)}`
    const admin = yield* connection(replication.primaryUrl())
    yield* Effect.promise(() => admin.unsafe(`create database "${database}"`))
    return {
      primary: inDatabase(replication.primaryUrl(), database),
      standby: inDatabase(replication.standbyUrl(), database)
    }
  }).pipe(Effect.scoped)

  /** Opens a store with `autoMigrate`, and reads its log (on the replica); closes it. */
  const start = (config: PostgresEventStore.PostgresConfig) =>
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(PostgresEventStore.layer({ ...config, autoMigrate: true }))
        return yield* Context.get(context, EventStore.EventStore).readAll()
      })
    )

  /**
   * The standby applies each commit `delay` after the primary made it
   * (`recovery_min_apply_delay`), as a standby under load or far away does:
   * the layer finds it behind whatever the machine's speed.
   */
  const lagStandby = (delay: string) =>
    Effect.gen(function* () {
      const admin = yield* connection(replication.standbyUrl())
      yield* Effect.promise(() => admin.unsafe(`alter system set recovery_min_apply_delay = '${delay}'`))
      yield* Effect.promise(() => admin`select pg_reload_conf()`)
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          await admin`alter system reset recovery_min_apply_delay`
          await admin`select pg_reload_conf()`
        })
      )
    })

  it.live(
    "twenty stores, each started with autoMigrate on a new database, all open and read the log on the standby",
    () =>
      Effect.gen(function* () {
        yield* lagStandby("500ms")
        const failures: Array<string> = []
        for (let i = 0; i < 20; i++) {
          const urls = yield* newDatabase
          const started = yield* Effect.either(start({ url: urls.primary, replicaUrl: urls.standby }))
          if (Either.isLeft(started)) failures.push(`start ${i + 1}: ${started.left.message}`)
          else expect(started.right.events).toEqual([])
        }
        expect(failures).toEqual([])
      }).pipe(Effect.scoped),
    240_000
  )

  it.live(
    "with the standby's replay paused, the layer fails after its timeout saying how far behind; it opens once replay resumes",
    () =>
      Effect.gen(function* () {
        const urls = yield* newDatabase
        // The standby has the database, and nothing of what the layer is about to migrate.
        replication.waitReplay()
        const standbyAdmin = yield* connection(replication.standbyUrl())
        yield* Effect.promise(() => standbyAdmin`select pg_wal_replay_pause()`)
        yield* Effect.addFinalizer(() => Effect.promise(() => standbyAdmin`select pg_wal_replay_resume()`))
        const config = { url: urls.primary, replicaUrl: urls.standby }

        const behindBy = (refused: { readonly _tag: string; readonly message: string }) => {
          const behind =
            /^The replica at replicaUrl is behind the primary: after waiting 1s it was still ([\d,]+) bytes of WAL short of [0-9A-F]+\/[0-9A-F]+, where the primary's WAL ended once it was migrated, and its replay is paused \(pg_wal_replay_resume\(\) on the standby resumes it\)\./.exec(
              refused.message
            )
          expect(refused._tag).toBe("StoreError")
          expect(behind, refused.message).not.toBeNull()
          return Number(behind?.[1]?.replaceAll(",", ""))
        }

        // The layer migrates the primary, and the standby does not replay it.
        expect(behindBy(yield* Effect.flip(start({ ...config, replicaReplayTimeout: "1 second" })))).toBeGreaterThan(0)
        // The layer finds the primary migrated, with the timeout from the environment.
        const environment = ConfigProvider.fromMap(
          new Map([
            ["DATABASE_URL", urls.primary],
            ["EVENTCORE_REPLICA_URL", urls.standby],
            ["EVENTCORE_REPLICA_REPLAY_TIMEOUT", "1 second"]
          ])
        )
        const fromEnvironment = yield* Effect.flip(
          Effect.scoped(Layer.build(PostgresEventStore.layerConfig)).pipe(Effect.withConfigProvider(environment))
        )
        expect(behindBy(fromEnvironment)).toBeGreaterThan(0)

        // A store started while replay is still paused waits, and opens once it resumes.
        const waiting = yield* Effect.fork(start(config))
        yield* Effect.sleep("200 millis")
        expect(waiting.unsafePoll()).toBeNull()
        yield* Effect.promise(() => standbyAdmin`select pg_wal_replay_resume()`)
        expect((yield* Fiber.join(waiting)).events).toEqual([])
      }).pipe(Effect.scoped)
  )

  it.live("a replicaUrl naming the primary itself opens: it has nothing to replay, so nothing is waited for", () =>
    Effect.gen(function* () {
      const urls = yield* newDatabase
      const read = yield* start({ url: urls.primary, replicaUrl: urls.primary })
      expect(read.events).toEqual([])
    })
  )

  it.live(
    "a replicaUrl naming a server of another cluster is refused at once: its transaction ids are not the primary's",
    () =>
      Effect.gen(function* () {
        const urls = yield* newDatabase
        const refused = yield* Effect.flip(start({ url: urls.primary, replicaUrl: databaseUrl ?? "" }))
        expect(refused.message).toMatch(
          /^The replica at replicaUrl is not a standby of the primary: it belongs to another cluster \(system identifier \d+, the primary's \d+\)\./
        )
      })
  )
})
