/**
 * The testing kit's snapshot property (eventcore/testing) on a PostgreSQL
 * server, where snapshots are jsonb: each run gets a fresh database.
 */
import { snapshotProperty } from "eventcore/testing"
import { it } from "vitest"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"
import { ledgerEvents, Pay, payment } from "../support/snapshotKit.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  it("snapshotProperty holds for a multi-stream command with discovery", () =>
    snapshotProperty(Pay, {
      input: payment,
      events: ledgerEvents,
      layer: server.layer({ maxConnections: 2 }),
      numRuns: 8
    }))
})
