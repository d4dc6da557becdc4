/**
 * Applies the drizzle-kit migrations in `drizzle/`, for both SQL stores.
 *
 * drizzle's own migrator reads the applied history outside its transaction, so
 * two processes starting together could both apply the same migration. Here the
 * lock, the history and the migrations share one transaction: the first process
 * applies them, the others wait on the lock and then find nothing to do. The
 * history table has drizzle's layout, under a name of eventcore's own so an
 * application's drizzle history stays apart.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { sql } from "drizzle-orm"
import { readMigrationFiles } from "drizzle-orm/migrator"
import { Effect } from "effect"
import type { StoreError } from "../errors.js"
import { storeError } from "./errors.js"
import { type Database, rowsOf } from "./SqlEventStore.js"

/**
 * `drizzle/` at the package root: two levels above this module in the
 * repository (src/sql/), three in the build (dist/src/sql/).
 */
export const migrationsFolder = ["../../drizzle", "../../../drizzle"]
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((folder) => existsSync(`${folder}/meta/_journal.json`)) as string

const history = sql`drizzle.__eventcore_migrations`

/** Serializes migrations of one database across processes. */
const lockKey = sql.raw("7310584986254749554")

export interface MigrationReport {
  /** The migrations this call applied, by file name; empty when the database was up to date. */
  readonly applied: ReadonlyArray<string>
}

export const migrate = (db: Database): Effect.Effect<MigrationReport, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const migrations = readMigrationFiles({ migrationsFolder })
      const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, "utf8")) as {
        readonly entries: ReadonlyArray<{ readonly tag: string; readonly when: number }>
      }
      const names = new Map(journal.entries.map((entry) => [entry.when, entry.tag]))
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${lockKey})`)
        await tx.execute(sql`create schema if not exists drizzle`)
        await tx.execute(
          sql`create table if not exists ${history} (id serial primary key, hash text not null, created_at bigint)`
        )
        const last = rowsOf(await tx.execute(sql`select max(created_at)::text as at from ${history}`))[0]?.at
        const appliedUntil = last === null || last === undefined ? -1 : Number(last)
        const applied: Array<string> = []
        for (const migration of migrations) {
          if (migration.folderMillis <= appliedUntil) continue
          for (const statement of migration.sql) await tx.execute(sql.raw(statement))
          await tx.execute(
            sql`insert into ${history} (hash, created_at) values (${migration.hash}, ${migration.folderMillis})`
          )
          applied.push(names.get(migration.folderMillis) ?? String(migration.folderMillis))
        }
        return { applied }
      })
    },
    catch: (error) => storeError("migrate", error)
  })
