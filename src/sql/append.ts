/**
 * The append's request and reply: the JSON document the function `append`
 * (docs/schema.sql) takes in one round trip, and its reply turned into an
 * `AppendResult` or a `VersionConflict`.
 */
import type { NewEvent, RecordedEvent } from "../Event.js"
import * as ExpectedVersion from "../ExpectedVersion.js"
import { StreamArchived, VersionConflict } from "../errors.js"
import type { AppendResult } from "../internal/storeContract.js"
import type { StreamId } from "../StreamId.js"
import { type ConflictFacts, versionConflictOf } from "./errors.js"
import { positionOf } from "./rows.js"

export type Participants = ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]>

/** The reply to an append that passed its checks. */
interface Appended {
  /** Each participant's version after the append, in the request's order. */
  readonly versions: ReadonlyArray<number>
  /** Each event's global position, in the request's order. */
  readonly positions: ReadonlyArray<string>
  /** The writing transaction's id; null when the append wrote no events. */
  readonly transaction: string | null
  readonly recordedAt: number
}

/** The reply when a participant is not at its expected version (the request asks for conflicts in the reply). */
interface Conflicted {
  readonly conflict: ConflictFacts
}

/** The reply when a participant is archived (the request asks for refusals in the reply). */
interface Archived {
  readonly archived: { readonly stream_id: string }
}

export type AppendReply = Appended | Conflicted | Archived

/** The request: participants with their expected versions, then the events with their ids. */
export const appendRequest = (
  participants: Participants,
  events: ReadonlyArray<NewEvent>,
  eventIds: ReadonlyArray<string>
): string =>
  JSON.stringify({
    // A conflict comes back in the reply, not as an error: found before any write, it costs no exception.
    conflict: "reply",
    streams: participants.map(([id, expected]) => ({ id, expected })),
    events: events.map((event, i) => ({
      stream: event.streamId,
      id: eventIds[i],
      type: event.eventType,
      data: event.data,
      metadata: event.metadata ?? {},
      // Left out of the JSON when absent: the function writes 1.
      version: event.schemaVersion
    }))
  })

/** The reply as the driver returns it: jsonb as text (postgres.js without type fetch) or parsed (PGlite). */
export const parseReply = (raw: unknown): AppendReply =>
  (typeof raw === "string" ? JSON.parse(raw) : raw) as AppendReply

/** The store's answer to an append whose request reached the database. */
export const appendOutcome = (
  reply: AppendReply,
  participants: Participants,
  events: ReadonlyArray<NewEvent>,
  eventIds: ReadonlyArray<string>
): AppendResult | VersionConflict | StreamArchived => {
  if ("conflict" in reply) return versionConflictOf(reply.conflict)
  if ("archived" in reply) return new StreamArchived({ streamId: reply.archived.stream_id as StreamId })
  const streamVersions = new Map<StreamId, number>()
  for (let i = 0; i < participants.length; i++) {
    streamVersions.set((participants[i] as readonly [StreamId, unknown])[0], reply.versions[i] as number)
  }
  // Each stream's events end at its new version: number them back from there.
  const remaining = new Map<StreamId, number>()
  for (const event of events) remaining.set(event.streamId, (remaining.get(event.streamId) ?? 0) + 1)
  const recordedAt = new Date(reply.recordedAt)
  const transaction = reply.transaction ?? "0"
  const recorded = events.map((event, i): RecordedEvent => {
    const left = remaining.get(event.streamId) as number
    remaining.set(event.streamId, left - 1)
    const position = reply.positions[i] as string
    return {
      eventId: eventIds[i] as string,
      streamId: event.streamId,
      streamVersion: (streamVersions.get(event.streamId) as number) - left + 1,
      globalPosition: BigInt(position),
      position: positionOf(transaction, position),
      eventType: event.eventType,
      schemaVersion: event.schemaVersion ?? 1,
      data: event.data,
      metadata: event.metadata ?? {},
      recordedAt
    }
  })
  return { streamVersions, events: recorded }
}

/**
 * The participant that conflicted, from the current versions (rows of the
 * `conflict` statement) read after a raced write: the first in byte order of
 * its id whose version is not the expected one, as the append function checks
 * them.
 */
export const conflictOf = (
  participants: Participants,
  rows: ReadonlyArray<ReadonlyArray<unknown>>
): VersionConflict => {
  const current = new Map(rows.map(([streamId, version]) => [streamId as string, version as number]))
  const sorted = [...participants].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const [streamId, expected] =
    sorted.find(([id, exp]) => !ExpectedVersion.isSatisfiedBy(exp, current.get(id) ?? 0)) ??
    (sorted[0] as readonly [StreamId, ExpectedVersion.ExpectedVersion])
  return new VersionConflict({ streamId, expected, actual: current.get(streamId) ?? 0 })
}
