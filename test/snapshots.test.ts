/**
 * Snapshots of command state on the in-memory store and on PGlite (the cases
 * of ./support/snapshotCases.ts), and `Snapshot.make`'s refusals.
 */
import { Effect, Schema } from "effect"
import { InMemoryEventStore, Snapshot } from "eventcore"
import { describe, expect, it } from "vitest"
import { usePgliteTemplate } from "./support/pglite.js"
import { defineSnapshotTests } from "./support/snapshotCases.js"

describe("in memory", () =>
  defineSnapshotTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer)))))

describe("PGlite", () => {
  const pglite = usePgliteTemplate()
  defineSnapshotTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(pglite.layer))))
})

describe("Snapshot.make", () => {
  it("refuses a version or an event count that is not a positive integer", () => {
    const state = Schema.Number
    expect(() => Snapshot.make({ state, version: 0 })).toThrow("Snapshot.make: version must be an integer >= 1, got 0")
    expect(() => Snapshot.make({ state, version: 1.5 })).toThrow(TypeError)
    expect(() => Snapshot.make({ state, version: 1, after: { events: 0 } })).toThrow(
      "Snapshot.make: after.events must be an integer >= 1, got 0"
    )
    expect(Snapshot.make({ state, version: 3 })).toMatchObject({ version: 3, events: Snapshot.defaultEvents })
  })
})
