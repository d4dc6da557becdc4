/**
 * The life of a stream after its last append, for streams that are finished
 * or too long to keep whole: archive a stream (it is no longer read or
 * appended to), truncate it before a version (reads start there), and purge
 * what truncations hid (the events are removed for good).
 *
 * The log stays append-only for everyone else: on PostgreSQL these are
 * functions in eventcore's schema that run as its owner and that only the
 * owner may call unless it grants them (docs/erasure.md); the application
 * role gets a `StoreError` (SQLSTATE 42501).
 *
 * An archived stream's events stay in the global log: the log is the history
 * every projection was built from, and a rebuild must see what the first
 * build saw. A truncated stream's earlier events stay in the log until
 * `purgeTruncated` removes them.
 */
import { Effect } from "effect"
import * as EventStore from "./EventStore.js"
import { InvalidTruncation, StoreError, type StreamNotFound } from "./errors.js"
import {
  type Archived,
  type Lifecycle,
  lifecycleKey,
  type StoreExtras,
  type Truncated
} from "./internal/storeContract.js"
import type { StreamId } from "./StreamId.js"

export type { Archived, Truncated }

const lifecycleOf = (operation: string): Effect.Effect<Lifecycle, StoreError, EventStore.EventStore> =>
  Effect.flatMap(EventStore.EventStore, (store) => {
    const lifecycle = (store as EventStore.EventStore & StoreExtras)[lifecycleKey]
    return lifecycle === undefined
      ? Effect.fail(new StoreError({ operation, message: `This store cannot ${operation} streams.` }))
      : Effect.succeed(lifecycle)
  })

/**
 * Archives `streamId`: from now on `readStream`, `streamEvents` and the
 * commands that read it fail with `StreamArchived`, and every append naming
 * it, as a participant that writes or only reads, fails with it too and
 * writes nothing. An append running at the same moment commits before the
 * archive or is refused. Archiving again changes nothing (`already`).
 */
export const archive = (
  streamId: StreamId
): Effect.Effect<Archived, StreamNotFound | StoreError, EventStore.EventStore> =>
  Effect.flatMap(lifecycleOf("archive"), (lifecycle) => lifecycle.archive(streamId))

/**
 * Truncates `streamId` before version `before` (from 1 to the stream's
 * version: its last event is always kept, so its version never goes back):
 * reads and commands start at `before`, the version stays what it is, and the
 * snapshots covering the stream are removed (they folded what is now hidden).
 * A command folding the stream must not need what came before: truncate after
 * an event that sums it up (a closing balance, a compaction). A point never
 * moves back.
 */
export const truncate = (
  streamId: StreamId,
  options: { readonly before: number }
): Effect.Effect<Truncated, InvalidTruncation | StoreError, EventStore.EventStore> =>
  Effect.flatMap(lifecycleOf("truncate"), (lifecycle) => {
    const { before } = options
    if (Number.isSafeInteger(before) && before >= 1) return lifecycle.truncate(streamId, before)
    return Effect.flatMap(EventStore.EventStore, (store) =>
      store.readStream(streamId, { maxCount: 0 }).pipe(
        Effect.map((read) => read.version),
        Effect.catchTags({ StreamNotFound: () => Effect.succeed(0), StreamArchived: () => Effect.succeed(0) }),
        Effect.catchTag("InvalidReadOptions", (error) => Effect.die(error)),
        Effect.flatMap((version) => Effect.fail(new InvalidTruncation({ streamId, before, version })))
      )
    )
  })

/**
 * Removes the events that truncations hid, for good (from the global log
 * too); how many. The only way past the append-only rule, and on PostgreSQL
 * only for the duration of the call: see `purge_truncated` in
 * docs/schema.sql.
 */
export const purgeTruncated: Effect.Effect<number, StoreError, EventStore.EventStore> = Effect.flatMap(
  lifecycleOf("purge"),
  (lifecycle) => lifecycle.purge
)
