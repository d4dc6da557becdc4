/**
 * Read-only queries for operators (the `eventcore` command line): what streams
 * there are, how big the store is, and which snapshots of command state it
 * keeps.
 */
import { count, desc, gt, sql } from "drizzle-orm"
import { Effect } from "effect"
import type { StoreError } from "../errors.js"
import type { Database } from "./driver.js"
import { storeError } from "./errors.js"
import { rowsOf } from "./rows.js"
import { tablesIn } from "./schema.js"
import { snapshotStatements } from "./statements.js"

export interface StreamSummary {
  readonly streamId: string
  readonly version: number
}

/** Streams with at least one event, in id order; `prefix` is matched literally (no wildcards). */
export const listStreams = (
  db: Database,
  schema: string,
  options: { readonly prefix?: string; readonly limit: number }
): Effect.Effect<ReadonlyArray<StreamSummary>, StoreError> => {
  const { streams } = tablesIn(schema)
  return Effect.tryPromise({
    try: () =>
      db
        .select({ streamId: streams.streamId, version: streams.version })
        .from(streams)
        .where(
          options.prefix === undefined
            ? gt(streams.version, 0)
            : sql`${streams.version} > 0 and starts_with(${streams.streamId}, ${options.prefix})`
        )
        .orderBy(sql`${streams.streamId} collate "C"`)
        .limit(options.limit),
    catch: (error) => storeError("list_streams", error)
  })
}

export interface StoreStats {
  readonly events: number
  readonly streams: number
  readonly eventsPerType: ReadonlyArray<{ readonly eventType: string; readonly count: number }>
  readonly databaseBytes: number
}

export const stats = (db: Database, schema: string): Effect.Effect<StoreStats, StoreError> => {
  const { events, streams } = tablesIn(schema)
  return Effect.tryPromise({
    try: async () => {
      const [totals] = await db
        .select({
          streams: sql<number>`count(*) filter (where ${streams.version} > 0)`.mapWith(Number),
          events: sql<number>`coalesce(sum(${streams.version}), 0)`.mapWith(Number),
          databaseBytes: sql<number>`pg_database_size(current_database())`.mapWith(Number)
        })
        .from(streams)
      const perType = await db
        .select({ eventType: events.eventType, count: count() })
        .from(events)
        .groupBy(events.eventType)
        .orderBy(desc(count()), events.eventType)
      return {
        events: totals?.events ?? 0,
        streams: totals?.streams ?? 0,
        eventsPerType: perType,
        databaseBytes: totals?.databaseBytes ?? 0
      }
    },
    catch: (error) => storeError("stats", error)
  })
}

/** The snapshots of one command built from the same state and event versions. */
export interface SnapshotSummary {
  readonly command: string
  /** The version of the state's meaning they were written with (`Snapshot.make`'s `version`). */
  readonly stateVersion: number
  /** How the command's event schema read the events they fold (`Codec.fingerprint`). */
  readonly eventVersions: string
  /** How many: one per set of streams the command was run on. */
  readonly count: number
  /** When the newest of them was written. */
  readonly updatedAt: Date
}

/** Every command's snapshots, by command (in code point order), state version and event versions. */
export const listSnapshots = (
  db: Database,
  schema: string
): Effect.Effect<ReadonlyArray<SnapshotSummary>, StoreError> =>
  Effect.tryPromise({
    try: async () =>
      rowsOf(await db.execute(sql.raw(snapshotStatements(schema).list))).map(
        (row): SnapshotSummary => ({
          command: String(row.command),
          stateVersion: Number(row.state_version),
          eventVersions: String(row.event_versions),
          count: Number(row.count),
          updatedAt: new Date(String(row.updated_at))
        })
      ),
    catch: (error) => storeError("list_snapshots", error)
  })
