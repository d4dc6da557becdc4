import { defineConfig, mergeConfig } from "vitest/config"
import base from "./vitest.config.js"

// The in-memory suites only: the domain, the executor and the contract on the
// in-memory store run in seconds; the database suites would rerun for every mutant.
export default mergeConfig(
  base,
  defineConfig({
    test: {
      include: ["test/domain.test.ts", "test/execute.test.ts", "test/InMemoryEventStore.test.ts"],
      env: { EVENTCORE_PROPERTY_RUNS: "15" }
    }
  })
)
