/**
 * The snapshot cases of ../support/snapshotCases.ts on a PostgreSQL server:
 * each test gets a fresh database.
 */
import { Effect } from "effect"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"
import { defineSnapshotTests } from "../support/snapshotCases.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  defineSnapshotTests((body) =>
    Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(server.layer({ maxConnections: 4 }))))
  )
})
