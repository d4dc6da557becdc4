/**
 * `Projection.status` across processes on PostgreSQL: an instance standing by
 * in another process is reported, by a store that has no definitions of its
 * own, and no longer once that process is killed with SIGKILL (it had no
 * chance to say so).
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect, Layer } from "effect"
import { execute, PostgresEventStore, Projection } from "eventcore"
import postgres from "postgres"
import { expect, it } from "vitest"
import { Open } from "../../src/demo/domain.js"
import { Balances, createBalances } from "../../src/demo/readModel.js"
import { lastWritten } from "../sql/projections.js"
import { bundle } from "../support/bundle.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

const root = join(import.meta.dirname, "..", "..")
/** A process running the bank's projection (see ../support/projectionProcess.ts). */
const runner = await bundle(join("test", "support", "projectionProcess.ts"), "projection-process")

describeServer("projection status across processes", () => {
  const server = usePostgresTemplate()

  it(
    "reports an instance of another process standing by, and no longer once that process is killed",
    () =>
      Effect.runPromise(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const admin = yield* Effect.acquireRelease(
            Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
            (client) => Effect.promise(() => client.end({ timeout: 1 }))
          )
          yield* Effect.promise(() => drizzle({ client: admin }).execute(createBalances))
          const running = yield* Layer.build(PostgresEventStore.layer({ url, maxConnections: 4 }))
          yield* Effect.provide(execute(Open, { account: "a", owner: "a", initialDeposit: 5 }), running)
          yield* Effect.forkScoped(Effect.provide(Projection.run(Balances), running))
          yield* Effect.provide(Projection.waitFor(Balances, yield* lastWritten(drizzle({ client: admin }))), running)

          const child = yield* Effect.acquireRelease(
            Effect.sync(() => spawn(process.execPath, [runner, url], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })),
            (child) => Effect.sync(() => child.kill("SIGKILL"))
          )
          const pid = yield* Effect.async<number>((resume) => {
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
              const found = /^pid (\d+)$/m.exec(chunk)?.[1]
              if (found !== undefined) resume(Effect.succeed(Number(found)))
            })
          })
          // Asked through a store of its own, which knows no projection: as the command line asks.
          const asked = yield* Layer.build(PostgresEventStore.layer({ url, maxConnections: 1 }))
          const processOf = (owner: string | undefined) => Number(owner?.split("/")[1])
          const statusUntil = (what: string, done: (rows: ReadonlyArray<Projection.ProjectionStatus>) => boolean) =>
            Effect.gen(function* () {
              for (;;) {
                const rows = yield* Effect.provide(Projection.status, asked)
                if (done(rows)) return rows
                yield* Effect.sleep("100 millis")
              }
            }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`never: ${what}`) }))

          const both = yield* statusUntil("the other process stands by", (rows) => rows.length === 2)
          expect(both.map((row) => [row.status, processOf(row.owner)])).toEqual([
            ["running", process.pid],
            ["standby", pid]
          ])

          child.kill("SIGKILL")
          const after = yield* statusUntil("the killed process is not reported", (rows) => rows.length === 1)
          expect(after.map((row) => [row.status, processOf(row.owner)])).toEqual([["running", process.pid]])
          // It could not take its entry back: the entry stays, and is not reported because its lock is gone.
          const entries = yield* Effect.promise(
            () =>
              admin<
                Array<{ instance: string }>
              >`select jsonb_object_keys(standbys) as instance from eventcore.projections`
          )
          expect(entries.map((row) => processOf(row.instance))).toEqual([pid])
        }).pipe(Effect.scoped)
      ),
    120_000
  )
})
