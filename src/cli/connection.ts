/**
 * Opens the database the command line was pointed at, as the stores do:
 * PGlite in a data directory, or a PostgreSQL server.
 */
import { PGlite } from "@electric-sql/pglite"
import { drizzle as drizzlePglite } from "drizzle-orm/pglite"
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js"
import { Effect, type Scope } from "effect"
import postgres from "postgres"
import type * as EventStore from "../EventStore.js"
import { StoreError } from "../errors.js"
import { lockDataDir } from "../internal/dataDirLock.js"
import * as PgliteEventStore from "../PgliteEventStore.js"
import * as PostgresEventStore from "../PostgresEventStore.js"
import type { MigrationReport } from "../sql/migrations.js"
import type { Database } from "../sql/SqlEventStore.js"
import { defaultSchema } from "../sql/schema.js"

export type Target =
  | { readonly kind: "pglite"; readonly dataDir: string }
  | { readonly kind: "postgres"; readonly url: string }

export interface Connection {
  readonly store: EventStore.EventStore
  readonly db: Database
  /** The PostgreSQL schema of eventcore's tables. */
  readonly schema: string
  readonly migration: MigrationReport
}

/** Where the command runs, for people: never the password. */
export const describeTarget = (target: Target) => {
  if (target.kind === "pglite") return `PGlite in ${target.dataDir}`
  try {
    const url = new URL(target.url)
    return `PostgreSQL at ${url.hostname}:${url.port || "5432"}${url.pathname}`
  } catch {
    return "PostgreSQL"
  }
}

/** Opens and migrates the database; closes it when the scope ends. */
export const connect = (target: Target): Effect.Effect<Connection, StoreError, Scope.Scope> =>
  target.kind === "pglite" ? connectPglite(target.dataDir) : connectPostgres(target.url)

const connectPglite = (dataDir: string) =>
  Effect.gen(function* () {
    yield* lockDataDir(dataDir)
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create({ dataDir }),
        catch: (cause) =>
          new StoreError({
            operation: "open",
            message: `cannot open PGlite in ${dataDir} (${cause instanceof Error ? cause.message : String(cause)})`,
            cause
          })
      }),
      (client) => Effect.promise(() => client.close())
    )
    const migration = yield* PgliteEventStore.migrate(client)
    return {
      store: PgliteEventStore.make(client),
      db: drizzlePglite({ client }),
      schema: defaultSchema,
      migration
    } satisfies Connection
  })

const connectPostgres = (url: string) =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          postgres(url, { ...PostgresEventStore.poolOptions(), max: 10, connect_timeout: 10, onnotice: () => {} }),
        catch: () => new StoreError({ operation: "connect", message: "invalid PostgreSQL URL" })
      }),
      (client) => Effect.promise(() => client.end({ timeout: 5 }))
    )
    const migration = yield* PostgresEventStore.migrate(client)
    return {
      store: PostgresEventStore.make(client),
      db: drizzlePostgres({ client }),
      schema: defaultSchema,
      migration
    } satisfies Connection
  })
