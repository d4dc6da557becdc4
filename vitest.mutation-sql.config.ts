import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

// The SQL store's mutation run (stryker.sql.config.json): the contract, the
// enforcement and failure tests on PGlite, one migrated database per run cloned
// for each test; with DATABASE_URL, also the PostgreSQL store's own tests, the
// only ones that race real writers and run a store without the PGlite gate.
// The base config's aliases and timeouts, not mergeConfig: that concatenates `include`.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["test/PgliteEventStore.test.ts", "test/postgres/store.test.ts"],
    isolate: false,
    env: { EVENTCORE_PROPERTY_RUNS: "10" }
  }
})
