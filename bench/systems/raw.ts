/**
 * The baseline: the least a correct client of plain postgres.js would do for
 * the same work, one round trip per operation.
 *
 * `bench_raw_events` has eventcore.events' columns, checks and indexes, but no
 * triggers and no streams table. An append is one `INSERT ... SELECT` that
 * numbers the events on from the expected version and inserts nothing unless
 * the stream is at that version; 0 rows inserted, or a unique violation on
 * (stream_id, stream_version) from a concurrent writer, is a conflict.
 * Statements are prepared (postgres.js' default).
 */
import { randomUUID } from "node:crypto"
import postgres from "postgres"
import type { BenchEvent, SeedStream, System } from "./system.js"

const schema = [
  `create table if not exists bench_raw_events (
    global_position bigint generated always as identity primary key,
    event_id uuid not null unique,
    stream_id text not null,
    stream_version integer not null,
    event_type text not null,
    data jsonb not null,
    metadata jsonb not null default '{}'::jsonb,
    recorded_at timestamptz not null default now(),
    transaction_id xid8 not null default pg_current_xact_id(),
    check (stream_version >= 1),
    check (char_length(stream_id) between 1 and 255 and stream_id = btrim(stream_id)),
    check (event_type <> ''),
    check (jsonb_typeof(metadata) = 'object')
  )`,
  "create unique index if not exists bench_raw_events_stream_version on bench_raw_events (stream_id, stream_version)",
  "create index if not exists bench_raw_events_transaction_position on bench_raw_events (transaction_id, global_position)"
]

const uniqueViolation = "23505"

/** The events as the JSON array the append statement unpacks. */
const encode = (events: ReadonlyArray<BenchEvent>): string =>
  JSON.stringify(events.map((event) => ({ id: randomUUID(), type: event.type, data: event.data, metadata: {} })))

export const rawSystem = async (url: string, maxConnections: number): Promise<System> => {
  const sql = postgres(url, { max: maxConnections, onnotice: () => {} })
  for (const statement of schema) await sql.unsafe(statement)

  const append = async (streamId: string, expected: number, events: ReadonlyArray<BenchEvent>) => {
    try {
      const inserted = await sql`
        insert into bench_raw_events (event_id, stream_id, stream_version, event_type, data, metadata)
        select (e.value->>'id')::uuid, ${streamId}, ${expected}::int + e.n::int, e.value->>'type',
               e.value->'data', e.value->'metadata'
        from jsonb_array_elements(${encode(events)}::text::jsonb) with ordinality as e(value, n)
        where (select coalesce(max(stream_version), 0) from bench_raw_events where stream_id = ${streamId}) = ${expected}
        returning global_position`
      return inserted.length === events.length ? ("appended" as const) : ("conflict" as const)
    } catch (error) {
      if ((error as { code?: unknown }).code === uniqueViolation) return "conflict" as const
      throw error
    }
  }

  const version = async (streamId: string) => {
    const [row] = await sql<[{ version: number }]>`
      select coalesce(max(stream_version), 0)::int as version from bench_raw_events where stream_id = ${streamId}`
    return row?.version ?? 0
  }

  const readStream = async (streamId: string) => {
    const rows = await sql`
      select event_id, stream_version, global_position, event_type, data, metadata, recorded_at
      from bench_raw_events where stream_id = ${streamId} order by stream_version`
    return rows.length
  }

  const seed = async (streams: ReadonlyArray<SeedStream>) => {
    const rows = streams.flatMap(({ streamId, events }) =>
      events.map((event, i) => ({
        event_id: randomUUID(),
        stream_id: streamId,
        stream_version: i + 1,
        event_type: event.type,
        data: event.data
      }))
    )
    for (let start = 0; start < rows.length; start += 5000) {
      await sql`
        insert into bench_raw_events (event_id, stream_id, stream_version, event_type, data)
        select * from jsonb_to_recordset(${JSON.stringify(rows.slice(start, start + 5000))}::text::jsonb)
          as r(event_id uuid, stream_id text, stream_version int, event_type text, data jsonb)`
    }
  }

  return {
    name: "raw",
    append,
    version,
    readStream,
    seed,
    size: async () => {
      const [row] = await sql<[{ streams: number; events: number }]>`
        select count(distinct stream_id)::int as streams, count(*)::int as events from bench_raw_events`
      return { streams: row?.streams ?? 0, events: row?.events ?? 0 }
    },
    close: () => sql.end({ timeout: 5 })
  }
}
