import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// The SQL store's mutation run (stryker.sql.config.json): the contract and the
// enforcement tests on PGlite, one migrated database per run cloned for each
// test; with DATABASE_URL, also the PostgreSQL store's own tests, the only ones
// that reach a raced write's conflict diagnosis and a store without a gate.
// Not mergeConfig with vitest.config.ts: it concatenates `include`.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^eventcore\/testing$/, replacement: source("./src/testing/index.ts") },
      { find: /^eventcore$/, replacement: source("./src/index.ts") }
    ]
  },
  test: {
    include: ["test/PgliteEventStore.test.ts", "test/postgres/store.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    isolate: false,
    env: { EVENTCORE_PROPERTY_RUNS: "10" }
  }
})
