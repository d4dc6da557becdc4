/**
 * The snapshot cases of ../support/snapshotCases.ts on a PostgreSQL server:
 * each test gets a fresh database. And the plan of a command's first read on
 * a database whose events sit in a few long streams.
 */
import { Effect } from "effect"
import postgres from "postgres"
import { expect, it } from "vitest"
import { snapshotStatements } from "../../src/sql/statements.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"
import { defineSnapshotTests } from "../support/snapshotCases.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  defineSnapshotTests((body) =>
    Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(server.layer({ maxConnections: 4 }))))
  )

  // The planner guesses a stream's length as the table's events over its
  // streams. An earlier form of the read (the declared streams as a JSON
  // array, guessed at 100, and an ORDER BY over the guess) cost 4.3 million
  // there and went past jit_above_cost: PostgreSQL compiled it on every
  // command, 300 ms for a read of 0.3 ms.
  it("plans a command's first read below jit_above_cost, on its sixth call too, where a few long streams hold the events", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const sql = postgres(url, { max: 1, onnotice: () => {} })
          yield* Effect.addFinalizer(() => Effect.promise(() => sql.end()))
          yield* Effect.promise(async () => {
            for (const stream of ["a", "b", "c"]) {
              await sql.unsafe(
                `select eventcore.append(jsonb_build_object(
                   'streams', jsonb_build_array(jsonb_build_object('id', $1::text, 'expected', 'no_stream')),
                   'events', (select jsonb_agg(jsonb_build_object('stream', $1::text, 'id', gen_random_uuid(),
                     'type', 'Deposited', 'data', '{"amount":1}'::jsonb, 'metadata', '{}'::jsonb))
                     from generate_series(1, 20000))))`,
                [stream]
              )
            }
            await sql.unsafe(`insert into eventcore.snapshots (command, key, state_version, event_versions, streams, covered, state)
              values ('Pay', 'k', 1, 'x', '[["a", 19990], ["b", 19995]]', 39985, '{}')`)
            await sql.unsafe("analyze eventcore.events")
          })
          const threshold = Number(
            (yield* Effect.promise(() => sql`select current_setting('jit_above_cost') as cost`))[0]?.cost
          )
          const { load } = snapshotStatements("eventcore")
          for (const streams of [["a"], ["a", "b"]]) {
            const statement = `plan_${streams.length}`
            const types = ["text", "text", "int", "text", ...streams.map(() => "text")].join(", ")
            const values = ["'Pay'", "'k'", "1", "'x'", ...streams.map((stream) => `'${stream}'`)].join(", ")
            yield* Effect.promise(() => sql.unsafe(`prepare ${statement} (${types}) as ${load(streams.length)}`))
            // Five custom plans, then PostgreSQL weighs a plan for every call against them.
            for (let run = 0; run < 6; run++)
              yield* Effect.promise(() => sql.unsafe(`execute ${statement} (${values})`))
            const [row] = yield* Effect.promise(() =>
              sql.unsafe(`explain (format json) execute ${statement} (${values})`)
            )
            const [explained] = (row?.["QUERY PLAN"] ?? []) as ReadonlyArray<{ Plan: { "Total Cost": number } }>
            // Whichever plan the server runs by then (PostgreSQL 15 and 16 one plan for every call, 17 and 18
            // a plan per call for this data), it is not compiled.
            expect(explained?.Plan["Total Cost"]).toBeLessThan(threshold)
          }
        })
      )
    ))
})
