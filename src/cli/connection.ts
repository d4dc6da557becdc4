/**
 * Opens the database the command line was pointed at, as the stores do:
 * PGlite in a data directory, or a PostgreSQL server.
 *
 * Looking and changing stay apart. `migrate` and `demo` open for writing and
 * apply pending migrations, creating a PGlite directory and its parents if
 * missing. Every other command opens for reading: the session is read-only
 * (`default_transaction_read_only`), so even a bug cannot change data, and a
 * database that holds no eventcore schema, or one this release cannot read
 * yet, is reported and left exactly as it was, never migrated. A PGlite
 * directory that does not exist is not created. `snapshots clear`, which
 * removes a cache and nothing else, and `erase`, `archive`, `truncate` and
 * `purge`, which change what a store holds through the functions its schema
 * keeps for that, open a store as the readers do, in a session that may
 * write.
 */
import { existsSync } from "node:fs"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { sql } from "drizzle-orm"
import { drizzle as drizzlePglite } from "drizzle-orm/pglite"
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js"
import { Console, type Context, Effect, type Scope } from "effect"
import postgres from "postgres"
import type * as EventStore from "../EventStore.js"
import { StoreError } from "../errors.js"
import * as PgliteEventStore from "../PgliteEventStore.js"
import * as PostgresEventStore from "../PostgresEventStore.js"
import { createDataDir, lockDataDir } from "../pglite/dataDirLock.js"
import type { ReadModelStore } from "../ReadModel.js"
import type { Database } from "../sql/driver.js"
import { driverError, storeError } from "../sql/errors.js"
import * as Migrations from "../sql/migrations.js"
import { rowsOf } from "../sql/rows.js"
import { layerContext } from "../sql/SqlEventStore.js"
import { quoted } from "../sql/statements.js"
import { CommandFailed, insufficientPrivilege } from "./failures.js"

export type Target =
  | { readonly kind: "pglite"; readonly dataDir: string }
  | { readonly kind: "postgres"; readonly url: string }

export interface Connection {
  readonly store: EventStore.EventStore
  /**
   * The store as its layers provide it: the `EventStore` and, for projections
   * that write read models (the demo's), the `ReadModelStore`.
   */
  readonly context: Context.Context<EventStore.EventStore | ReadModelStore>
  readonly db: Database
  /** The PostgreSQL schema of eventcore's tables. */
  readonly schema: string
}

const connected = (db: Database, store: EventStore.EventStore, schema: string): Connection => ({
  db,
  store,
  context: layerContext(store),
  schema
})

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

/** `read`: a read-only session; `change`: an existing store, never migrated; `write`: created or migrated if need be. */
type Access = "read" | "change" | "write"

interface Opened {
  readonly db: Database
  readonly store: (schema: string) => EventStore.EventStore
  readonly migrate: (schema: string) => Effect.Effect<Migrations.MigrationReport, StoreError>
}

const openPglite = (dataDir: string, access: Access) =>
  Effect.gen(function* () {
    // First of all: a directory another process owns is reported as such, whatever its files look like
    // yet (the lock touches nothing in the directory, so it is not created here).
    yield* lockDataDir(dataDir)
    if (access !== "write") {
      if (!existsSync(dataDir)) {
        return yield* new CommandFailed({
          message: `there is no database at ${dataDir}: the directory does not exist (create one with \`eventcore migrate --data-dir ${dataDir}\`)`
        })
      }
      if (!existsSync(join(dataDir, "PG_VERSION"))) {
        return yield* new CommandFailed({ message: `${dataDir} is not a PGlite data directory (it has no PG_VERSION)` })
      }
    } else {
      yield* createDataDir(dataDir)
    }
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
    if (access === "read") {
      yield* Effect.tryPromise({
        try: () => client.exec("set default_transaction_read_only = on"),
        catch: (cause) => new StoreError({ operation: "open", message: "cannot make the session read-only", cause })
      })
    }
    return {
      db: drizzlePglite({ client }),
      store: (schema) => PgliteEventStore.make(client, { schema }),
      migrate: (schema) => PgliteEventStore.migrate(client, { schema })
    } satisfies Opened
  })

/**
 * What is wrong with a PostgreSQL URL, found before anything is opened, as
 * the rest of a sentence about it (`--url ...`): a scheme other than
 * postgres:// or postgresql://, or what postgres.js cannot parse (it connects
 * on the first query, so parsing opens nothing). Never the URL itself: it may
 * hold a password.
 */
export const postgresUrlProblem = (url: string): string | undefined => {
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0]
    return `is not a PostgreSQL URL (${scheme === undefined ? "it has no scheme" : `it starts with ${scheme.toLowerCase()}`}); only postgres:// or postgresql:// URLs are accepted`
  }
  try {
    postgres(url, { onnotice: () => {} })
    return undefined
  } catch (cause) {
    return `is not a valid PostgreSQL URL (${cause instanceof Error ? cause.message : String(cause)})`
  }
}

/** `url` passed {@link postgresUrlProblem}. */
const openPostgres = (url: string, access: Access) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() =>
        postgres(url, {
          ...PostgresEventStore.poolOptions(),
          max: 4,
          connect_timeout: 10,
          onnotice: () => {},
          connection: {
            application_name: "eventcore-cli",
            ...(access === "read" ? { default_transaction_read_only: true } : {})
          }
        })
      ),
      (client) => Effect.promise(() => client.end({ timeout: 5 }))
    ),
    (client): Opened => ({
      db: drizzlePostgres({ client }),
      store: (schema) => PostgresEventStore.make(client, { schema }),
      migrate: (schema) => PostgresEventStore.migrate(client, { schema })
    })
  )

const open = (target: Target, access: Access) =>
  target.kind === "pglite" ? openPglite(target.dataDir, access) : openPostgres(target.url, access)

/** Opens the database and applies pending migrations (`migrate`, `demo`); closes it when the scope ends. */
export const connectForWriting = (
  target: Target,
  schema: string
): Effect.Effect<
  Connection & { readonly migration: Migrations.MigrationReport },
  StoreError | CommandFailed,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const opened = yield* open(target, "write")
    const migration = yield* opened.migrate(schema)
    return { ...connected(opened.db, opened.store(schema), schema), migration }
  })

type Present = Extract<Migrations.SchemaState, { readonly _tag: "Present" }>

type Checked = Effect.Effect<Connection & { readonly migrations: Present }, StoreError | CommandFailed, Scope.Scope>

/**
 * Opens the database read-only, after checking that it holds an eventcore
 * schema this release can read as `command` does (its tables, whole events
 * or snapshots: `reads`); says on stderr, naming `command`, when that schema
 * is behind or ahead of this release. Closes it when the scope ends.
 */
export const connectForReading = (
  target: Target,
  schema: string,
  command: string,
  reads: keyof typeof Migrations.readableFrom = "tables"
): Checked => connectExisting(target, schema, command, reads, "read")

/**
 * A change made through a function of eventcore's schema that only the
 * schema's owner may call unless it grants it (docs/erasure.md).
 */
export interface Privileged {
  /** The migration that made the function. */
  readonly migration: string
  /** The function, and the types of its arguments: `erase_subject` of `text, text`. */
  readonly name: string
  readonly args: string
  /** What calling it does, after "may not": `erase subjects`. */
  readonly does: string
}

/**
 * Whether `state` has applied every migration up to `tag`, so holds what
 * they made. Tags sort in the order of the migrations: they start with its
 * number, four digits.
 */
export const hasMigrated = (state: Present, tag: string) =>
  !state.legacy && state.pending.every((pending) => pending > tag)

/**
 * {@link connectForReading}, in a session that may write: for a command
 * that changes what a store keeps (`snapshots clear`; `erase`, `archive`,
 * `truncate` and `purge` through a {@link Privileged} function), never its
 * schema.
 */
export const connectForChanging = (
  target: Target,
  schema: string,
  command: string,
  needs: keyof typeof Migrations.readableFrom | Privileged
): Checked => connectExisting(target, schema, command, needs, "change")

/**
 * Fails, naming the session's role, unless it may call `change`'s function:
 * asked of the catalog before anything else, so a role that cannot even read
 * eventcore's schema is told what it lacks for the change. A schema without
 * the function passes, for the migrations' check to name.
 */
const mayCall = (db: Database, schema: string, change: Privileged) =>
  Effect.flatMap(
    Effect.tryPromise({
      try: async () =>
        rowsOf(
          // Without USAGE, looking the function up fails: it is looked up only with it. No schema, no answer.
          await db.execute(sql`select current_user as role, n.usage, case n.usage
                when true then coalesce(has_function_privilege(to_regprocedure(${`${quoted(schema)}.${change.name}(${change.args})`}), 'execute'), true)
                when false then false
              end as execute
            from (select bool_or(has_schema_privilege(oid, 'usage')) as usage from pg_namespace where nspname = ${schema}) n`)
        )[0],
      catch: (error) => storeError("open", error)
    }),
    (row) => {
      if (row === undefined || row.execute !== false) return Effect.void
      const needed = `EXECUTE on ${schema}.${change.name}`
      return new CommandFailed({
        message: `the role ${String(row.role)} may not ${change.does}: it needs ${row.usage === false ? `USAGE on schema ${schema} and ${needed}` : needed} (docs/erasure.md)`
      })
    }
  )

const connectExisting = (
  target: Target,
  schema: string,
  command: string,
  needs: keyof typeof Migrations.readableFrom | Privileged,
  access: Exclude<Access, "write">
): Checked =>
  Effect.gen(function* () {
    const opened = yield* open(target, access)
    if (typeof needs !== "string") yield* mayCall(opened.db, schema, needs)
    const state = yield* Migrations.inspect(opened.db, schema).pipe(
      Effect.catchIf(
        (error) => driverError(error.cause).code === insufficientPrivilege,
        (error) =>
          new CommandFailed({
            message: `this role may not read eventcore's migration history (${driverError(error.cause).message}): the command line needs USAGE on schema ${schema} and SELECT on ${schema}.migrations (docs/security.md)`
          })
      )
    )
    const where = describeTarget(target)
    if (state._tag === "Absent") {
      return yield* new CommandFailed({
        message: `${where} is not an eventcore database (no eventcore tables in schema "${schema}"): create them with \`eventcore migrate\` and the same connection options`
      })
    }
    if (state.pending.length > 0) {
      const behind = `${where} has eventcore's schema of an older release: pending migrations ${state.pending.join(", ")}`
      const ready = typeof needs === "string" ? state.readable[needs] : hasMigrated(state, needs.migration)
      if (!ready) {
        return yield* new CommandFailed({
          message: `${behind}, which this release needs ${typeof needs === "string" ? "to read it" : `to ${needs.does}`}: apply them with \`eventcore migrate\``
        })
      }
      yield* Console.error(
        `eventcore ${command}: ${behind} (apply them with \`eventcore migrate\`); reading it as it is`
      )
    }
    if (state.unknown > 0) {
      yield* Console.error(
        `eventcore ${command}: ${where} has eventcore's schema of a newer release (${state.unknown} migration${state.unknown === 1 ? "" : "s"} this command line does not know): this command line is older than the schema; upgrade it`
      )
    }
    return { ...connected(opened.db, opened.store(schema), schema), migrations: state }
  })
