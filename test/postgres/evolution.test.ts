/**
 * The schema evolution cases of ../support/evolutionCases.ts on a PostgreSQL
 * server: each test gets a fresh database.
 */
import { Effect } from "effect"
import { defineEvolutionTests } from "../support/evolutionCases.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  defineEvolutionTests((body) =>
    Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(server.layer({ maxConnections: 4 }))))
  )
})
