/**
 * The event store on PGlite: PostgreSQL compiled to WebAssembly, running in
 * this process. Zero setup, in memory or persisted in a directory, and the same
 * SQL as the PostgreSQL store.
 */
import { PGlite, type Transaction } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { migrate as migrateDrizzle } from "drizzle-orm/pglite/migrator"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import type * as EventStore from "./EventStore.js"
import { StoreError } from "./errors.js"
import { createDataDir, lockDataDir } from "./internal/dataDirLock.js"
import type { ReadModelStore } from "./Projection.js"
import { driverError } from "./sql/errors.js"
import * as Migrations from "./sql/migrations.js"
import * as Projections from "./sql/projections.js"
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

const gate: SqlEventStore.Gate = (_, run) => Effect.zipLeft(run, yieldToEventLoop)

/** Statements of a PGlite session or transaction, rows as arrays. */
const runOn =
  (target: Pick<PGlite, "query">): Projections.Run =>
  (statement, params) =>
    target
      .query<Array<unknown>>(statement, params as Array<unknown>, { rowMode: "array" })
      .then((result) => result.rows)

/** Names owned by projections and reactors, per database: PGlite has one session, so ownership is kept here. */
const owned = new WeakMap<PGlite, Set<string>>()

/**
 * Sessions for projections and reactors: PGlite's one, shared; its
 * transactions hold PGlite's lock, so other operations on the database wait
 * for a batch to commit.
 */
const sessions = (client: PGlite): Projections.Sessions => {
  const names = owned.get(client) ?? new Set<string>()
  owned.set(client, names)
  const session: Projections.Session = {
    run: runOn(client),
    transaction: (body) =>
      Projections.bridgeTransaction(
        (callback: (tx: Transaction) => Promise<void>) => client.transaction(callback),
        (tx) => body(drizzle({ client: tx as unknown as PGlite }), runOn(tx))
      )
  }
  return {
    open: Effect.succeed(session),
    tryLock: (_, key) =>
      Effect.gen(function* () {
        if (names.has(key)) return false
        names.add(key)
        yield* Effect.addFinalizer(() => Effect.sync(() => names.delete(key)))
        return true
      }),
    isLocked: (keys) => Effect.sync(() => keys.map((key) => names.has(key)))
  }
}

/**
 * A store over a PGlite database the caller owns and has migrated; the store
 * never closes it. `schema` must be valid (see `schemaOf`; default `eventcore`).
 *
 * It takes no lock on the client's data directory: a store made here has no
 * lifetime to hold one for. Give a client with a data directory to
 * `layerFromClient`, which holds the lock as long as the store lives.
 */
export const make = (client: PGlite, options: SchemaOptions = {}): EventStore.EventStore =>
  SqlEventStore.make({
    schema: options.schema ?? defaultSchema,
    gate,
    runPrepared: runOn(client),
    sessions: sessions(client)
  })

/**
 * The lock on a data directory, shared by the layers over one client (stores
 * in several schemas of one database), and released by the last of them.
 */
interface Hold {
  users: number
  readonly lock: Scope.CloseableScope
}

/** Clients whose data directory this process holds. */
const holds = new WeakMap<PGlite, Hold>()

/** Holds are taken and given back one at a time: a hold being released is never shared. */
const holding = Effect.unsafeMakeSemaphore(1)

const release = (hold: Hold) =>
  holding.withPermits(1)(Effect.suspend(() => (--hold.users === 0 ? Scope.close(hold.lock, Exit.void) : Effect.void)))

/** Takes the lock on `dataDir` until the scope ends, as a hold the layers over its client can share. */
const acquireHold = (dataDir: string): Effect.Effect<Hold, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const lock = yield* Scope.make()
      yield* Effect.onExit(Scope.extend(lockDataDir(dataDir), lock), (exit) =>
        Exit.isFailure(exit) ? Scope.close(lock, exit) : Effect.void
      )
      return { users: 1, lock }
    }),
    release
  )

/** The prefixes of `dataDir` that PGlite keeps in memory or in a browser's storage, never in a directory here. */
const notADirectory = ["memory://", "idb://", "opfs-ahp://", "memfs2opfs://"]

/**
 * The directory PGlite keeps a database given this `dataDir` in, read as
 * PGlite reads it: a path, or a `file://` path; none for `memory://` (or a
 * browser's storage) or no `dataDir` at all.
 */
const directoryIn = (dataDir: string | undefined): string | undefined => {
  if (dataDir === undefined || dataDir === "") return undefined
  if (dataDir.startsWith("file://")) return dataDir.slice("file://".length)
  return notADirectory.some((prefix) => dataDir.startsWith(prefix)) ? undefined : dataDir
}

/**
 * The directory a client keeps its database in: its `dataDir`'s, or, for a
 * client given PGlite's `NodeFS` instead of a `dataDir`, the file system's
 * (it keeps it as `rootDir`).
 */
const directoryOf = (client: PGlite): string | undefined => {
  if (client.dataDir !== undefined && client.dataDir !== "") return directoryIn(client.dataDir)
  const rootDir = (client.fs as { readonly rootDir?: unknown } | undefined)?.rootDir
  return typeof rootDir === "string" ? rootDir : undefined
}

/**
 * Holds the lock on the client's data directory until the scope ends; shares
 * the hold of another layer over the same client.
 */
const holdDirectoryOf = (client: PGlite): Effect.Effect<void, StoreError, Scope.Scope> =>
  holding.withPermits(1)(
    Effect.suspend(() => {
      const held = holds.get(client)
      if (held !== undefined && held.users > 0) {
        return Effect.acquireRelease(
          Effect.sync(() => {
            held.users++
          }),
          () => release(held)
        )
      }
      const dataDir = directoryOf(client)
      if (dataDir === undefined) return Effect.void
      return Effect.map(acquireHold(dataDir), (hold) => {
        holds.set(client, hold)
      })
    })
  )

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

/** What a layer provides over `client`. */
const contextOf = (client: PGlite, schema: string) =>
  Context.add(Projections.storeContext(make(client, { schema })), Client, client)

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
      if (hold !== undefined) holds.set(client, hold)
      yield* migrate(client, { schema })
      if (options.migrationsFolder !== undefined) yield* migrateApplication(client, options.migrationsFolder)
      return contextOf(client, schema)
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
      return contextOf(client, schema)
    })
  )
