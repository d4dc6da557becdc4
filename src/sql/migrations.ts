/**
 * Applies the drizzle-kit migrations in `drizzle/` to one schema, for both SQL
 * stores.
 *
 * drizzle's own migrator reads the applied history outside its transaction, so
 * two processes starting together could both apply the same migration. Here the
 * lock, the history and the migrations share one transaction: the first process
 * applies them, the others wait on the lock and then find nothing to do. The
 * history table has drizzle's layout and lives in the store's schema, apart from
 * the application's own drizzle history.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { type SQL, sql } from "drizzle-orm"
import { readMigrationFiles } from "drizzle-orm/migrator"
import { Effect } from "effect"
import { StoreError } from "../errors.js"
import type { Database } from "./driver.js"
import { storeError } from "./errors.js"
import { rowsOf } from "./rows.js"
import { storeStatements } from "./statements.js"

/**
 * `drizzle/` at the package root: two levels above this module in the
 * repository (src/sql/), three in the build (dist/src/sql/).
 */
export const migrationsFolder = ["../../drizzle", "../../../drizzle"]
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((folder) => existsSync(`${folder}/meta/_journal.json`)) as string

/** The migrations this release ships, in order: drizzle-kit's journal. */
const readJournal = () =>
  (
    JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, "utf8")) as {
      readonly entries: ReadonlyArray<{ readonly tag: string; readonly when: number }>
    }
  ).entries

/** Serializes migrations of one database across processes. */
const migrationLock = sql.raw("7310584986254749554")

/** Where releases before the own-schema migration (0004) kept their history; their objects were in `public`. */
const legacyHistory = "drizzle.__eventcore_migrations"
const legacyTables = ["eventcore_events", "eventcore_streams"]
const legacyFunctions = ["eventcore_refuse_change()", "eventcore_advance_streams()", "eventcore_append(jsonb)"]

export interface MigrationReport {
  /** The migrations this call applied, by file name; empty when the database was up to date. */
  readonly applied: ReadonlyArray<string>
}

const historyOf = (schema: string) => sql`${sql.identifier(schema)}.migrations`

export const migrate = (db: Database, schema: string): Effect.Effect<MigrationReport, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const migrations = readMigrationFiles({ migrationsFolder })
      const names = new Map(readJournal().map((entry) => [entry.when, entry.tag]))
      const history = historyOf(schema)
      return db.transaction(async (tx) => {
        const run = async (query: SQL) => rowsOf(await tx.execute(query))
        await run(sql`select pg_advisory_xact_lock(${migrationLock})`)
        const [found] = await run(
          sql`select to_regclass(quote_ident(${schema}) || '.migrations') is not null as current,
                     to_regclass(${legacyHistory}) is not null as legacy`
        )
        await run(sql`create schema if not exists ${sql.identifier(schema)}`)
        await run(
          sql`create table if not exists ${history} (id serial primary key, hash text not null, created_at bigint)`
        )
        if (found?.current !== true && found?.legacy === true) await adoptLegacy(run, schema)

        // Every migration names no schema: its objects are made in the store's.
        await run(sql`select set_config('search_path', quote_ident(${schema}), true)`)
        const last = (await run(sql`select max(created_at)::text as at from ${history}`))[0]?.at
        const appliedUntil = last === null || last === undefined ? -1 : Number(last)
        const applied: Array<string> = []
        for (const migration of migrations) {
          if (migration.folderMillis <= appliedUntil) continue
          for (const statement of migration.sql) await run(sql.raw(statement))
          await run(
            sql`insert into ${history} (hash, created_at) values (${migration.hash}, ${migration.folderMillis})`
          )
          applied.push(names.get(migration.folderMillis) ?? String(migration.folderMillis))
        }
        return { applied }
      })
    },
    catch: (error) => storeError("migrate", error)
  })

/**
 * A database migrated by a release before 0004 has eventcore's objects where
 * its search path put them (`public`, usually) and the history in
 * `drizzle.__eventcore_migrations`. Move both into the schema, events intact
 * (moving a table moves its rows, indexes, triggers, identity sequence and
 * grants), and let every role that could use the events table use the schema,
 * so an application role keeps working. 0004 then renames them.
 */
const adoptLegacy = async (run: (query: SQL) => Promise<ReadonlyArray<Record<string, unknown>>>, schema: string) => {
  const target = sql.identifier(schema)
  const [where] = await run(
    sql`select c.relnamespace::regnamespace::text as legacy_schema from pg_class c where c.oid = to_regclass('eventcore_events')`
  )
  const legacySchema = where?.legacy_schema
  if (typeof legacySchema === "string") {
    const from = sql.raw(legacySchema) // already quoted where needed: regnamespace's text form
    const grantees = await run(sql`
      select distinct coalesce(quote_ident(r.rolname), 'public') as grantee
      from pg_class c cross join lateral aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
      where c.oid = to_regclass('eventcore_events') and a.grantee <> c.relowner`)
    for (const table of legacyTables) {
      await run(sql`alter table ${from}.${sql.identifier(table)} set schema ${target}`)
    }
    for (const fn of legacyFunctions) await run(sql`alter function ${from}.${sql.raw(fn)} set schema ${target}`)
    for (const { grantee } of grantees) await run(sql`grant usage on schema ${target} to ${sql.raw(String(grantee))}`)
  }
  await run(
    sql`insert into ${historyOf(schema)} (hash, created_at) select hash, created_at from ${sql.raw(legacyHistory)} order by id`
  )
  await run(sql`drop table ${sql.raw(legacyHistory)}`)
}

/** What a database holds of eventcore in a schema, found without writing anything. */
export type SchemaState =
  /** No eventcore tables at all. */
  | { readonly _tag: "Absent" }
  | {
      readonly _tag: "Present"
      /** Tables of a release before the own schema (0.1.0), in `public`: migrating moves them. */
      readonly legacy: boolean
      /** Migrations this release ships that the database has not applied, by file name. */
      readonly pending: ReadonlyArray<string>
      /** Migrations the database has applied that this release does not know: it is newer. */
      readonly unknown: number
      /** Whether the schema has every migration each of this release's reads needs (see `readableFrom`). */
      readonly readable: { readonly [Reads in keyof typeof readableFrom]: boolean }
    }

/**
 * The newest migration that this release's reads need, by what they read: a
 * database that has applied it can be read so, whatever later migrations are
 * pending. Reads of whole events need each event's schema version; those of
 * commands' snapshots, their table; those of a stream, its state.
 */
export const readableFrom = {
  tables: "0004_own_schema",
  events: "0010_event_schema_versions",
  snapshots: "0011_snapshots",
  /** A stream's events: its read also reads whether the stream is archived or truncated. */
  streams: "0014_stream_lifecycle"
} as const

export const inspect = (db: Database, schema: string): Effect.Effect<SchemaState, StoreError> =>
  Effect.tryPromise({
    try: async (): Promise<SchemaState> => {
      const run = async (query: SQL) => rowsOf(await db.execute(query))
      const [found] = await run(
        sql`select to_regclass(quote_ident(${schema}) || '.migrations') is not null as current,
                   to_regclass(${legacyHistory}) is not null as legacy`
      )
      const legacy = found?.current !== true && found?.legacy === true
      if (found?.current !== true && !legacy) return { _tag: "Absent" }
      const history = legacy ? sql.raw(legacyHistory) : historyOf(schema)
      const applied = new Set(
        (await run(sql`select created_at::text as at from ${history}`)).map((row) => Number(row.at))
      )
      const journal = readJournal()
      const known = new Set(journal.map((entry) => entry.when))
      const hasUpTo = (tag: string) =>
        !legacy &&
        journal.slice(0, journal.findIndex((entry) => entry.tag === tag) + 1).every((entry) => applied.has(entry.when))
      return {
        _tag: "Present",
        legacy,
        pending: journal.filter((entry) => !applied.has(entry.when)).map((entry) => entry.tag),
        unknown: [...applied].filter((at) => !known.has(at)).length,
        readable: {
          tables: hasUpTo(readableFrom.tables),
          events: hasUpTo(readableFrom.events),
          snapshots: hasUpTo(readableFrom.snapshots),
          streams: hasUpTo(readableFrom.streams)
        }
      }
    },
    catch: (error) => storeError("inspect", error)
  })

/**
 * Transaction ids order the global log, and they are only ordered within one
 * cluster's history: a store dumped and restored into another cluster (or
 * copied there by logical replication) keeps ids that the new server has not
 * reached yet, and its new events would be ordered before the old ones, which
 * readers would skip. Refuses such a store, saying how to fix the server.
 */
export const checkTransactionIds = (db: Database, schema: string): Effect.Effect<void, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const [row] = rowsOf(await db.execute(sql.raw(storeStatements(schema).transactionIds)))
      return { stored: row?.stored === null ? undefined : BigInt(String(row?.stored)), next: BigInt(String(row?.next)) }
    },
    catch: (error) => storeError("open", error)
  }).pipe(
    Effect.flatMap(({ stored, next }) => {
      if (stored === undefined || stored < next) return Effect.void
      const epoch = (stored >> 32n) + 1n
      return Effect.fail(
        new StoreError({
          operation: "open",
          message: `The events in schema "${schema}" were written by transactions up to ${stored}, but this server's next transaction id is ${next}: the database was restored into another cluster, whose transaction ids are behind. New events would be ordered before stored ones in the global log, and its readers would skip them. Before using this store, move the server's transaction ids past the stored ones: stop the server and run pg_resetwal --epoch=${epoch} on its data directory (docs/global-log.md, "Restoring a backup").`
        })
      )
    })
  )
