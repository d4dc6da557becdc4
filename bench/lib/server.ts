/**
 * The PostgreSQL server the bench runs on: scratch databases and the settings
 * that shape the results.
 */
import postgres from "postgres"

export interface ServerInfo {
  readonly version: string
  readonly serverVersion: string
  readonly settings: Readonly<Record<string, string>>
}

const reported = [
  "synchronous_commit",
  "shared_buffers",
  "fsync",
  "wal_level",
  "max_connections",
  "work_mem",
  "effective_io_concurrency",
  "commit_delay",
  // Whether a statement whose estimated cost passes jit_above_cost is compiled on each execution (see W13).
  "jit"
] as const

/** The URL of `database` on the server of `url`. */
export const urlOf = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** Creates and drops scratch databases through one admin connection. */
export const adminOf = (url: string) => {
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  const created = new Set<string>()
  return {
    create: async (database: string): Promise<string> => {
      await admin.unsafe(`drop database if exists "${database}" with (force)`)
      await admin.unsafe(`create database "${database}"`)
      created.add(database)
      return urlOf(url, database)
    },
    drop: async (database: string): Promise<void> => {
      await admin.unsafe(`drop database if exists "${database}" with (force)`)
      created.delete(database)
    },
    /** Ends every session on `database` (a reader stopped mid-query leaves its query running otherwise). */
    terminate: async (database: string): Promise<void> => {
      await admin`select pg_terminate_backend(pid) from pg_stat_activity
                  where datname = ${database} and pid <> pg_backend_pid()`
    },
    /** Drops every database this admin created and closes the connection. */
    close: async (): Promise<void> => {
      for (const database of [...created]) await admin.unsafe(`drop database if exists "${database}" with (force)`)
      created.clear()
      await admin.end({ timeout: 5 })
    },
    info: async (): Promise<ServerInfo> => {
      const [row] = await admin<[{ version: string; server_version: string }]>`
        select version() as version, current_setting('server_version') as server_version`
      const rows = await admin<Array<{ name: string; setting: string }>>`
        select name, current_setting(name) as setting from pg_settings where name = any(${[...reported]})`
      return {
        version: row?.version ?? "unknown",
        serverVersion: row?.server_version ?? "unknown",
        settings: Object.fromEntries(rows.map((r) => [r.name, r.setting]))
      }
    }
  }
}

export type Admin = ReturnType<typeof adminOf>
