/**
 * Where the drizzle-kit migrations live and how their progress is recorded.
 */
import { fileURLToPath } from "node:url"
import type { MigrationConfig } from "drizzle-orm/migrator"

/**
 * `drizzle/` sits beside `src/` in the repository and beside `dist/` in the
 * package, so one path serves both.
 */
export const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url))

/**
 * A table of eventcore's own, so an application that also migrates with
 * drizzle keeps its history apart from ours.
 */
export const migrationConfig: MigrationConfig = {
  migrationsFolder,
  migrationsSchema: "drizzle",
  migrationsTable: "__eventcore_migrations"
}

/** Serializes migrations of one database across processes (`pg_advisory_lock`). */
export const migrationLockKey = 7_310_584_986_254_749_554n
