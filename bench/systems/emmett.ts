/**
 * Emmett (`@event-driven-io/emmett-postgresql`) as a peer system, used as its
 * users would use it: `getPostgreSQLEventStore(connectionString)` with the
 * default options (its own `pg` pool, its schema created on first use),
 * `appendToStream(streamName, events, { expectedStreamVersion })` and
 * `readStream(streamName)`. It gets a database of its own.
 *
 * Versions. Emmett numbers a stream's events 1, 2, 3, ... as bigints and calls
 * a stream without events version 0n (`PostgreSQLEventStoreDefaultStreamVersion`),
 * as the bench does with numbers: bench version n is `BigInt(n)`. An append
 * expecting 0n inserts the stream's row and conflicts when the stream exists
 * (`STREAM_DOES_NOT_EXIST` would not do: this store's append treats it as no
 * check at all). A failed expectation surfaces as `ExpectedVersionConflictError`,
 * which is the bench's "conflict". Emmett has no read of a stream's version
 * alone (`readStream` with `maxCount` reports the position of the last event it
 * read, not the stream's), so `version` reads the stream, as `aggregateStream`
 * in an Emmett command handler does.
 *
 * `open` checks the mapping on a stream of its own before any workload runs,
 * so that a wrong mapping fails the bench instead of counting conflicts as
 * appends or the reverse.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { type Event, isExpectedVersionConflictError } from "@event-driven-io/emmett"
import { getPostgreSQLEventStore } from "@event-driven-io/emmett-postgresql"
import postgres from "postgres"
import type { BenchEvent, SeedStream, System } from "./system.js"

/** The bench's version (0: no events) as Emmett's expected stream version. */
export const toEmmettVersion = (version: number): bigint => BigInt(version)

/** Emmett's current stream version (0n: no events) as the bench's. */
export const fromEmmettVersion = (version: bigint): number => {
  const number = Number(version)
  if (!Number.isSafeInteger(number) || number < 0) throw new Error(`emmett: unexpected stream version ${version}`)
  return number
}

const toEmmettEvents = (events: ReadonlyArray<BenchEvent>): Array<Event> =>
  events.map((event) => ({ type: event.type, data: event.data as Record<string, unknown> }))

/** Seeds this many streams at a time (Emmett's default pool has 10 connections). */
const seedConcurrency = 8

const check = (condition: boolean, what: string) => {
  if (!condition) throw new Error(`emmett: the version mapping check failed: ${what}`)
}

export const emmettSystem = async (url: string): Promise<System> => {
  const store = getPostgreSQLEventStore(url)
  // A connection of its own for the table sizes, outside Emmett's pool.
  const sql = postgres(url, { max: 1, onnotice: () => {} })

  const append = async (streamId: string, expected: number, events: ReadonlyArray<BenchEvent>) => {
    try {
      await store.appendToStream(streamId, toEmmettEvents(events), {
        expectedStreamVersion: toEmmettVersion(expected)
      })
      return "appended" as const
    } catch (error) {
      if (isExpectedVersionConflictError(error)) return "conflict" as const
      throw error
    }
  }

  const version = async (streamId: string) => fromEmmettVersion((await store.readStream(streamId)).currentStreamVersion)

  const readStream = async (streamId: string) => (await store.readStream(streamId)).events.length

  const seed = async (streams: ReadonlyArray<SeedStream>) => {
    let next = 0
    const worker = async () => {
      for (let i = next++; i < streams.length; i = next++) {
        const { streamId, events } = streams[i] as SeedStream
        if ((await append(streamId, 0, events)) !== "appended")
          throw new Error(`emmett: seeding ${streamId} conflicted`)
      }
    }
    await Promise.all(Array.from({ length: seedConcurrency }, worker))
  }

  try {
    // The first call creates Emmett's schema; then the mapping is checked.
    const streamId = `emmett-check-${process.pid}`
    const event = { type: "MappingChecked", data: { check: true } }
    check((await version(streamId)) === 0, "a stream without events is not at version 0")
    check((await append(streamId, 0, [event])) === "appended", "appending to a new stream at 0 conflicted")
    check((await version(streamId)) === 1, "a stream with one event is not at version 1")
    check((await append(streamId, 0, [event])) === "conflict", "appending at 0 to an existing stream did not conflict")
    check((await append(streamId, 2, [event])) === "conflict", "appending ahead of the stream did not conflict")
    check((await append(streamId, 1, [event, event])) === "appended", "appending at the current version conflicted")
    check((await version(streamId)) === 3, "after 1 + 2 events the stream is not at version 3")
    check((await append(streamId, 1, [event])) === "conflict", "appending behind the stream did not conflict")
    check((await readStream(streamId)) === 3, "the stream does not hold the 3 events appended")
  } catch (error) {
    await sql.end({ timeout: 5 })
    await store.close()
    throw error
  }

  return {
    name: "emmett",
    append,
    version,
    readStream,
    seed,
    size: async () => {
      const [row] = await sql<[{ streams: number; events: number }]>`
        select (select count(*) from emt_streams)::int as streams,
               (select count(*) from emt_messages)::int as events`
      return { streams: row?.streams ?? 0, events: row?.events ?? 0 }
    },
    close: async () => {
      await sql.end({ timeout: 5 })
      await store.close()
    }
  }
}

/** The installed version of `@event-driven-io/emmett-postgresql` (its package.json, beside its entry point). */
export const emmettVersion = (): string => {
  const entry = createRequire(import.meta.url).resolve("@event-driven-io/emmett-postgresql")
  const manifest = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version?: unknown }
  return String(manifest.version)
}
