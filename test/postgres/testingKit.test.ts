/**
 * The testing kit's specs on a PostgreSQL server (`TestStore.postgres`): the
 * bank's commands, its balances, a spec whose last given event
 * is not the projection's, and a transaction left open elsewhere on the
 * server, which holds every reader of the global log back (Marten's trap): the
 * spec says so instead of timing out in silence. Each spec's database is gone
 * after it. test/kit/projectionSpec.test.ts has the rest, in memory and on PGlite.
 */
import { it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { Cause, Deferred, Effect, Exit } from "effect"
import { LogPosition } from "eventcore"
import { CommandSpec, ProjectionSpec, TestStore } from "eventcore/testing"
import postgres from "postgres"
import { expect } from "vitest"
import { InsufficientFunds, Transfer, TransferReceived, TransferSent } from "../../src/demo/domain.js"
import { Balances, balances, createBalances } from "../../src/demo/readModel.js"
import { balancesAcrossAccounts, deposited, opened } from "../support/bankSpecs.js"
import { databaseUrl, describeServer } from "../support/postgres.js"

/** A connection of its own to the server's database at DATABASE_URL, closed with the scope. */
const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
    (client) => Effect.promise(() => client.end({ timeout: 1 }))
  )

/** The message of the error a spec died or failed with. */
const failureMessage = <A, E>(spec: Effect.Effect<A, E, never>): Effect.Effect<string> =>
  Effect.map(Effect.exit(spec), (exit) => {
    if (Exit.isSuccess(exit)) throw new Error("the spec passed; it was expected to fail")
    const error = Cause.squash(exit.cause)
    return error instanceof Error ? error.message : String(error)
  })

describeServer("the testing kit on a PostgreSQL server", () => {
  const url = databaseUrl ?? ""
  /** The databases the specs of this file created, in order: each spec's `setup` names its own. */
  const created: Array<string> = []
  const layer = TestStore.postgres(url, {
    setup: async (db) => {
      const [row] = (await db.execute(sql`select current_database() as name`)) as unknown as Array<{ name: string }>
      if (row !== undefined) created.push(row.name)
      await db.execute(createBalances)
    }
  })

  /** Which of `names` the server still has. */
  const remaining = (names: ReadonlyArray<string>) =>
    Effect.flatMap(connection(url), (admin) =>
      Effect.promise(() => admin`select datname from pg_database where datname = any(${names as Array<string>})`)
    ).pipe(
      Effect.map((rows) => rows.map((row) => row.datname as string)),
      Effect.scoped
    )

  it.effect("the bank's commands: the same specs as in memory and on PGlite (test/kit/bank.test.ts)", () =>
    Effect.gen(function* () {
      yield* CommandSpec.make(Transfer, { layer })
        .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
        .when({ from: "alice", to: "bob", amount: 30_00 })
        .thenAppended({
          "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })],
          "account-bob": [TransferReceived.make({ from: "alice", amount: 30_00 })]
        })
      yield* CommandSpec.make(Transfer, { layer })
        .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
        .when(
          { from: "alice", to: "bob", amount: 30_00 },
          { concurrently: { "account-alice": [TransferSent.make({ to: "carol", amount: 40_00 })] } }
        )
        .thenFails(new InsufficientFunds({ account: "alice", balance: 10_00, requested: 30_00 }))
    })
  )

  it.effect("the bank's balances, several givens across accounts with transfers; its database is dropped after", () =>
    Effect.gen(function* () {
      const before = created.length
      yield* balancesAcrossAccounts(layer)
      const own = created.slice(before)
      expect(own).toHaveLength(1)
      expect(own[0]).toMatch(/^eventcore_spec_/)
      expect(yield* remaining(own)).toEqual([])
    })
  )

  it.effect(
    "the last given events are on a stream outside the filter and of a type it does not read: it completes",
    () =>
      ProjectionSpec.make(Balances, { layer })
        .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
        .given({ "loan-alice": [deposited(900_00)] })
        .givenStored({ "account-alice": [{ eventType: "AccountFrozen", data: { reason: "audit" } }] })
        .thenRows(balances, [{ account: "alice", cents: 5_00 }])
  )

  it.effect(
    "a transaction left open elsewhere on the server holds the log back: the spec says so, and leaves no database behind",
    () =>
      Effect.gen(function* () {
        // Opened before the given events are appended, on the server's own database: the log's
        // readable horizon is the whole server's, so it holds back the spec's database too.
        const holder = yield* connection(url)
        const started = yield* Deferred.make<string>()
        const end = yield* Deferred.make<void>()
        const transaction = yield* Effect.acquireRelease(
          Effect.sync(() =>
            holder.begin(async (tx) => {
              const [row] = await tx`select txid_current()::text as xid`
              await Effect.runPromise(Deferred.succeed(started, row?.xid as string))
              await Effect.runPromise(Deferred.await(end))
            })
          ),
          (running) =>
            Effect.zipRight(
              Deferred.succeed(end, undefined),
              Effect.promise(() => running)
            )
        )
        const xid = yield* Deferred.await(started)
        expect(BigInt(xid)).toBeGreaterThan(0n)

        const before = created.length
        const message = yield* failureMessage(
          ProjectionSpec.make(Balances, { layer, timeout: "1 second" })
            .given({ "account-alice": [opened("Alice"), deposited(5_00)] })
            .thenRows(balances, [{ account: "alice", cents: 5_00 }])
        )
        const stands = message.match(
          /^The projection bank-balances did not reach position (\d{20}-\d{19}) \(the last given event\) in time: (?:its checkpoint is at (\d{20}-\d{19}) \(running, 2 of its events after it\)|it has no checkpoint yet); the log is not readable that far yet: a transaction that started before the last given event is still running on the server and holds every reader back until it ends$/
        )
        expect(stands, message).not.toBeNull()
        // The events come after the open transaction; the checkpoint (if the runner wrote one yet) stops before it.
        const [, awaited = "", checkpoint = LogPosition.start] = stands ?? []
        expect(awaited > LogPosition.make(BigInt(xid), 0n)).toBe(true)
        expect(checkpoint < LogPosition.make(BigInt(xid), 0n)).toBe(true)

        yield* Deferred.succeed(end, undefined)
        yield* Effect.promise(() => transaction)
        const own = created.slice(before)
        expect(own).toHaveLength(1)
        expect(yield* remaining(own)).toEqual([])
      }).pipe(Effect.scoped)
  )
})
