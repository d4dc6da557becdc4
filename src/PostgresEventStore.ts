/**
 * The event store on a PostgreSQL server (15 to 18) through postgres.js.
 */
import { drizzle } from "drizzle-orm/postgres-js"
import { Config, type ConfigError, Duration, Effect, Layer, Option, Redacted } from "effect"
import postgres from "postgres"
import type * as EventStore from "./EventStore.js"
import { StoreError } from "./errors.js"
import * as KeyStore from "./KeyStore.js"
import { makeGate } from "./postgres/gate.js"
import { awaitReplay } from "./postgres/replicaReplay.js"
import { runOn } from "./postgres/run.js"
import { sessions } from "./postgres/sessions.js"
import { poolOptions } from "./postgres/sockets.js"
import type { ReadModelStore } from "./ReadModel.js"
import type { Gate } from "./sql/driver.js"
import { storeError } from "./sql/errors.js"
import * as Migrations from "./sql/migrations.js"
import { retryOnReplica } from "./sql/replica.js"
import * as SqlEventStore from "./sql/SqlEventStore.js"
import { defaultSchema, tablesIn } from "./sql/schema.js"
import { type SchemaOptions, schemaOf } from "./sql/schemaName.js"

export { poolOptions, socketFactory } from "./postgres/sockets.js"
export { replicaRetryCounter } from "./sql/replica.js"

export interface PostgresConfig extends SchemaOptions {
  /** `postgres://user:password@host:port/database`; give a `Redacted` to keep the password out of logs. */
  readonly url: string | Redacted.Redacted<string>
  /** Connections in the pool (default 10). */
  readonly maxConnections?: number
  /** How long an operation waits for a free connection, or for a new one to open (default 30 s). */
  readonly acquireTimeout?: Duration.DurationInput
  /** Idle connections close after this long (default 10 min). */
  readonly idleTimeout?: Duration.DurationInput
  /** Apply the migrations when the layer is built (default false). */
  readonly autoMigrate?: boolean
  /**
   * A hot standby of the server at `url` (streaming replication). The global
   * log is read there: `readAll`, `streamAll`, `subscribe`, and so the reads
   * of projections and reactors; appends, checkpoints and read models stay
   * on the primary. It opens a pool of its own, of `maxConnections`. See
   * docs/scaling.md, and `EventStore.waitForLog` to read your writes there.
   */
  readonly replicaUrl?: string | Redacted.Redacted<string>
  /**
   * How long building the layer waits for the replica to replay the
   * primary's WAL up to where it ended once the primary was migrated (or
   * found migrated), so that a standby a moment behind a migration is waited
   * for rather than refused (default 30 s). Past it, the layer fails with a
   * `StoreError` saying how far behind the standby is.
   */
  readonly replicaReplayTimeout?: Duration.DurationInput
  /**
   * Read streams on the replica too (`readStream`, `streamEvents`: what
   * commands read). Default false: a command that read a stale version fails
   * its append on a version conflict and runs again, so it stays correct, but
   * a lagging replica costs it retries.
   */
  readonly readStreamsFromReplica?: boolean
}

export const defaults = {
  maxConnections: 10,
  acquireTimeout: Duration.seconds(30),
  idleTimeout: Duration.minutes(10),
  replicaReplayTimeout: Duration.seconds(30)
} as const

const clientOptions = (config: PostgresConfig) => ({
  ...poolOptions(),
  max: config.maxConnections ?? defaults.maxConnections,
  idle_timeout: Duration.toSeconds(config.idleTimeout ?? defaults.idleTimeout),
  connect_timeout: Duration.toSeconds(config.acquireTimeout ?? defaults.acquireTimeout),
  // postgres.js prints server NOTICEs to stdout otherwise.
  onnotice: () => {},
  connection: { application_name: "eventcore" }
})

const openClient = (config: PostgresConfig, url = config.url, applicationName = "eventcore") =>
  Effect.acquireRelease(
    Effect.try({
      try: () =>
        postgres(Redacted.value(Redacted.isRedacted(url) ? url : Redacted.make(url)), {
          ...clientOptions(config),
          connection: { application_name: applicationName }
        }),
      // The URL is never part of the message: it may hold a password.
      catch: (cause) =>
        new StoreError({
          operation: "connect",
          message: `Invalid PostgreSQL connection URL: ${cause instanceof Error ? cause.message.replace(/\/\/[^@]*@/, "//***@") : "unparsable"}`
        })
    }),
    (client) => Effect.promise(() => client.end({ timeout: 5 }))
  )

const migrateClient = (client: postgres.Sql, schema: string) =>
  Effect.tap(Migrations.migrate(drizzle({ client }), schema), () =>
    Migrations.checkTransactionIds(drizzle({ client }), schema)
  )

/**
 * Applies the drizzle-kit migrations in `drizzle/` to the configured schema
 * (default `eventcore`): idempotent, and safe when several processes run it at
 * once (they take turns on an advisory lock). Given a config it opens and
 * closes its own connection; given a client it borrows one (`options.schema`
 * names the schema then).
 */
export const migrate = (
  target: PostgresConfig | postgres.Sql,
  options: SchemaOptions = {}
): Effect.Effect<Migrations.MigrationReport, StoreError> =>
  isClient(target)
    ? Effect.flatMap(schemaOf("migrate", options), (schema) => migrateClient(target, schema))
    : Effect.flatMap(schemaOf("migrate", target), (schema) =>
        Effect.scoped(
          Effect.flatMap(openClient({ ...target, maxConnections: 1 }), (client) => migrateClient(client, schema))
        )
      )

/** The gate of a pool (or a replica's) opened from `config`. */
const gateOf = (config: PostgresConfig) =>
  makeGate(config.maxConnections ?? defaults.maxConnections, config.acquireTimeout ?? defaults.acquireTimeout)

const isClient = (target: PostgresConfig | postgres.Sql): target is postgres.Sql => typeof target === "function"

/** How a store uses a hot standby's pool (see `PostgresConfig.replicaUrl`). */
export interface ReplicaOptions {
  /** A pool on a hot standby of the primary's server: the global log is read there. */
  readonly replica?: postgres.Sql
  /** Read streams there too (see `PostgresConfig.readStreamsFromReplica`). */
  readonly readStreamsFromReplica?: boolean
}

/**
 * A store over a postgres.js client (and a pool on a replica, if given): the
 * store never closes them. `schema` must be valid (see `layer`; default
 * `eventcore`).
 */
export const make = (client: postgres.Sql, options: SchemaOptions & ReplicaOptions = {}): EventStore.EventStore =>
  gatedStore(client, options)

/** `make`, with the operations on the pool (and on the replica's) bounded by gates (see `layer`). */
const gatedStore = (
  client: postgres.Sql,
  options: SchemaOptions &
    ReplicaOptions & { readonly gate?: Gate; readonly replicaGate?: Gate; readonly keys?: KeyStore.KeyStore }
) =>
  SqlEventStore.make({
    schema: options.schema ?? defaultSchema,
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    ...(options.gate === undefined ? {} : { gate: options.gate }),
    run: runOn(client),
    sessions: sessions(client),
    ...(options.replica === undefined
      ? {}
      : {
          replica: {
            run: runOn(options.replica),
            ...(options.replicaGate === undefined ? {} : { gate: options.replicaGate }),
            streams: options.readStreamsFromReplica === true
          }
        })
  })

/** Fails at build time, with a message that says what to do, if the server is unreachable or not migrated. */
const probe = (client: postgres.Sql, schema: string) =>
  Effect.tryPromise({
    try: () => drizzle({ client }).select().from(tablesIn(schema).events).limit(0),
    catch: (error) => storeError("connect", error)
  })

/**
 * Opens a pool, checks the server (migrating first with `autoMigrate`), and
 * closes the pool on release. Provides the `EventStore` and, for projections
 * that write read models, the `ReadModelStore`.
 */
export const layer = (config: PostgresConfig): Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const schema = yield* schemaOf("connect", config)
      const client = yield* openClient(config)
      if (config.autoMigrate === true) yield* migrateClient(client, schema)
      yield* probe(client, schema)
      yield* Migrations.checkTransactionIds(drizzle({ client }), schema)
      const gate = yield* gateOf(config)
      const keys = Option.getOrUndefined(yield* Effect.serviceOption(KeyStore.KeyStore))
      if (config.replicaUrl === undefined) {
        return SqlEventStore.layerContext(gatedStore(client, { schema, gate, ...(keys === undefined ? {} : { keys }) }))
      }
      const replica = yield* openClient(config, config.replicaUrl, "eventcore-replica")
      yield* awaitReplay(client, replica, Duration.decode(config.replicaReplayTimeout ?? defaults.replicaReplayTimeout))
      // A replica that cancels the probe for a recovery conflict is asked again, as for every read there.
      yield* retryOnReplica(probe(replica, schema))
      return SqlEventStore.layerContext(
        gatedStore(client, {
          schema,
          gate,
          ...(keys === undefined ? {} : { keys }),
          replica,
          replicaGate: yield* gateOf(config),
          readStreamsFromReplica: config.readStreamsFromReplica ?? false
        })
      )
    })
  )

/**
 * The configuration `layerConfig` reads: `DATABASE_URL`, `EVENTCORE_MAX_CONNECTIONS`,
 * `EVENTCORE_ACQUIRE_TIMEOUT`, `EVENTCORE_SCHEMA`, and optionally
 * `EVENTCORE_REPLICA_URL` (a hot standby to read the global log on) with
 * `EVENTCORE_READ_STREAMS_FROM_REPLICA` and `EVENTCORE_REPLICA_REPLAY_TIMEOUT`.
 */
export const config: Config.Config<PostgresConfig> = Config.map(
  Config.all({
    url: Config.redacted("DATABASE_URL"),
    schema: Config.string("EVENTCORE_SCHEMA").pipe(Config.withDefault(defaultSchema)),
    maxConnections: Config.integer("EVENTCORE_MAX_CONNECTIONS").pipe(Config.withDefault(defaults.maxConnections)),
    acquireTimeout: Config.duration("EVENTCORE_ACQUIRE_TIMEOUT").pipe(Config.withDefault(defaults.acquireTimeout)),
    replicaUrl: Config.option(Config.redacted("EVENTCORE_REPLICA_URL")),
    readStreamsFromReplica: Config.boolean("EVENTCORE_READ_STREAMS_FROM_REPLICA").pipe(Config.withDefault(false)),
    replicaReplayTimeout: Config.duration("EVENTCORE_REPLICA_REPLAY_TIMEOUT").pipe(
      Config.withDefault(defaults.replicaReplayTimeout)
    )
  }),
  ({ replicaUrl, ...rest }): PostgresConfig =>
    Option.match(replicaUrl, { onNone: () => rest, onSome: (url) => ({ ...rest, replicaUrl: url }) })
)

export const layerConfig: Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError | ConfigError.ConfigError> =
  Layer.unwrapEffect(Effect.map(config, layer))

/**
 * A store over a pool the application owns: the store never closes it. With
 * `schema`, a name that is not valid fails the layer with a `StoreError`.
 */
export function layerFromClient(client: postgres.Sql): Layer.Layer<EventStore.EventStore | ReadModelStore>
export function layerFromClient(
  client: postgres.Sql,
  options: SchemaOptions & ReplicaOptions
): Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError>
export function layerFromClient(
  client: postgres.Sql,
  options: SchemaOptions & ReplicaOptions = {}
): Layer.Layer<EventStore.EventStore | ReadModelStore, StoreError> {
  return Layer.effectContext(
    Effect.map(Effect.all([schemaOf("connect", options), Effect.serviceOption(KeyStore.KeyStore)]), ([schema, keys]) =>
      SqlEventStore.layerContext(
        gatedStore(client, { ...options, schema, ...(Option.isSome(keys) ? { keys: keys.value } : {}) })
      )
    )
  )
}
