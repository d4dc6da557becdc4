/**
 * The event store on a PostgreSQL server (15 to 18) through postgres.js.
 */
import net from "node:net"
import { drizzle } from "drizzle-orm/postgres-js"
import { Config, type ConfigError, Duration, Effect, Exit, Layer, Option, Redacted, Ref, Schedule } from "effect"
import postgres from "postgres"
import type * as EventStore from "./EventStore.js"
import { StoreError } from "./errors.js"
import type { ReadModelStore } from "./Projection.js"
import { driverError, storeError } from "./sql/errors.js"
import * as Migrations from "./sql/migrations.js"
import * as Projections from "./sql/projections.js"
import * as SqlEventStore from "./sql/SqlEventStore.js"
import { defaultSchema, tablesIn } from "./sql/schema.js"
import { type SchemaOptions, schemaOf } from "./sql/schemaName.js"

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

/**
 * A socket that reports an error together with its close, never before it.
 *
 * postgres.js 3.4.9 rejects a connection's queries when its socket emits
 * `error` (ECONNRESET: a backend terminated while it had unread input), but
 * moves the connection out of the pool only on `close`, which Node emits
 * later, in the close phase of the event loop. A query dispatched to the
 * connection in between (a retry started when the first query failed, or one
 * pipelined behind it) is queued on a dead socket, and `close` with
 * `hadError` set rejects nothing (`closed()` in its connection.js), so the query
 * never settles: under `pg_terminate_backend` this stalled `npm run soak`
 * forever, holding its pool slot. The stale in-flight query left behind by the
 * error is the one porsager/postgres#1130 and #1142 describe.
 *
 * Held back until `close`, the error reaches postgres.js when the queries it
 * must reject are all queued, and it rejects them. Plain TCP and Unix sockets
 * only: with `ssl`, postgres.js wraps this socket in a TLS socket of its own.
 */
class ErrorWithCloseSocket extends net.Socket {
  private heldError: unknown = undefined

  override emit(event: string | symbol, ...args: Array<unknown>): boolean {
    if (event === "error") {
      this.heldError ??= args[0]
      return true
    }
    if (event === "close" && this.heldError !== undefined) {
      const error = this.heldError
      this.heldError = undefined
      // postgres.js removes its listeners from this socket when it upgrades to TLS.
      if (this.listenerCount("error") > 0) super.emit("error", error)
    }
    return super.emit(event, ...args)
  }
}

/**
 * postgres.js's `socket` option: opens an `ErrorWithCloseSocket` to the
 * configured host (taking several hosts in turn) or Unix socket path. A pool
 * you own gets it, with `fetch_types: false`, from `poolOptions`.
 */
export const socketFactory = () => {
  let nextHost = 0
  return (options: {
    readonly host: ReadonlyArray<string>
    readonly port: ReadonlyArray<number>
    readonly path?: string | false
  }) => {
    const socket = new ErrorWithCloseSocket()
    if (typeof options.path === "string" && options.path !== "") return socket.connect(options.path)
    const index = nextHost++ % options.host.length
    const host = options.host[index] ?? "localhost"
    // postgres.js reads these to name the server in errors and for TLS.
    return Object.assign(socket.connect(options.port[index] ?? options.port[0] ?? 5432, host), {
      host,
      port: options.port[index]
    })
  }
}

/**
 * What a postgres.js pool needs for the store to survive lost connections:
 * the `socketFactory` socket, and no type fetch. Spread it into the options of
 * a pool you own before giving it to `layerFromClient`:
 * `postgres(url, { ...PostgresEventStore.poolOptions(), max: 20 })`.
 *
 * Typed as postgres.js's options although `socket` is missing from its types.
 */
export const poolOptions = (): postgres.Options<Record<string, never>> =>
  ({
    socket: socketFactory(),
    // No catalog query on each new connection. postgres.js 3.4.9 runs it before
    // the connection's first query and drops its promise: a backend terminated
    // (or the query cancelled) meanwhile rejects it unhandled, which exits Node,
    // and replays its error onto the first query after the reconnect
    // (porsager/postgres#1192, #1205, #1223). It only teaches postgres.js array
    // types, and no statement of the store, the migrator or the admin queries
    // sends or reads an array (test/faults/terminated.test.ts).
    fetch_types: false
  }) as postgres.Options<Record<string, never>>

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

const isClient = (target: PostgresConfig | postgres.Sql): target is postgres.Sql => typeof target === "function"

/**
 * Bounds the operations in flight to the pool size, so that waiting for a
 * connection is visible here and can time out with a clear error (postgres.js
 * itself would queue the query without limit).
 */
const makeGate = (config: PostgresConfig) =>
  Effect.map(Effect.makeSemaphore(config.maxConnections ?? defaults.maxConnections), (semaphore) => {
    const timeout = Duration.decode(config.acquireTimeout ?? defaults.acquireTimeout)
    const size = config.maxConnections ?? defaults.maxConnections
    const waitForPermit: SqlEventStore.Gate = (operation, run) =>
      Effect.acquireUseRelease(
        // The acquire step is uninterruptible; waiting for a permit must not be,
        // or the timeout could not cut it short.
        Effect.interruptible(semaphore.take(1)).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new StoreError({
                operation,
                message: `No PostgreSQL connection became free within ${Duration.format(timeout)} (pool of ${size}): raise maxConnections or acquireTimeout, or look for slow queries and long transactions.`
              })
          })
        ),
        () => run,
        () => semaphore.release(1)
      )
    // A free permit is taken without arming the timeout: the timeout's race
    // (a fiber and a timer) cost ~40 µs of CPU per operation, a sixth of an
    // append's, and only a full pool needs it.
    const gate: SqlEventStore.Gate = (operation, run) =>
      Effect.flatMap(
        semaphore.withPermitsIfAvailable(1)(run),
        Option.match({ onNone: () => waitForPermit(operation, run), onSome: Effect.succeed })
      )
    return gate
  })

/** How a store uses a hot standby's pool (see `PostgresConfig.replicaUrl`). */
export interface ReplicaOptions {
  /** A pool on a hot standby of the primary's server: the global log is read there. */
  readonly replica?: postgres.Sql
  /** Read streams there too (see `PostgresConfig.readStreamsFromReplica`). */
  readonly readStreamsFromReplica?: boolean
}

/**
 * A store over a postgres.js client; `gate` bounds concurrent operations (see
 * `layer`), `replicaGate` those on the replica. `schema` must be valid (see
 * `layer`; default `eventcore`).
 */
export const make = (
  client: postgres.Sql,
  options: SchemaOptions &
    ReplicaOptions & { readonly gate?: SqlEventStore.Gate; readonly replicaGate?: SqlEventStore.Gate } = {}
) =>
  SqlEventStore.make({
    schema: options.schema ?? defaultSchema,
    ...(options.gate === undefined ? {} : { gate: options.gate }),
    runPrepared: runOn(client),
    sessions: sessions(client),
    ...(options.replica === undefined
      ? {}
      : {
          replica: {
            runPrepared: runOn(options.replica),
            ...(options.replicaGate === undefined ? {} : { gate: options.replicaGate }),
            streams: options.readStreamsFromReplica === true
          }
        })
  })

/** Counts reads on a replica run again after a recovery conflict or a lost session (`eventcore_replica_read_retries`). */
export const replicaRetryCounter = SqlEventStore.replicaRetryCounter

/** Statements as the driver's prepared statements, rows as arrays. */
const runOn =
  (client: postgres.Sql): Projections.Run =>
  (statement, params) =>
    client
      .unsafe(statement, params as Array<postgres.ParameterOrJSON<never>>, { prepare: true })
      .values()
      .then(dense)

/**
 * Distinct statement texts a projection's session prepares for its read
 * model (see `preparing`).
 */
const readModelStatements = 200

/**
 * `client` with the read model's statements prepared. Drizzle runs its
 * queries unnamed, and postgres.js describes an unnamed query with parameters
 * in a round trip of its own before running it: two round trips for every
 * statement a handler runs, event by event. A session lives long and its
 * handlers run few distinct statements, so they are prepared: described once,
 * then one round trip each. Past `readModelStatements` distinct texts (SQL
 * built dynamically, an `in` list of varying length) the rest run unnamed
 * rather than grow the session's statement cache, here and in the server,
 * without bound.
 */
const preparing = (client: postgres.Sql): postgres.Sql => {
  const prepared = new Set<string>()
  const unsafe = (query: string, parameters: Array<postgres.ParameterOrJSON<never>> = [], options = {}) => {
    const prepare =
      prepared.has(query) || (parameters.length > 0 && prepared.size < readModelStatements && !!prepared.add(query))
    return client.unsafe(query, parameters, prepare ? { ...options, prepare } : options)
  }
  return new Proxy(client, { get: (target, key) => (key === "unsafe" ? unsafe : Reflect.get(target, key)) })
}

/**
 * A session's sockets: the first opens as the pool's do, every later one fails
 * at once. postgres.js opens a closed connection again for the next query,
 * silently: a session whose backend ended in the middle of a batch would run
 * the rest of it, the checkpoint's compare-and-set included, in autocommit on a
 * new connection without its lock, and the events handled before would be lost
 * from the read model. Refused, every later statement fails instead, so the
 * batch rolls back whole and the instance owns its name again on a new session.
 */
const firstConnectionOnly = () => {
  const open = socketFactory()
  let opened = false
  return (options: Parameters<typeof open>[0]) => {
    if (!opened) {
      opened = true
      return open(options)
    }
    const refused = new ErrorWithCloseSocket()
    // After postgres.js has attached its listeners (it does so once the factory's promise resolves).
    setImmediate(() =>
      refused.destroy(new Error("the projection's database session was lost, and a session is never reopened"))
    )
    return refused
  }
}

const inSession = <A>(run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (error) => storeError("projection", error) })

/**
 * Sessions for projections and reactors: a connection of the instance's own,
 * opened with the pool's settings, holding its advisory lock and running its
 * batches for as long as it runs (so it takes no connection of the pool).
 *
 * Not `reserve()` from the pool: postgres.js 3.4.9 never hands over a reserved
 * connection that it had to open for the purpose when `fetch_types` is off (as
 * the store's pool has it): its first ReadyForQuery drops the reservation.
 */
const sessions = (client: postgres.Sql): Projections.Sessions => ({
  open: Effect.map(
    Effect.acquireRelease(
      inSession(async () => {
        const options = client.options
        const own = postgres({
          ...poolOptions(),
          host: options.host,
          port: options.port,
          ...(typeof options.path === "string" ? { path: options.path } : {}),
          database: options.database,
          user: options.user,
          pass: options.pass,
          ssl: options.ssl,
          connect_timeout: options.connect_timeout,
          connection: { ...options.connection, application_name: "eventcore-projection" },
          onnotice: () => {},
          max: 1,
          socket: firstConnectionOnly(),
          // Never closed for its age (postgres.js closes a connection after 30-60 min by default): the
          // session holds the name's lock for as long as the instance runs.
          max_lifetime: null
          // The parsed options carry hosts and ports as arrays, which postgres.js accepts but does not type.
        } as unknown as postgres.Options<Record<string, never>>)
        await own`select 1`
        return own
      }),
      (own) => Effect.promise(() => own.end({ timeout: 1 }))
    ),
    (own): Projections.Session => {
      const run = runOn(own)
      const readModel = drizzle({ client: preparing(own) })
      return {
        run,
        transaction: (body) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function* () {
              yield* inSession(() => own.unsafe("begin"))
              const exit = yield* Effect.exit(restore(body(readModel, run)))
              if (Exit.isSuccess(exit)) {
                yield* inSession(() => own.unsafe("commit"))
                return exit.value
              }
              yield* Effect.ignore(inSession(() => own.unsafe("rollback")))
              return yield* exit
            })
          )
      }
    }
  ),
  tryLock: (session, key) =>
    Effect.map(
      inSession(() => session.run("select pg_try_advisory_lock(hashtextextended($1, 0))", [key])),
      (rows) => rows[0]?.[0] === true
    ),
  isLocked: (keys) =>
    Effect.map(
      inSession(() =>
        runOn(client)(
          // Advisory locks are per database: a projection of the same name in another database of the
          // server (another tenant's) holds a lock with the same key.
          `select exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 1
             and l.database = (select oid from pg_database where datname = current_database())
             and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(k.key, 0))
           from jsonb_array_elements_text($1::text::jsonb) with ordinality as k(key, i) order by k.i`,
          [JSON.stringify(keys)]
        )
      ),
      (rows) => rows.map((row) => row[0] === true)
    )
})

/**
 * postgres.js 3.4.9 resets its per-connection row counter only when a result
 * completes: after a connection is lost in the middle of a result, the next
 * result on that connection starts with as many holes as rows were received
 * (porsager/postgres#1119, #1181). The rows after the holes are the right ones.
 * With `fetch_types` on, the catalog query opening the new connection took the
 * holes; without it, the connection's first statement does, so every statement
 * the store runs on its pool goes through here.
 */
const dense = <A>(rows: ReadonlyArray<A>): ReadonlyArray<A> =>
  rows.length > 0 && !(0 in rows) ? rows.filter(() => true) : rows

/** Fails at build time, with a message that says what to do, if the server is unreachable or not migrated. */
const probe = (client: postgres.Sql, schema: string) =>
  Effect.tryPromise({
    try: () => drizzle({ client }).select().from(tablesIn(schema).events).limit(0),
    catch: (error) => storeError("connect", error)
  })

/**
 * Where the primary's WAL ends now (everything it has committed, the
 * migrations included, lies before it), and the cluster it belongs to: its
 * physical standbys, cascading ones included, share its system identifier and
 * number their WAL as it does.
 */
const primaryWalEnd = "select pg_current_wal_lsn()::text, system_identifier::text from pg_control_system()"

/**
 * The replica's cluster; whether it is a standby (in recovery); how many bytes
 * of WAL it has yet to replay to reach position $1 of the primary's (0 once
 * there, null while it has replayed nothing); whether its replay is paused.
 * `pg_last_wal_replay_lsn()` of a server out of recovery is null or stale:
 * only a standby's is compared.
 */
const replicaReplay = `select system_identifier::text, pg_is_in_recovery(),
  greatest(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0)::text,
  case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() <> 'not paused' else false end
from pg_control_system()`

/** SQLSTATE invalid_catalog_name: no database of that name (yet) on the server. */
const missingDatabase = "3D000"

/** What a replica last said about its replay of the primary's WAL. */
type Replay =
  | { readonly _tag: "NoDatabase"; readonly cause: unknown }
  | { readonly _tag: "Behind"; readonly bytes: bigint | undefined; readonly paused: boolean }
  | { readonly _tag: "CaughtUp" }

/** Asked again at 10 ms, doubling up to every 200 ms. */
const replayPoll = Schedule.exponential("10 millis").pipe(Schedule.union(Schedule.spaced("200 millis")))

const replayOf = (replica: postgres.Sql, position: string, cluster: string): Effect.Effect<Replay, StoreError> =>
  Effect.tryPromise({ try: () => runOn(replica)(replicaReplay, [position]), catch: (error) => error }).pipe(
    Effect.matchEffect({
      // A database created on the primary is missing on the standby until it replays its creation.
      onFailure: (error) =>
        driverError(error).code === missingDatabase
          ? Effect.succeed<Replay>({ _tag: "NoDatabase", cause: error })
          : Effect.fail(storeError("connect", error)),
      onSuccess: ([row]) => {
        const [system, inRecovery, bytes, paused] = row ?? []
        if (system !== cluster) {
          return Effect.fail(
            new StoreError({
              operation: "connect",
              message: `The replica at replicaUrl is not a standby of the primary: it belongs to another cluster (system identifier ${String(system)}, the primary's ${cluster}). The global log is read only on a hot standby streaming from the primary, directly or through another standby, whose transaction ids are the primary's: a logical replica or a restored copy numbers its own.`
            })
          )
        }
        // Out of recovery, in the primary's cluster: the primary itself, which has nothing to replay.
        if (inRecovery !== true || bytes === "0") return Effect.succeed<Replay>({ _tag: "CaughtUp" })
        return Effect.succeed<Replay>({
          _tag: "Behind",
          bytes: typeof bytes === "string" ? BigInt(bytes) : undefined,
          paused: paused === true
        })
      }
    })
  )

const replicaBehind = (
  replay: Exclude<Replay, { readonly _tag: "CaughtUp" }>,
  position: string,
  timeout: Duration.Duration
) => {
  const waited = `after waiting ${Duration.format(timeout)}`
  const advice =
    "Check its replication (pg_stat_replication on the primary, pg_stat_wal_receiver on the standby), or raise replicaReplayTimeout."
  switch (replay._tag) {
    case "Behind": {
      const short =
        replay.bytes === undefined
          ? "it had replayed no WAL yet"
          : `it was still ${replay.bytes.toLocaleString("en-US")} bytes of WAL short of ${position}, where the primary's WAL ended once it was migrated`
      const paused = replay.paused
        ? ", and its replay is paused (pg_wal_replay_resume() on the standby resumes it)"
        : ""
      return new StoreError({
        operation: "connect",
        message: `The replica at replicaUrl is behind the primary: ${waited} ${short}${paused}. ${advice}`
      })
    }
    case "NoDatabase":
      return new StoreError({
        operation: "connect",
        message: `The replica at replicaUrl is behind the primary: ${waited} it still had no such database (${driverError(replay.cause).message ?? missingDatabase}), which the primary has: it has not replayed the database's creation, or replicaUrl names another database than url. ${advice}`,
        cause: replay.cause
      })
  }
}

/**
 * Waits until the replica has replayed the primary's WAL up to where it ends
 * now: a standby that has not replayed the migrations (or the creation of the
 * database) yet is behind by milliseconds, not unmigrated. Fails when it is
 * still behind `timeout` after its first answer, with a `StoreError` saying by
 * how much, and at once if the replica is not a standby of the primary's
 * cluster.
 */
const awaitReplay = (primary: postgres.Sql, replica: postgres.Sql, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    const [walEnd] = yield* Effect.tryPromise({
      try: () => runOn(primary)(primaryWalEnd, []),
      catch: (error) => storeError("connect", error)
    })
    const [position = "", cluster = ""] = (walEnd ?? []).map(String)
    // The wait starts once the replica has answered: reaching it is bounded by the connect timeout.
    const first = yield* replayOf(replica, position, cluster)
    if (first._tag === "CaughtUp") return
    const last = yield* Ref.make<Replay>(first)
    yield* replayOf(replica, position, cluster).pipe(
      Effect.tap((replay) => Ref.set(last, replay)),
      Effect.repeat({ schedule: replayPoll, until: (replay) => replay._tag === "CaughtUp" }),
      Effect.timeout(timeout),
      Effect.catchTag("TimeoutException", () =>
        Effect.flatMap(Ref.get(last), (replay) =>
          replay._tag === "CaughtUp" ? Effect.void : Effect.fail(replicaBehind(replay, position, timeout))
        )
      )
    )
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
      const gate = yield* makeGate(config)
      if (config.replicaUrl === undefined) return Projections.storeContext(make(client, { schema, gate }))
      const replica = yield* openClient(config, config.replicaUrl, "eventcore-replica")
      yield* awaitReplay(client, replica, Duration.decode(config.replicaReplayTimeout ?? defaults.replicaReplayTimeout))
      // A replica that cancels the probe for a recovery conflict is asked again, as for every read there.
      yield* SqlEventStore.retryOnReplica(probe(replica, schema))
      return Projections.storeContext(
        make(client, {
          schema,
          gate,
          replica,
          replicaGate: yield* makeGate(config),
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
    Effect.map(schemaOf("connect", options), (schema) => Projections.storeContext(make(client, { ...options, schema })))
  )
}
