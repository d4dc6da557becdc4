/**
 * The event store on PGlite: PostgreSQL compiled to WebAssembly, running in
 * this process. Zero setup, in memory or persisted in a directory, and the same
 * SQL as the PostgreSQL store.
 */
import { PGlite, type Transaction } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { Effect, Layer } from "effect"
import type * as EventStore from "./EventStore.js"
import { StoreError } from "./errors.js"
import { lockDataDir } from "./internal/dataDirLock.js"
import type { ReadModelStore } from "./Projection.js"
import * as Migrations from "./sql/migrations.js"
import * as Projections from "./sql/projections.js"
import * as SqlEventStore from "./sql/SqlEventStore.js"
import { defaultSchema } from "./sql/schema.js"
import { type SchemaOptions, schemaOf } from "./sql/schemaName.js"

export interface PgliteOptions extends SchemaOptions {
  /**
   * Keep the database in this directory (created if missing); in memory when
   * absent. One process owns a directory: a second opener fails with a
   * `StoreError` naming the holder, until the first releases the layer or ends.
   */
  readonly dataDir?: string
}

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
 */
export const make = (client: PGlite, options: SchemaOptions = {}): EventStore.EventStore =>
  SqlEventStore.make({
    schema: options.schema ?? defaultSchema,
    gate,
    runPrepared: runOn(client),
    sessions: sessions(client)
  })

/**
 * Opens (or creates) the database, migrates it, and closes it when the layer
 * is released. Provides the `EventStore` and, for projections that write read
 * models, the `ReadModelStore`.
 */
export const layer = (options: PgliteOptions = {}): Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const schema = yield* schemaOf("open", options)
      if (options.dataDir !== undefined) yield* lockDataDir(options.dataDir)
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => PGlite.create(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
          catch: (cause) =>
            new StoreError({
              operation: "open",
              message: `Cannot open PGlite${options.dataDir === undefined ? "" : ` in ${options.dataDir}`}: ${cause instanceof Error ? cause.message : String(cause)}`,
              cause
            })
        }),
        (client) => Effect.promise(() => client.close())
      )
      yield* migrate(client, { schema })
      return Projections.storeContext(make(client, { schema }))
    })
  )

/** A store over a PGlite database the caller owns (migrated here); the store never closes it. */
export const layerFromClient = (
  client: PGlite,
  options: SchemaOptions = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError> =>
  Layer.effectContext(
    Effect.flatMap(schemaOf("open", options), (schema) =>
      Effect.as(migrate(client, { schema }), Projections.storeContext(make(client, { schema })))
    )
  )
