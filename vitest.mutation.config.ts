import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// The fast suites only: the domain, the executor, the contract on the in-memory
// store and the SQL error mapping on synthetic driver errors. The database
// suites would rerun for every mutant. (Not mergeConfig with vitest.config.ts:
// it concatenates arrays, so `include` would keep every suite.)
export default defineConfig({
  resolve: {
    alias: [
      { find: /^eventcore\/testing$/, replacement: source("./src/testing/index.ts") },
      // These suites never open a database: skip importing drizzle, postgres.js and PGlite.
      { find: /^eventcore$/, replacement: source("./test/support/core.ts") }
    ]
  },
  test: {
    include: [
      "test/domain.test.ts",
      "test/execute.test.ts",
      "test/EventStore.test.ts",
      "test/InMemoryEventStore.test.ts",
      "test/sql-errors.test.ts"
    ],
    testTimeout: 60_000,
    isolate: false,
    env: { EVENTCORE_PROPERTY_RUNS: "15" }
  }
})
