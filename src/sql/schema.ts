/**
 * The tables of the SQL stores, shared by PostgreSQL and PGlite.
 *
 * They live in a PostgreSQL schema of eventcore's own (`eventcore` unless a
 * store is given another), beside the application's tables but out of sight of
 * the application's drizzle-kit, which only looks at `public` by default. The
 * migrations in `drizzle/` name no schema: the migrator applies them with the
 * store's schema first on the search path, so one set of migrations serves any
 * schema name. drizzle-kit generates them from `migrationTables.ts`, the same
 * definitions without a schema; the append function and the triggers that
 * enforce the rules are custom migrations beside them.
 */
import { sql } from "drizzle-orm"
import {
  bigint,
  check,
  customType,
  index,
  integer,
  jsonb,
  type PgTableFn,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid
} from "drizzle-orm/pg-core"

/** Where eventcore's tables, functions and migration history live unless a store names another schema. */
export const defaultSchema = "eventcore"

/** Raw bytes; eventcore's statements move them as base64 text (`encode` / `decode`), the same on both drivers. */
const bytea = customType<{ data: string; driverData: string }>({ dataType: () => "bytea" })

/** PostgreSQL's 64-bit transaction id, as returned by `pg_current_xact_id()`. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => "xid8" })

/** eventcore's tables, made by `table` (a schema's, or drizzle's schema-less `pgTable`). */
export const define = <Schema extends string | undefined>(table: PgTableFn<Schema>) => ({
  /** The events, append-only: triggers refuse UPDATE, DELETE and TRUNCATE. */
  events: table(
    "events",
    {
      globalPosition: bigint("global_position", { mode: "bigint" })
        .primaryKey()
        .generatedAlwaysAsIdentity({ name: "eventcore_events_global_position_seq" }),
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
      transactionId: xid8("transaction_id").notNull().default(sql`pg_current_xact_id()`),
      /**
       * The version of its type's schema the event was encoded with (see
       * `NewEvent.schemaVersion`): events stored before the column existed
       * were written with the first.
       */
      schemaVersion: integer("schema_version").notNull().default(1)
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
      check("eventcore_events_schema_version_positive", sql`${table.schemaVersion} >= 1`),
      check("eventcore_events_metadata_object", sql`jsonb_typeof(${table.metadata}) = 'object'`)
    ]
  ),

  /**
   * One row per projection or reactor: how far it has followed the global log
   * (its checkpoint, moved by compare-and-set in the transaction of each
   * batch), whether it runs, which instance owns it, its last error.
   */
  projections: table(
    "projections",
    {
      name: text("name").primaryKey(),
      kind: text("kind").notNull(),
      position: text("position").notNull(),
      status: text("status").notNull(),
      owner: text("owner"),
      error: text("error"),
      updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
      /** The event types it handles as its last run declared them, a JSON array (null: every type): what its lag counts. */
      eventTypes: jsonb("event_types"),
      /** The stream prefix it handles as its last run declared it (null: every stream). */
      streamPrefix: text("stream_prefix"),
      /**
       * Instances standing by to take it over, each with when it began: an
       * object of instance name -> time. An entry whose instance no longer
       * holds its lock (src/sql/checkpoints.ts) is one that ended.
       */
      standbys: jsonb("standbys").notNull().default({})
    },
    (table) => [
      check("eventcore_projections_kind", sql`${table.kind} in ('projection', 'reactor')`),
      check("eventcore_projections_status", sql`${table.status} in ('running', 'stopped', 'failed')`),
      check("eventcore_projections_position", sql`${table.position} ~ '^[0-9]{20}-[0-9]{19}$'`),
      check("eventcore_projections_event_types", sql`jsonb_typeof(${table.eventTypes}) = 'array'`),
      check("eventcore_projections_standbys", sql`jsonb_typeof(${table.standbys}) = 'object'`)
    ]
  ),

  /** Events a projection or reactor skipped after its handler failed (`onError: "skip"`), with the error. */
  deadLetters: table(
    "dead_letters",
    {
      id: bigint("id", { mode: "bigint" }).primaryKey().generatedAlwaysAsIdentity(),
      projection: text("projection").notNull(),
      eventId: uuid("event_id").notNull(),
      position: text("position").notNull(),
      eventType: text("event_type").notNull(),
      error: text("error").notNull(),
      recordedAt: timestamp("recorded_at", { withTimezone: true, mode: "date" }).notNull().defaultNow()
    },
    (table) => [index("eventcore_dead_letters_projection").on(table.projection, table.id)]
  ),

  /**
   * Snapshots of commands' folded state: a cache, never a source of truth
   * (deleting every row changes no result). One row per command and set of
   * streams it declares; a newer snapshot replaces an older one, never the
   * reverse (see `saveSnapshot` in statements.ts).
   */
  snapshots: table(
    "snapshots",
    {
      command: text("command").notNull(),
      /** The streams the command declares, in order, as a SHA-256 of their JSON array (`streams` names them). */
      key: text("key").notNull(),
      /** The version of the state's meaning the application declared (`Snapshot.make`'s `version`). */
      stateVersion: integer("state_version").notNull(),
      /** How the command's event schema read stored events when the state was folded (`Codec.fingerprint`). */
      eventVersions: text("event_versions").notNull(),
      /** Every stream the state covers, in the order they were folded, each at its version: `[[id, version], ...]`. */
      streams: jsonb("streams").notNull(),
      /** How many events the state covers (the sum of its streams' versions): which of two snapshots is newer. */
      covered: bigint("covered", { mode: "bigint" }).notNull(),
      /** The state, encoded by the command's state schema. */
      state: jsonb("state").notNull(),
      updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow()
    },
    (table) => [
      primaryKey({ name: "eventcore_snapshots_pkey", columns: [table.command, table.key] }),
      check("eventcore_snapshots_streams", sql`jsonb_typeof(${table.streams}) = 'array'`),
      check("eventcore_snapshots_state_version_positive", sql`${table.stateVersion} >= 1`)
    ]
  ),

  /**
   * The key of each data subject whose personal fields events hold
   * (AES-256-GCM, see PersonalData.ts). Erasing a subject deletes its row
   * (`erase_subject`): its fields can then no longer be read anywhere.
   */
  subjectKeys: table(
    "subject_keys",
    {
      subject: text("subject").primaryKey(),
      key: bytea("key").notNull(),
      createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow()
    },
    (table) => [check("eventcore_subject_keys_key_length", sql`octet_length(${table.key}) = 32`)]
  ),

  /** Who erased which subject, and when: the audit of erasures, free of personal data. */
  erasures: table("erasures", {
    subject: text("subject").primaryKey(),
    erasedBy: text("erased_by").notNull(),
    erasedAt: timestamp("erased_at", { withTimezone: true, mode: "date" }).notNull().defaultNow()
  }),

  /**
   * Streams out of the ordinary life of appends and reads (a row only for
   * those): archived (no longer read or appended to; `archive_stream`), or
   * truncated (read from `truncated_before` on; `truncate_stream`, and
   * `purge_truncated` removes the events before it).
   */
  streamStates: table(
    "stream_states",
    {
      streamId: text("stream_id").primaryKey(),
      archivedAt: timestamp("archived_at", { withTimezone: true, mode: "date" }),
      truncatedBefore: bigint("truncated_before", { mode: "number" }).notNull().default(1)
    },
    (table) => [check("eventcore_stream_states_truncated_before", sql`${table.truncatedBefore} >= 1`)]
  )
})

export type Tables = ReturnType<typeof tablesIn>

/**
 * Every stream with its current version: a view over the events (streams
 * have no row of their own; see the view `streams` in docs/schema.sql).
 */
const streamsView = (schema: string) =>
  pgSchema(schema)
    .view("streams", { streamId: text("stream_id").notNull(), version: integer("version").notNull() })
    .existing()

/** eventcore's tables in `schema`, and the `streams` view. */
export const tablesIn = (schema: string) => ({ ...define(pgSchema(schema).table), streams: streamsView(schema) })
