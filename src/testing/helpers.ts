import { Either } from "effect"
import type { NewEvent } from "../Event.js"
import type { ExpectedVersion } from "../ExpectedVersion.js"
import type * as StreamId from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"

/** One participant of an append: its expectation and the events it receives. */
export interface Participant {
  readonly streamId: StreamId.StreamId
  readonly expected: ExpectedVersion
  readonly events?: ReadonlyArray<Omit<NewEvent, "streamId">>
}

/** Builds a `StreamWrites` from participants, throwing on an invalid one (a bug in the test). */
export const writesOf = (...participants: ReadonlyArray<Participant>): StreamWrites.StreamWrites => {
  let writes = StreamWrites.empty
  for (const p of participants) writes = Either.getOrThrow(StreamWrites.expect(writes, p.streamId, p.expected))
  for (const p of participants) {
    for (const event of p.events ?? []) {
      writes = Either.getOrThrow(StreamWrites.append(writes, { ...event, streamId: p.streamId }))
    }
  }
  return writes
}

/** `count` small test events, numbered from `from`. */
export const testEvents = (count: number, from = 1): ReadonlyArray<Omit<NewEvent, "streamId">> =>
  Array.from({ length: count }, (_, i) => ({ eventType: "Tested", data: { n: from + i } }))
