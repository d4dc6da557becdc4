/**
 * Events as writers hand them to a store and as readers get them back.
 */
import type { LogPosition } from "./LogPosition.js"
import type { StreamId } from "./StreamId.js"

export interface NewEvent {
  readonly streamId: StreamId
  readonly eventType: string
  /** JSON-encodable, already encoded by the caller's Schema. */
  readonly data: unknown
  readonly metadata?: Record<string, unknown>
  /** A UUID; a version 7 UUID is generated when absent. */
  readonly eventId?: string
  /**
   * The version of the event type's schema that encoded `data`, an integer
   * from 1: readers bring older versions up to the current one. 1 when absent.
   */
  readonly schemaVersion?: number
}

export interface RecordedEvent {
  readonly eventId: string
  readonly streamId: StreamId
  /** 1..n, gap-free per stream, assigned by the store. */
  readonly streamVersion: number
  /** Unique; taken from a sequence when the event is inserted, so not in commit order (see `position`). */
  readonly globalPosition: bigint
  /** Where the event stands in the global log: readers of the log see events in this order. */
  readonly position: LogPosition
  readonly eventType: string
  /** The version of the event type's schema that encoded `data` (1 for events written without one). */
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Record<string, unknown>
  readonly recordedAt: Date
}
