/**
 * One migrated PGlite per test file. A store for a test lives in a schema of
 * its own in it (migrated there, ~0.2 s); a test that needs the database to
 * itself (raw SQL on the `eventcore` schema) gets a clone, which takes 1.5-2.5 s
 * on two cores (a fresh instance takes 6).
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer } from "effect"
import { EventStore, PgliteEventStore } from "eventcore"
import { afterAll, beforeAll } from "vitest"

export const usePgliteTemplate = () => {
  let template: PGlite | undefined
  beforeAll(async () => {
    template = await PGlite.create()
    await Effect.runPromise(PgliteEventStore.migrate(template))
  })
  afterAll(async () => {
    await template?.close()
  })

  const ready = Effect.sync(() => {
    if (template === undefined) throw new Error("the PGlite template is not ready")
    return template
  })

  const clone = Effect.acquireRelease(
    Effect.flatMap(ready, (db) => Effect.promise(async () => (await db.clone()) as PGlite)),
    (db) => Effect.promise(() => db.close())
  )

  let schemas = 0
  /** A fresh migrated schema in the file's database, dropped with the scope. */
  const freshSchema = Effect.gen(function* () {
    const db = yield* ready
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
