import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { EventStore, PgliteEventStore, StreamId } from "eventcore"
import { runEventStoreContract, testEvents, writesOf } from "eventcore/testing"
import { afterAll, describe, expect, it } from "vitest"
import { defineEnforcementTests } from "./sql/enforcement.js"
import { shippedMigrations } from "./support/migrations.js"
import { usePgliteTemplate } from "./support/pglite.js"

const pglite = usePgliteTemplate()

runEventStoreContract("PgliteEventStore", () => pglite.layer, { propertyRuns: 25 })

describe("PgliteEventStore: the database enforces", () => {
  defineEnforcementTests((body) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(pglite.clone, (db) =>
          Effect.promise(() =>
            body({ query: async (text, params) => (await db.query(text, params as Array<unknown>)).rows as never })
          )
        )
      )
    )
  )
})

describe("PgliteEventStore.layer", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "eventcore-pglite-"))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it("persists in dataDir: a reopened database keeps its events and applies no migration twice", async () => {
    const stream = StreamId.unsafeMake("persisted")
    const write = Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(3) }))
    })
    await Effect.runPromise(Effect.provide(write, PgliteEventStore.layer({ dataDir })))

    const reopened = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          return yield* store.readStream(stream)
        }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
      )
    )
    expect(reopened.version).toBe(3)
    expect(reopened.events.map((e) => e.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }])

    const { PGlite } = await import("@electric-sql/pglite")
    const db = await PGlite.create({ dataDir })
    try {
      const report = await Effect.runPromise(PgliteEventStore.migrate(db))
      expect(report.applied).toEqual([])
      const history = await db.query<{ n: number }>("select count(*)::int as n from drizzle.__eventcore_migrations")
      expect(history.rows[0]?.n).toBe(shippedMigrations.length)
    } finally {
      await db.close()
    }
  })

  it("migrates a new database itself and reports what it applied", async () => {
    const { PGlite } = await import("@electric-sql/pglite")
    const db = await PGlite.create()
    try {
      const report = await Effect.runPromise(PgliteEventStore.migrate(db))
      expect(report.applied).toEqual(shippedMigrations)
      const again = await Effect.runPromise(
        Effect.either(
          Effect.gen(function* () {
            const store = yield* EventStore.EventStore
            return yield* store.readStream(StreamId.unsafeMake("nothing"))
          }).pipe(Effect.provide(PgliteEventStore.layerFromClient(db)))
        )
      )
      expect(Either.isLeft(again) && again.left._tag).toBe("StreamNotFound")
    } finally {
      await db.close()
    }
  })
})
