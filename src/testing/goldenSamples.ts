import { Cause, Effect, Exit, type Schema } from "effect"
import { assert, expect } from "vitest"
import type { RecordedEvent } from "../Event.js"
import * as EventSchema from "../EventSchema.js"
import * as LogPosition from "../LogPosition.js"
import * as StreamId from "../StreamId.js"

/**
 * A stored event as a golden sample gives it: its type, the schema version it
 * was written with (1 when absent, as for events written before versions) and
 * its stored JSON; anything else a replacement reads (`streamId`, `metadata`,
 * ...) may be given too.
 */
export type StoredSample = Pick<RecordedEvent, "eventType" | "data"> &
  Partial<Omit<RecordedEvent, "eventType" | "data" | "streamId">> & { readonly streamId?: string }

/** A `RecordedEvent` as a store would read it back, from a sample: the first event of a stream `golden-sample`. */
export const storedEvent = (sample: StoredSample): RecordedEvent => ({
  eventId: "00000000-0000-7000-8000-000000000000",
  streamVersion: 1,
  globalPosition: 1n,
  position: LogPosition.make(1n, 1n),
  schemaVersion: 1,
  metadata: {},
  recordedAt: new Date(0),
  ...sample,
  streamId: StreamId.unsafeMake(sample.streamId ?? "golden-sample")
})

/**
 * A golden sample: stored JSON of an older version (or of a renamed or
 * replaced type) decodes with `schema` to exactly today's `expected` events,
 * as every reader (`execute`, projections, reactors) will decode it. Keep one
 * per version an application ever wrote: an upcast that changes what old
 * events become then fails here, before a deploy, with the difference.
 *
 * ```ts
 * it("ItemAdded v1 gets quantity 1", () =>
 *   expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "A-1" } }, [
 *     { _tag: "ItemAdded", sku: "A-1", quantity: 1 }
 *   ]))
 * ```
 *
 * Decoding runs synchronously: a schema whose decoding is asynchronous fails
 * the expectation, saying so.
 */
export const expectDecodes = <E extends { readonly _tag: string }, I>(
  schema: Schema.Schema<E, I>,
  stored: StoredSample,
  expected: ReadonlyArray<E>
): void => {
  const sample = `${stored.eventType} at schema version ${stored.schemaVersion ?? 1}`
  const decoded = Effect.runSyncExit(EventSchema.decode(schema)(storedEvent(stored)))
  if (Exit.isFailure(decoded)) {
    const failure = Cause.squash(decoded.cause)
    assert.fail(
      `${sample} does not decode: ${failure instanceof Error ? failure.message : Cause.pretty(decoded.cause)}`
    )
  }
  expect(decoded.value, `${sample} decodes to other events`).toEqual(expected)
}
