/**
 * The tables of the SQL stores, shared by PostgreSQL and PGlite. drizzle-kit
 * generates the migrations in `drizzle/` from this file; the append function
 * and the triggers that enforce the rules live in custom migrations beside them.
 */
import { sql } from "drizzle-orm"
import {
  bigint,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid
} from "drizzle-orm/pg-core"

/** PostgreSQL's 64-bit transaction id, as returned by `pg_current_xact_id()`. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => "xid8" })

/**
 * One row per stream: its current version. Appends lock these rows (in a fixed
 * order) to serialize writers of the same streams, read-only participants
 * included. A row at version 0 is a stream that was locked but never written.
 */
export const streams = pgTable(
  "eventcore_streams",
  {
    streamId: text("stream_id").primaryKey(),
    version: integer("version").notNull()
  },
  (table) => [check("eventcore_streams_version_not_negative", sql`${table.version} >= 0`)]
)

export const events = pgTable(
  "eventcore_events",
  {
    globalPosition: bigint("global_position", { mode: "bigint" }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: uuid("event_id").notNull().unique("eventcore_events_event_id_unique"),
    streamId: text("stream_id").notNull(),
    streamVersion: integer("stream_version").notNull(),
    eventType: text("event_type").notNull(),
    data: jsonb("data").notNull(),
    metadata: jsonb("metadata").notNull().default({}),
    recordedAt: timestamp("recorded_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    /**
     * The writing transaction. A global-log reader stops before the oldest
     * transaction still running, so it never skips an event committed late.
     */
    transactionId: xid8("transaction_id").notNull().default(sql`pg_current_xact_id()`)
  },
  (table) => [
    uniqueIndex("eventcore_events_stream_version_unique").on(table.streamId, table.streamVersion),
    index("eventcore_events_transaction_position").on(table.transactionId, table.globalPosition),
    check("eventcore_events_stream_version_positive", sql`${table.streamVersion} >= 1`),
    check(
      "eventcore_events_stream_id_length",
      sql`char_length(${table.streamId}) between 1 and 255 and ${table.streamId} = btrim(${table.streamId})`
    ),
    check("eventcore_events_event_type_not_empty", sql`${table.eventType} <> ''`),
    check("eventcore_events_metadata_object", sql`jsonb_typeof(${table.metadata}) = 'object'`)
  ]
)
