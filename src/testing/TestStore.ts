/**
 * Stores for specs that need a real database: each build of their layer is a
 * new, empty, migrated database, holding the application's tables too, for
 * one spec (`CommandSpec`, `ProjectionSpec`, `ReactorSpec` build their layer
 * once per run). The layer also provides `Database`, a Drizzle database on it,
 * which the specs use to read the application's tables.
 */
import { PGlite } from "@electric-sql/pglite"
import { drizzle as drizzlePglite } from "drizzle-orm/pglite"
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator"
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js"
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator"
import { Context, Effect, Layer, Redacted } from "effect"
import postgresJs from "postgres"
import type * as EventStore from "../EventStore.js"
import { StoreError } from "../errors.js"
import type { ReadModelDatabase } from "../internal/storeContract.js"
import * as PgliteEventStore from "../PgliteEventStore.js"
import * as PostgresEventStore from "../PostgresEventStore.js"
import type { ReadModelStore } from "../ReadModel.js"
import { initialisedDump } from "./initialisedPglite.js"

/** A Drizzle database on a spec's store, outside any projection's transaction: what specs read the application's tables with. */
export class Database extends Context.Tag("eventcore/testing/Database")<
  Database,
  { readonly db: ReadModelDatabase }
>() {}

export interface Options {
  /** The application's drizzle-kit migrations (the `out` folder of its drizzle config), applied after eventcore's. */
  readonly migrationsFolder?: string
  /** Anything else a spec's database needs first (a table the application creates itself), after the migrations. */
  readonly setup?: (db: ReadModelDatabase) => Promise<unknown>
}

const failed = (operation: string, message: string) => (cause: unknown) =>
  new StoreError({
    operation,
    message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/**
 * PGlite: the first build makes a database (eventcore's migrations,
 * `migrationsFolder`, `setup`, on a copy of a cluster PGlite initialised once
 * and cached in `node_modules/.cache/eventcore`) and keeps its dump; each
 * build loads a copy of it (about a second on two cores) and closes it when
 * released. Make it once per test file: `const layer = TestStore.pglite({ ... })`.
 */
export const pglite = (
  options: Options = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore | PgliteEventStore.Client | Database, StoreError> => {
  let template: Promise<Blob> | undefined
  const makeTemplate = async () => {
    const client = await PGlite.create({ loadDataDir: await initialisedDump() })
    try {
      await Effect.runPromise(PgliteEventStore.migrate(client))
      const db = drizzlePglite({ client })
      if (options.migrationsFolder !== undefined)
        await migratePglite(db, { migrationsFolder: options.migrationsFolder })
      await options.setup?.(db)
      return await client.dumpDataDir("none")
    } finally {
      await client.close()
    }
  }
  return Layer.unwrapScoped(
    Effect.gen(function* () {
      const dump = yield* Effect.tryPromise({
        try: () => {
          if (template === undefined) {
            template = makeTemplate()
            // A template that failed is made again by the next build, not remembered.
            template.catch(() => {
              template = undefined
            })
          }
          return template
        },
        catch: failed("open", "TestStore.pglite: cannot make the template database")
      })
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => PGlite.create({ loadDataDir: dump }),
          catch: failed("open", "TestStore.pglite: cannot load the template database")
        }),
        (client) => Effect.promise(() => client.close())
      )
      return Layer.merge(
        PgliteEventStore.layerFromClient(client),
        Layer.succeed(Database, { db: drizzlePglite({ client }) })
      )
    })
  )
}

/**
 * PostgreSQL: each build creates a database of its own on the server at `url`
 * (named `eventcore_spec_…`), applies eventcore's migrations,
 * `migrationsFolder` and `setup`, and drops it (`WITH (FORCE)`) when released.
 * The role at `url` must be allowed to create databases.
 */
export const postgres = (
  url: string | Redacted.Redacted<string>,
  options: Options = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore | Database, StoreError> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const server = new URL(Redacted.isRedacted(url) ? Redacted.value(url) : url)
      const name = `eventcore_spec_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 10)}`
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() => postgresJs(server.href, { ...PostgresEventStore.poolOptions(), max: 1, onnotice: () => {} })),
        (sql) => Effect.promise(() => sql.end())
      )
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => admin.unsafe(`create database ${name}`),
          catch: failed("open", `TestStore.postgres: cannot create the database ${name}`)
        }),
        () => Effect.promise(() => admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => undefined))
      )
      const database = new URL(server.href)
      database.pathname = `/${name}`
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => postgresJs(database.href, { ...PostgresEventStore.poolOptions(), max: 4 })),
        (sql) => Effect.promise(() => sql.end())
      )
      yield* PostgresEventStore.migrate(client)
      const db = drizzlePostgres({ client })
      yield* Effect.tryPromise({
        try: async () => {
          if (options.migrationsFolder !== undefined) {
            await migratePostgres(db, { migrationsFolder: options.migrationsFolder })
          }
          await options.setup?.(db)
        },
        catch: failed("migrate", `TestStore.postgres: cannot prepare the database ${name}`)
      })
      return Layer.merge(PostgresEventStore.layerFromClient(client), Layer.succeed(Database, { db }))
    })
  )
