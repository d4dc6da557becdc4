/**
 * The event store over the Drizzle schema, shared line for line by the
 * PostgreSQL and PGlite stores: only the database handle differs.
 */
import { and, eq, gte, sql } from "drizzle-orm"
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
import { events, streams } from "./schema.js"

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
  Array.isArray(result) ? result : ((result as { rows: ReadonlyArray<Record<string, unknown>> }).rows ?? [])

interface AppendReply {
  readonly versions: ReadonlyArray<number>
  readonly positions: ReadonlyArray<string>
  readonly recordedAt: number
}

/** The append: one statement, one round trip (see drizzle/0001_append_and_guards.sql). */
export const appendStatement = "select eventcore_append($1::text::jsonb) as reply"

/**
 * Runs `appendStatement` with the request as its one parameter. Each store
 * passes its driver's prepared-statement call: through drizzle's `execute` the
 * statement would be described anew each time, a second round trip.
 */
export type CallAppend = (request: string) => Promise<unknown>

export const make = (
  db: Database,
  options: { readonly callAppend: CallAppend; readonly gate?: Gate }
): EventStore.EventStore => {
  const gate = options.gate ?? ungated

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
  const readStatement = db
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
    .prepare("eventcore_read_stream")

  const read = (streamId: StreamId, fromVersion: number, limit: number) =>
    // A limit of 0 would return no row at all, and with it no version.
    query("read_stream", () => readStatement.execute({ streamId, fromVersion, limit: Math.max(limit, 1) })).pipe(
      Effect.map((rows) => {
        const version = rows[0]?.version ?? 0
        const recorded: Array<RecordedEvent> = []
        if (limit > 0) {
          for (const row of rows) {
            if (row.eventId === null || row.streamVersion === null || row.globalPosition === null) continue
            recorded.push({
              eventId: row.eventId,
              streamId,
              streamVersion: row.streamVersion,
              globalPosition: row.globalPosition,
              eventType: row.eventType as string,
              data: row.data,
              metadata: row.metadata as Record<string, unknown>,
              recordedAt: row.recordedAt as Date
            })
          }
        }
        return { version, events: recorded }
      })
    )

  /** After a raced write, the current versions tell which participant conflicted. */
  const diagnoseConflict = (participants: ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>) =>
    query("append", () =>
      db
        .select({ streamId: streams.streamId, version: streams.version })
        .from(streams)
        .where(sql`${streams.streamId} = any(${sql.param(participants.map(([id]) => id))}::text[])`)
    ).pipe(
      Effect.map((rows) => {
        const current = new Map(rows.map((row) => [row.streamId, row.version]))
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

      const outcome = yield* Effect.either(query("append", () => options.callAppend(request)))
      if (outcome._tag === "Left") {
        const error = outcome.left
        const failure: VersionConflict | DuplicateEventId | undefined =
          parseVersionConflict(error.cause) ?? parseDuplicateEventId(error.cause)
        if (failure !== undefined) return yield* Effect.fail(failure)
        if (isRacedWrite(error.cause)) return yield* Effect.flatMap(diagnoseConflict(participants), Effect.fail)
        return yield* Effect.fail(error)
      }

      const raw = rowsOf(outcome.right)[0]?.reply
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
