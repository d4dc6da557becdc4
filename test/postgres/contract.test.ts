import { runEventStoreContract } from "eventcore/testing"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("PostgreSQL server", () => {
  const server = usePostgresTemplate()
  runEventStoreContract("PostgresEventStore", () => server.layer(), { propertyRuns: 25 })
})
