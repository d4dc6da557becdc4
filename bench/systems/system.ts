/**
 * What the workloads need from a system under test: the three event stores and
 * the raw postgres.js baseline present the same small surface.
 */
import type { Effect } from "effect"
import type { EventStore } from "eventcore"
import type { SystemName } from "../lib/options.js"

/** An event to write: its type and ~200 bytes of JSON data. */
export interface BenchEvent {
  readonly type: string
  readonly data: unknown
}

export interface SeedStream {
  readonly streamId: string
  readonly events: ReadonlyArray<BenchEvent>
}

export interface System {
  readonly name: SystemName
  /**
   * Appends `events` to `streamId` if it is at version `expected` (0: it must
   * not exist yet), in one atomic write. "conflict" when it was not.
   */
  readonly append: (
    streamId: string,
    expected: number,
    events: ReadonlyArray<BenchEvent>
  ) => Promise<"appended" | "conflict">
  /** The stream's current version (0 when it has no events). */
  readonly version: (streamId: string) => Promise<number>
  /** Reads the whole stream at once and returns how many events it held. */
  readonly readStream: (streamId: string) => Promise<number>
  /** Reads the whole stream page by page (`streamEvents`); only the stores have it. */
  readonly streamEvents?: (streamId: string) => Promise<number>
  /** Writes new streams in bulk, before a workload starts. */
  readonly seed: (streams: ReadonlyArray<SeedStream>) => Promise<void>
  /** Runs an effect against the store (for `execute`); only the stores have it. */
  readonly run?: <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) => Promise<A>
  /** How many streams and events the system holds (the SQL systems on the server only). */
  readonly size?: () => Promise<{ readonly streams: number; readonly events: number }>
  readonly close: () => Promise<void>
}
