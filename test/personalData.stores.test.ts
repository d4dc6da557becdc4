/**
 * Personal data on the in-memory store and on PGlite (the cases of
 * ./support/personalDataCases.ts); on PGlite a scan of every table of the
 * store's schema finds no plaintext where the cases say there is none.
 */
import type { PGlite } from "@electric-sql/pglite"
import { Effect } from "effect"
import { InMemoryEventStore, PgliteEventStore } from "eventcore"
import { describe } from "vitest"
import { definePersonalDataTests } from "./support/personalDataCases.js"
import { usePgliteTemplate } from "./support/pglite.js"

describe("in memory", () =>
  definePersonalDataTests((body) =>
    Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer)))
  ))

/** Every row of every table of `schema`, as text. */
const dumpSchema = async (db: PGlite, schema: string): Promise<string> => {
  const tables = await db.query<{ name: string }>(
    "select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'",
    [schema]
  )
  const texts: Array<string> = []
  for (const { name } of tables.rows) {
    const rows = await db.query<{ row: string }>(`select t::text as row from "${schema}"."${name}" t`)
    for (const { row } of rows.rows) texts.push(row)
  }
  return texts.join("\n")
}

describe("PGlite", () => {
  const pglite = usePgliteTemplate()
  let current: { readonly db: PGlite; readonly schema: string } | undefined
  definePersonalDataTests(
    (body) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const fresh = yield* pglite.freshSchema
          current = fresh
          return yield* Effect.provide(body, PgliteEventStore.layerFromClient(fresh.db, { schema: fresh.schema }))
        }).pipe(Effect.scoped)
      ),
    Effect.promise(() => {
      if (current === undefined) throw new Error("no store yet")
      return dumpSchema(current.db, current.schema)
    })
  )
})
