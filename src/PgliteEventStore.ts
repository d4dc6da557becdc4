/**
 * The event store on PGlite: PostgreSQL compiled to WebAssembly, running in
 * this process. Zero setup, in memory or persisted in a directory, and the same
 * SQL as the PostgreSQL store.
 */
import { PGlite } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { migrate as migrateDrizzle } from "drizzle-orm/pglite/migrator"
import { Context, Effect, Layer, Option } from "effect"
import type * as EventStore from "./EventStore.js"
import { StoreError } from "./errors.js"
import * as KeyStore from "./KeyStore.js"
import { createDataDir } from "./pglite/dataDirLock.js"
import { acquireHold, directoryIn, holdDirectoryOf, shareHold } from "./pglite/directoryLock.js"
import { runOn, sessions } from "./pglite/sessions.js"
import type { ReadModelStore } from "./ReadModel.js"
import type { Gate } from "./sql/driver.js"
import { driverError } from "./sql/errors.js"
import * as Migrations from "./sql/migrations.js"
import * as SqlEventStore from "./sql/SqlEventStore.js"
import { defaultSchema } from "./sql/schema.js"
import { type SchemaOptions, schemaOf } from "./sql/schemaName.js"

export interface PgliteOptions extends SchemaOptions {
  /**
   * Keep the database in this directory (created with its missing parents),
   * as PGlite reads it (a path, or a `file://` path); in memory when absent (or
   * `memory://`). One process owns a directory: a second opener fails with a
   * `StoreError` naming the holder, until the first releases the layer or ends.
   */
  readonly dataDir?: string
  /**
   * The application's own drizzle-kit migrations (the `out` folder of its
   * drizzle config), applied after eventcore's with drizzle's PGlite migrator:
   * its tables in `public`, its history in `drizzle.__drizzle_migrations`, apart
   * from eventcore's (`<schema>.migrations`).
   */
  readonly migrationsFolder?: string
}

/**
 * The PGlite database a layer's store runs on, for the application's own
 * tables: `drizzle({ client })` queries them. It is the store's only
 * connection: the layer closes it, and a transaction opened on it holds up
 * every operation of the store until it ends (a store call inside one waits
 * for itself).
 */
export class Client extends Context.Tag("eventcore/PgliteEventStore/Client")<Client, PGlite>() {}

/** Applies the migrations in `drizzle/` to a PGlite database; idempotent. */
export const migrate = (
  client: PGlite,
  options: SchemaOptions = {}
): Effect.Effect<Migrations.MigrationReport, StoreError> =>
  Effect.flatMap(schemaOf("migrate", options), (schema) =>
    Effect.tap(Migrations.migrate(drizzle({ client }), schema), () =>
      Migrations.checkTransactionIds(drizzle({ client }), schema)
    )
  )

/**
 * PGlite runs each query to completion on this thread and settles its promise
 * in a microtask; fibers that keep it busy would keep the microtask queue from
 * ever draining, starving timers and I/O. After each operation, give the event
 * loop a turn.
 */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const gate: Gate = (_, run) => Effect.zipLeft(run, yieldToEventLoop)

/**
 * A store over a PGlite database the caller owns and has migrated; the store
 * never closes it. `schema` must be valid (see `schemaOf`; default `eventcore`).
 *
 * It takes no lock on the client's data directory: a store made here has no
 * lifetime to hold one for. Give a client with a data directory to
 * `layerFromClient`, which holds the lock as long as the store lives.
 */
export const make = (
  client: PGlite,
  options: SchemaOptions & { readonly keys?: KeyStore.KeyStore } = {}
): EventStore.EventStore =>
  SqlEventStore.make({
    schema: options.schema ?? defaultSchema,
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    gate,
    run: runOn(client),
    sessions: sessions(client)
  })

/** Applies the application's drizzle-kit migrations in `folder`; drizzle's migrator skips those already applied. */
const migrateApplication = (client: PGlite, folder: string): Effect.Effect<void, StoreError> =>
  Effect.tryPromise({
    try: () => migrateDrizzle(drizzle({ client }), { migrationsFolder: folder }),
    catch: (error) => {
      const cause = driverError(error)
      return new StoreError({
        operation: "migrate",
        message: `Cannot apply the application's migrations in ${folder}${cause.code === undefined ? "" : ` (${cause.code})`}: ${cause.message ?? String(error)}`,
        cause: error
      })
    }
  })

/** What a layer provides over `client`, with the key store provided to the layer, if any. */
const contextOf = (client: PGlite, schema: string) =>
  Effect.map(Effect.serviceOption(KeyStore.KeyStore), (keys) =>
    Context.add(
      SqlEventStore.layerContext(make(client, { schema, ...(Option.isSome(keys) ? { keys: keys.value } : {}) })),
      Client,
      client
    )
  )

/**
 * Opens (or creates) the database, migrates it (eventcore's migrations, then
 * the application's in `migrationsFolder`), and closes it when the layer is
 * released. Provides the `EventStore`, for projections that write read models
 * the `ReadModelStore`, and the database itself as `Client`.
 */
export const layer = (
  options: PgliteOptions = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore | Client, StoreError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const schema = yield* schemaOf("open", options)
      const { dataDir } = options
      const directory = directoryIn(dataDir)
      // The lock is taken before anything opens or creates the directory.
      const hold = directory === undefined ? undefined : yield* acquireHold(directory)
      if (directory !== undefined) yield* createDataDir(directory)
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => PGlite.create(dataDir === undefined ? {} : { dataDir }),
          catch: (cause) =>
            new StoreError({
              operation: "open",
              message: `Cannot open PGlite${dataDir === undefined ? "" : ` in ${dataDir}`}: ${cause instanceof Error ? cause.message : String(cause)}`,
              cause
            })
        }),
        (client) => Effect.promise(() => client.close())
      )
      if (hold !== undefined) shareHold(client, hold)
      yield* migrate(client, { schema })
      if (options.migrationsFolder !== undefined) yield* migrateApplication(client, options.migrationsFolder)
      return yield* contextOf(client, schema)
    })
  )

/**
 * A store over a PGlite database the caller owns (migrated here); the store
 * never closes it. A client with a data directory (a path or `file://`) has
 * that directory locked for as long as the layer lives, as `layer` does: if
 * another process holds it, the layer fails at once with a `StoreError`
 * naming that process. The lock is taken when the layer is built, after the
 * client opened the directory; `layer({ dataDir })` takes it before.
 */
export const layerFromClient = (
  client: PGlite,
  options: SchemaOptions = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore | Client, StoreError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const schema = yield* schemaOf("open", options)
      yield* holdDirectoryOf(client)
      yield* migrate(client, { schema })
      return yield* contextOf(client, schema)
    })
  )
