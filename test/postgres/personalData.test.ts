/**
 * Personal data on a PostgreSQL server (the cases of
 * ../support/personalDataCases.ts), each test on a fresh database, with a scan
 * of every table of eventcore's schema for plaintext.
 */
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { definePersonalDataTests } from "../support/personalDataCases.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

describeServer("PostgreSQL", () => {
  const server = usePostgresTemplate()
  let url: string | undefined
  definePersonalDataTests(
    (body) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const fresh = yield* server.freshDatabase
          url = fresh.url
          return yield* body.pipe(Effect.provide(PostgresEventStore.layer({ url: fresh.url, maxConnections: 4 })))
        }).pipe(Effect.scoped)
      ),
    Effect.promise(async () => {
      if (url === undefined) throw new Error("no store yet")
      const sql = postgres(url, { max: 1, onnotice: () => {} })
      try {
        const tables = await sql<Array<{ name: string }>>`
          select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'eventcore' and c.relkind = 'r'`
        const texts: Array<string> = []
        for (const { name } of tables) {
          for (const { row } of await sql.unsafe(`select t::text as row from eventcore."${name}" t`)) texts.push(row)
        }
        return texts.join("\n")
      } finally {
        await sql.end()
      }
    })
  )
})
