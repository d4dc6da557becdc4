/**
 * One migrated PGlite per test file, cloned for each test: a fresh instance
 * takes seconds to boot on two cores, a clone well under one.
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

  const clone = Effect.acquireRelease(
    Effect.promise(async () => {
      if (template === undefined) throw new Error("the PGlite template is not ready")
      return (await template.clone()) as PGlite
    }),
    (db) => Effect.promise(() => db.close())
  )

  /** A store over a fresh clone of the migrated template. */
  const layer = Layer.scoped(EventStore.EventStore, Effect.map(clone, PgliteEventStore.make))

  return { layer, clone }
}
