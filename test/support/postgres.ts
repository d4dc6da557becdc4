/**
 * The PostgreSQL server suites: they run when DATABASE_URL is set (CI always
 * sets it) and are skipped, saying so, when it is not. Each test gets a database
 * of its own, copied from a template migrated once per test file.
 */
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { afterAll, beforeAll, describe } from "vitest"

export const databaseUrl = process.env.DATABASE_URL

if (databaseUrl === undefined) {
  console.warn("DATABASE_URL is not set: the PostgreSQL server suites are skipped (CI sets it and runs them).")
}

/** A `describe` that runs only against a server. */
export const describeServer = describe.skipIf(databaseUrl === undefined)

export const urlOf = (database: string) => {
  const url = new URL(databaseUrl ?? "postgres://postgres@127.0.0.1:5432/postgres")
  url.pathname = `/${database}`
  return url.toString()
}

const uniqueName = (prefix: string) => `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 16)}`

export const usePostgresTemplate = () => {
  let admin: postgres.Sql | undefined
  const template = uniqueName("eventcore_tpl")
  const created = new Set<string>()

  beforeAll(async () => {
    if (databaseUrl === undefined) return
    admin = postgres(databaseUrl, { max: 4, onnotice: () => {} })
    await admin.unsafe(`create database "${template}"`)
    await Effect.runPromise(PostgresEventStore.migrate({ url: urlOf(template) }))
  })

  afterAll(async () => {
    if (admin === undefined) return
    for (const database of [...created, template]) {
      await admin.unsafe(`drop database if exists "${database}" with (force)`)
    }
    await admin.end()
  })

  const adminClient = () => {
    if (admin === undefined) throw new Error("the PostgreSQL template is not ready")
    return admin
  }

  /** A fresh migrated database, dropped on release; gives its URL. */
  const freshDatabase = Effect.acquireRelease(
    Effect.promise(async () => {
      const database = uniqueName("eventcore_test")
      created.add(database)
      await adminClient().unsafe(`create database "${database}" template "${template}"`)
      return { database, url: urlOf(database) }
    }),
    ({ database }) =>
      Effect.promise(async () => {
        await adminClient().unsafe(`drop database if exists "${database}" with (force)`)
        created.delete(database)
      })
  )

  /** A store over a fresh database. */
  const layer = (config: Omit<PostgresEventStore.PostgresConfig, "url"> = {}) =>
    Layer.unwrapScoped(Effect.map(freshDatabase, ({ url }) => PostgresEventStore.layer({ ...config, url })))

  return { layer, freshDatabase, adminClient }
}
