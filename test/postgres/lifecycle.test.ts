/**
 * Archive, truncate and purge on a PostgreSQL server (the cases of
 * ../support/lifecycleCases.ts), each test on a fresh database.
 */
import { Effect } from "effect"
import { defineLifecycleTests } from "../support/lifecycleCases.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  defineLifecycleTests((body) =>
    Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(server.layer({ maxConnections: 10 }))))
  )
})
