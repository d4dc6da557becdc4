/**
 * One migrated PGlite per test file, loaded from the initialised cluster's
 * dump (./initialisedPglite.ts: 1 s, where a fresh instance's initdb takes 3-6).
 * A store for a test lives in a schema of its own in it (migrated there,
 * ~0.2 s); a test that needs the database to itself (raw SQL on the
 * `eventcore` schema) gets a copy of it as migrated, loaded from its dump
 * (1 s; `clone()` dumps it again each time, 1.5-2.5 s on two cores).
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer } from "effect"
import { EventStore, PgliteEventStore } from "eventcore"
import { afterAll, beforeAll } from "vitest"
import { initialisedDump } from "./initialisedPglite.js"

export const usePgliteTemplate = () => {
  let template: PGlite | undefined
  let migrated: Blob | undefined
  beforeAll(async () => {
    template = await PGlite.create({ loadDataDir: await initialisedDump() })
    await Effect.runPromise(PgliteEventStore.migrate(template))
    migrated = await template.dumpDataDir("none")
  })
  afterAll(async () => {
    await template?.close()
  })

  const ready = Effect.sync(() => {
    if (template === undefined || migrated === undefined) throw new Error("the PGlite template is not ready")
    return { template, migrated }
  })

  const clone = Effect.acquireRelease(
    Effect.flatMap(ready, ({ migrated }) => Effect.promise(() => PGlite.create({ loadDataDir: migrated }))),
    (db) => Effect.promise(() => db.close())
  )

  let schemas = 0
  /** A fresh migrated schema in the file's database, dropped with the scope. */
  const freshSchema = Effect.gen(function* () {
    const { template: db } = yield* ready
    const schema = `test_${++schemas}`
    yield* Effect.acquireRelease(PgliteEventStore.migrate(db, { schema }), () =>
      Effect.promise(() => db.exec(`drop schema ${schema} cascade`))
    )
    return { db, schema }
  })

  /** A store in a fresh schema of the file's database. */
  const layer = Layer.scoped(
    EventStore.EventStore,
    Effect.map(freshSchema, ({ db, schema }) => PgliteEventStore.make(db, { schema }))
  )

  return { layer, clone, freshSchema }
}
