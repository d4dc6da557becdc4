/**
 * Archive, truncate and purge on the in-memory store and on PGlite (the cases
 * of ./support/lifecycleCases.ts).
 */
import { Effect } from "effect"
import { InMemoryEventStore } from "eventcore"
import { describe } from "vitest"
import { defineLifecycleTests } from "./support/lifecycleCases.js"
import { usePgliteTemplate } from "./support/pglite.js"

describe("in memory", () =>
  defineLifecycleTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer)))))

describe("PGlite", () => {
  const pglite = usePgliteTemplate()
  defineLifecycleTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(pglite.layer))))
})
