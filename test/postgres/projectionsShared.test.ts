/**
 * The projection and reactor tests of test/sql/projections.ts on a PostgreSQL
 * server: each test gets a fresh database with the bank's read-model table.
 */
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { createBalances } from "../../src/demo/readModel.js"
import { defineProjectionTests, type WithDatabase } from "../sql/projections.js"
import { defineRowProjectionTests } from "../sql/rowProjections.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()

  const withDatabase: WithDatabase = (body) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { url } = yield* server.freshDatabase
          const client = yield* Effect.acquireRelease(
            Effect.sync(() => postgres(url, { max: 2, onnotice: () => {} })),
            (client) => Effect.promise(() => client.end({ timeout: 1 }))
          )
          const db = drizzle({ client })
          yield* Effect.promise(() => db.execute(createBalances))
          return yield* Effect.provide(body(db), PostgresEventStore.layer({ url, maxConnections: 4 }))
        })
      )
    )

  defineProjectionTests(withDatabase)
  defineRowProjectionTests(withDatabase)
})
