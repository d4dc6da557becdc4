import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/**
 * Files that use the PostgreSQL server at DATABASE_URL. The global log's
 * readable head is the whole server's (the oldest transaction running in any
 * database), so a test that holds a transaction open, or checks that a read
 * returns what it just appended, is disturbed by any other file running
 * there: these run one at a time, as the only users of that server.
 */
const sharedServer = [
  "test/postgres/**/*.test.ts",
  "test/faults/terminated.test.ts",
  "test/cliServer.test.ts",
  "test/cliReadOnly.test.ts"
]

export default defineConfig({
  resolve: {
    // Tests import the package by its public name, resolved to the sources.
    alias: [
      { find: /^eventcore\/testing$/, replacement: source("./src/testing/index.ts") },
      { find: /^eventcore\/drizzle$/, replacement: source("./src/drizzle.ts") },
      { find: /^eventcore$/, replacement: source("./src/index.ts") }
    ]
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The rest (PGlite, servers and replicas of their own, child processes) runs beside them, two
    // files at a time: on two cores the suites wait more than they compute, and this takes two
    // thirds of the time one file at a time does.
    projects: [
      { extends: true, test: { name: "shared server", include: sharedServer, fileParallelism: false } },
      {
        extends: true,
        test: { name: "own resources", include: ["test/**/*.test.ts"], exclude: sharedServer, maxWorkers: 2 }
      }
    ]
  }
})
