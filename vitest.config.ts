import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

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
    include: ["test/**/*.test.ts"],
    // The suites wait on servers, replicas and child processes more than they compute: on two
    // cores, three files at a time take two thirds of the time one at a time does (vitest's
    // default is one per core but one).
    maxWorkers: Math.max(availableParallelism() - 1, 3),
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
