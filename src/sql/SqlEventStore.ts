/**
 * The event store over the Drizzle schema, shared line for line by the
 * PostgreSQL and PGlite stores: only the database handle differs.
 */
import { and, eq, fillPlaceholders, gte, sql } from "drizzle-orm"
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core"
import { Clock, Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import * as EventStore from "../EventStore.js"
import * as ExpectedVersion from "../ExpectedVersion.js"
import type { DuplicateEventId, StoreError } from "../errors.js"
import { VersionConflict } from "../errors.js"
import { uuidv7 } from "../internal/uuid.js"
import type { StreamId } from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import { isRacedWrite, parseDuplicateEventId, parseVersionConflict, storeError } from "./errors.js"
import { type Tables, tablesIn } from "./schema.js"

// biome-ignore lint/suspicious/noExplicitAny: any Drizzle PostgreSQL database, whatever its driver and schema
export type Database = PgDatabase<PgQueryResultHKT, any>

/**
 * Wraps every database call: the PostgreSQL store bounds how many run at once
 * (its pool), the PGlite store gives the event loop a turn after each.
 */
export type Gate = <A>(operation: string, run: Effect.Effect<A, StoreError>) => Effect.Effect<A, StoreError>

const ungated: Gate = (_, run) => run

/** Rows of a raw `execute`: postgres.js returns an array, PGlite `{ rows }`. */
export const rowsOf = (result: unknown): ReadonlyArray<Record<string, unknown>> =>
  Array.isArray(result) ? result : (result as { rows: ReadonlyArray<Record<string, unknown>> }).rows

interface AppendReply {
  readonly versions: ReadonlyArray<number>
  readonly positions: ReadonlyArray<string>
  readonly recordedAt: number
}

/** A schema name as an SQL identifier. */
const quoted = (schema: string) => `"${schema.replaceAll('"', '""')}"`

/** The statements of a store in `schema` that are not built from its Drizzle tables. */
export const statementsIn = (schema: string) => ({
  /** The append: one statement, one round trip (see drizzle/0004_own_schema.sql). */
  append: `select ${quoted(schema)}.append($1::text::jsonb) as reply`,
  /** The participants' current versions, for `diagnoseConflict`: the ids as one JSON array of strings. */
  conflict: `select stream_id, version from ${quoted(schema)}.streams where stream_id in (select jsonb_array_elements_text($1::text::jsonb))`
})

/**
 * Runs one of the store's two hot statements (the append, and the read built
 * below), or the conflict diagnosis, as the driver's own prepared statement,
 * returning rows as arrays of the driver's values. Through drizzle's `execute`
 * the append would be described anew on every call (a second round trip on
 * postgres.js), and drizzle's row mapping costs as much CPU as the rest of a
 * read.
 */
export type RunPrepared = (
  statement: string,
  params: ReadonlyArray<unknown>
) => Promise<ReadonlyArray<ReadonlyArray<unknown>>>

/** postgres.js gives int8 as text, PGlite as bigint; timestamptz as text under drizzle's parsers, or a Date. */
const toBigInt = (value: unknown): bigint => BigInt(value as string | bigint)
const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string))

export interface SqlStoreOptions {
  /** The PostgreSQL schema holding eventcore's tables and functions. */
  readonly schema: string
  readonly runPrepared: RunPrepared
  readonly gate?: Gate
}

export const make = (db: Database, options: SqlStoreOptions): EventStore.EventStore => {
  const gate = options.gate ?? ungated
  const { events, streams }: Tables = tablesIn(options.schema)
  const statements = statementsIn(options.schema)

  const query = <A>(operation: string, run: () => Promise<A>) =>
    gate(operation, Effect.tryPromise({ try: run, catch: (error) => storeError(operation, error) }))

  // One statement: the stream's row (for its version), and laterally the
  // requested range of its events, walked in order along the
  // (stream_id, stream_version) index so that a page costs the same at the
  // start and at the end of a long stream.
  const page = db
    .select({
      eventId: events.eventId,
      streamVersion: events.streamVersion,
      globalPosition: events.globalPosition,
      eventType: events.eventType,
      data: events.data,
      metadata: events.metadata,
      recordedAt: events.recordedAt
    })
    .from(events)
    .where(and(eq(events.streamId, streams.streamId), gte(events.streamVersion, sql.placeholder("fromVersion"))))
    .orderBy(events.streamVersion)
    .limit(sql.placeholder("limit"))
    .as("page")
  const readQuery = db
    .select({
      version: streams.version,
      eventId: page.eventId,
      streamVersion: page.streamVersion,
      globalPosition: page.globalPosition,
      eventType: page.eventType,
      data: page.data,
      metadata: page.metadata,
      recordedAt: page.recordedAt
    })
    .from(streams)
    .leftJoinLateral(page, sql`true`)
    .where(eq(streams.streamId, sql.placeholder("streamId")))
    .orderBy(page.streamVersion)
    .toSQL()

  const read = (streamId: StreamId, fromVersion: number, limit: number) =>
    query("read_stream", () =>
      options.runPrepared(
        readQuery.sql,
        // A limit of 0 would return no row at all, and with it no version.
        fillPlaceholders(readQuery.params, { streamId, fromVersion, limit: Math.max(limit, 1) })
      )
    ).pipe(
      Effect.map((rows) => {
        // Columns in the order selected above; a stream without (further) events is one row of nulls but its version.
        const version = (rows[0]?.[0] as number | undefined) ?? 0
        const recorded: Array<RecordedEvent> = []
        if (limit > 0) {
          for (const [, eventId, streamVersion, globalPosition, eventType, data, metadata, recordedAt] of rows) {
            if (eventId === null) continue
            recorded.push({
              eventId: eventId as string,
              streamId,
              streamVersion: streamVersion as number,
              globalPosition: toBigInt(globalPosition),
              eventType: eventType as string,
              data,
              metadata: metadata as Record<string, unknown>,
              recordedAt: toDate(recordedAt)
            })
          }
        }
        return { version, events: recorded }
      })
    )

  /**
   * After a raced write, the current versions tell which participant conflicted.
   * The ids go as one JSON text parameter, not as an array: postgres.js
   * serializes an array only for the array types it fetched from the server's
   * catalog, and the PostgreSQL store's pool fetches none (`fetch_types: false`).
   */
  const diagnoseConflict = (participants: ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>) =>
    query("append", () =>
      options.runPrepared(statements.conflict, [JSON.stringify(participants.map(([id]) => id))])
    ).pipe(
      Effect.map((rows) => {
        const current = new Map(rows.map(([streamId, version]) => [streamId as string, version as number]))
        const sorted = [...participants].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
        const [streamId, expected] =
          sorted.find(([id, exp]) => !ExpectedVersion.isSatisfiedBy(exp, current.get(id) ?? 0)) ??
          (sorted[0] as readonly [StreamId, ExpectedVersion.ExpectedVersion])
        return new VersionConflict({ streamId, expected, actual: current.get(streamId) ?? 0 })
      })
    )

  const append = (writes: StreamWrites.StreamWrites) =>
    Effect.gen(function* () {
      const participants = StreamWrites.participants(writes)
      const newEvents = StreamWrites.events(writes)
      const now = yield* Clock.currentTimeMillis
      const eventIds = newEvents.map((event) => event.eventId?.toLowerCase() ?? uuidv7(now))
      const request = JSON.stringify({
        streams: participants.map(([id, expected]) => ({ id, expected })),
        events: newEvents.map((event, i) => ({
          stream: event.streamId,
          id: eventIds[i],
          type: event.eventType,
          data: event.data,
          metadata: event.metadata ?? {}
        }))
      })

      const outcome = yield* Effect.either(query("append", () => options.runPrepared(statements.append, [request])))
      if (outcome._tag === "Left") {
        const error = outcome.left
        const failure: VersionConflict | DuplicateEventId | undefined =
          parseVersionConflict(error.cause) ?? parseDuplicateEventId(error.cause)
        if (failure !== undefined) return yield* Effect.fail(failure)
        if (isRacedWrite(error.cause)) return yield* Effect.flatMap(diagnoseConflict(participants), Effect.fail)
        return yield* Effect.fail(error)
      }

      const raw = outcome.right[0]?.[0]
      const reply = (typeof raw === "string" ? JSON.parse(raw) : raw) as AppendReply
      const streamVersions = new Map<StreamId, number>(
        participants.map(([id], i) => [id, reply.versions[i] as number] as const)
      )
      // Each stream's events end at its new version: number them back from there.
      const remaining = new Map<StreamId, number>()
      for (const event of newEvents) remaining.set(event.streamId, (remaining.get(event.streamId) ?? 0) + 1)
      const recordedAt = new Date(reply.recordedAt)
      const recorded = newEvents.map((event, i): RecordedEvent => {
        const left = remaining.get(event.streamId) as number
        remaining.set(event.streamId, left - 1)
        return {
          eventId: eventIds[i] as string,
          streamId: event.streamId,
          streamVersion: (streamVersions.get(event.streamId) as number) - left + 1,
          globalPosition: BigInt(reply.positions[i] as string),
          eventType: event.eventType,
          data: event.data,
          metadata: event.metadata ?? {},
          recordedAt
        }
      })
      return { streamVersions, events: recorded } satisfies EventStore.AppendResult
    })

  return EventStore.make({ attributes: { "db.system": "postgresql" }, read, append })
}
