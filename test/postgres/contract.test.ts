/**
 * The contract suite on a PostgreSQL server: with a fresh database for each
 * test, and with one database for every test that already holds events and is
 * written to while the suite runs.
 */
import { Effect, Exit, Scope } from "effect"
import { PostgresEventStore } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"
import { afterAll, beforeAll } from "vitest"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"
import { useUnrelatedEvents } from "../support/sharedStore.js"

describeServer("PostgreSQL server", () => {
  const server = usePostgresTemplate()
  runEventStoreContract("PostgresEventStore", () => server.layer(), { propertyRuns: 25 })
})

describeServer("PostgreSQL server, one database for every test", () => {
  const server = usePostgresTemplate()
  const scope = Effect.runSync(Scope.make())
  let url: string | undefined
  beforeAll(async () => {
    url = (await Effect.runPromise(Scope.extend(server.freshDatabase, scope))).url
  })
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  const shared = () => PostgresEventStore.layer({ url: url as string, maxConnections: 4 })
  useUnrelatedEvents(shared)
  runEventStoreContract("PostgresEventStore on a database holding other events", shared, { propertyRuns: 10 })
})
