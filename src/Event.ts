/**
 * Events as writers hand them to a store and as readers get them back.
 */
import type { StreamId } from "./StreamId.js"

export interface NewEvent {
  readonly streamId: StreamId
  readonly eventType: string
  /** JSON-encodable, already encoded by the caller's Schema. */
  readonly data: unknown
  readonly metadata?: Record<string, unknown>
  /** A UUID; a version 7 UUID is generated when absent. */
  readonly eventId?: string
}

export interface RecordedEvent {
  readonly eventId: string
  readonly streamId: StreamId
  /** 1..n, gap-free per stream, assigned by the store. */
  readonly streamVersion: number
  /** Unique, increasing in the order readers of the global log see events. */
  readonly globalPosition: bigint
  readonly eventType: string
  readonly data: unknown
  readonly metadata: Record<string, unknown>
  readonly recordedAt: Date
}
