/**
 * Personal data on the in-memory store and on PGlite (the cases of
 * ./support/personalDataCases.ts); on PGlite a scan of every table of the
 * store's schema finds no plaintext where the cases say there is none. And a
 * key store of the application's own, given to the store's layer.
 */
import { randomBytes } from "node:crypto"
import type { PGlite } from "@electric-sql/pglite"
import { Effect, Layer } from "effect"
import { EventStore, InMemoryEventStore, KeyStore, PersonalData, PgliteEventStore, StreamId } from "eventcore"
import { writesOf } from "eventcore/testing"
import { describe, expect, it } from "vitest"
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

describe("a key store of the application's own", () => {
  const pglite = usePgliteTemplate()
  it("keeps every key: the store's table holds none, the erasure destroys the key there, reads follow", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const vault = new Map<string, Uint8Array>()
        const destroyed: Array<string> = []
        const keys: KeyStore.KeyStore = {
          keysFor: (subjects) =>
            Effect.sync(() => {
              for (const subject of subjects) if (!vault.has(subject)) vault.set(subject, randomBytes(32))
              return new Map([...subjects].map((subject) => [subject, vault.get(subject) as Uint8Array]))
            }),
          existingKeys: (subjects) =>
            Effect.sync(
              () =>
                new Map(
                  [...subjects].flatMap((subject) => {
                    const key = vault.get(subject)
                    return key === undefined ? [] : [[subject, key] as const]
                  })
                )
            ),
          destroy: (subject) =>
            Effect.sync(() => {
              destroyed.push(subject)
              vault.delete(subject)
            })
        }
        const { db, schema } = yield* pglite.freshSchema
        const stream = StreamId.unsafeMake("vaulted")
        const read = Effect.flatMap(EventStore.EventStore, (store) => store.readStream(stream)).pipe(
          Effect.map((read) => read.events[0]?.data)
        )
        const outcome = yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append(
            writesOf({
              streamId: stream,
              expected: "no_stream",
              events: [{ eventType: "Named", data: { name: PersonalData.value("v-1", "Tomasz Ekwueme") } }]
            })
          )
          const before = yield* read
          const erasure = yield* PersonalData.erase("v-1", { by: "dpo" })
          return { before, erasure, after: yield* read }
        }).pipe(
          Effect.provide(PgliteEventStore.layerFromClient(db, { schema }).pipe(Layer.provide(KeyStore.layer(keys))))
        )
        expect(outcome.before).toEqual({ name: "Tomasz Ekwueme" })
        expect(outcome.after).toEqual({ name: { $erased: { subject: "v-1" } } })
        expect(outcome.erasure).toMatchObject({ already: false, erasedBy: "dpo" })
        expect(destroyed).toEqual(["v-1"])
        const stored = yield* Effect.promise(() =>
          db.query<{ keys: number; erasures: number }>(
            `select (select count(*)::int from ${schema}.subject_keys) as keys, (select count(*)::int from ${schema}.erasures) as erasures`
          )
        )
        expect(stored.rows).toEqual([{ keys: 0, erasures: 1 }])
      }).pipe(Effect.scoped)
    ))
})
