/**
 * The examples that need a PostgreSQL server, each on a database of its own:
 * the soak (`npm run soak`) for a few short rounds while its backends are
 * terminated, and the README's Drizzle query, a module that queries when
 * imported, imported by a program as an application would.
 */
import { Effect } from "effect"
import { execute, PostgresEventStore } from "eventcore"
import { it } from "vitest"
import { Open, Transfer } from "../../src/demo/domain.js"
import { runWithTsx } from "../support/example.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

/** tsx compiles, the store migrates, then the example runs. */
const timeoutMillis = 45_000

/** Imports the example and prints what it queried; it leaves its pool open, as an application would, so the program exits. */
const importDrizzleExample = `
const { perType, longest } = await import("./examples/readme/drizzle.ts")
console.log(JSON.stringify({ perType, longest }))
process.exit(0)
`

describeServer("examples/ on PostgreSQL", () => {
  const server = usePostgresTemplate()

  it.concurrent("bank/soak.ts keeps every invariant, round after round, while backends are terminated", ({ expect }) =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      const run = yield* Effect.promise(() =>
        runWithTsx(["examples/bank/soak.ts"], {
          env: { DATABASE_URL: url, SOAK_SECONDS: "2", SOAK_TRANSFERS: "40", SOAK_TERMINATE_MS: "100-300" },
          timeoutMillis
        })
      )
      // The soak drops the database it creates, unless it was killed before it could.
      yield* Effect.promise(() =>
        server.adminClient().unsafe(`drop database if exists "eventcore_soak_${run.pid}" with (force)`)
      )
      expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
      const rounds = run.stdout.match(/^round \d+: .*$/gm) ?? []
      expect(rounds.length, run.stdout).toBeGreaterThanOrEqual(2)
      for (const round of rounds) expect(round).toMatch(/, invariants hold; \d+ backends terminated so far$/)
      const summary =
        /^soak: \d+ s, (\d+) rounds, .*, (\d+) backends terminated, 0 rounds with broken invariants$/m.exec(run.stdout)
      expect(summary, run.stdout).not.toBeNull()
      expect(Number(summary?.[1])).toBe(rounds.length)
      expect(Number(summary?.[2])).toBeGreaterThan(0)
    }).pipe(Effect.scoped, Effect.runPromise))

  it.concurrent("readme/drizzle.ts counts a store's events by type and lists its longest streams", ({ expect }) =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      yield* Effect.gen(function* () {
        yield* execute(Open, { account: "alice", owner: "Alice", initialDeposit: 100_00 })
        yield* execute(Open, { account: "bob", owner: "Bob" })
        yield* execute(Transfer, { from: "alice", to: "bob", amount: 30_00 })
      }).pipe(Effect.provide(PostgresEventStore.layer({ url })))
      const run = yield* Effect.promise(() =>
        runWithTsx(["--input-type=module", "--eval", importDrizzleExample], {
          env: { DATABASE_URL: url },
          timeoutMillis
        })
      )
      expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
      const { perType, longest } = JSON.parse(run.stdout) as {
        readonly perType: ReadonlyArray<{ readonly type: string; readonly n: number }>
        readonly longest: ReadonlyArray<unknown>
      }
      expect([...perType].sort((a, b) => a.type.localeCompare(b.type))).toEqual([
        { type: "AccountOpened", n: 2 },
        { type: "MoneyDeposited", n: 1 },
        { type: "TransferReceived", n: 1 },
        { type: "TransferSent", n: 1 }
      ])
      expect(longest).toEqual([
        { streamId: "account-alice", version: 3 },
        { streamId: "account-bob", version: 2 }
      ])
    }).pipe(Effect.scoped, Effect.runPromise))
})
