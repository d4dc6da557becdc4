/**
 * Snapshots of a command's folded state: a cache that lets `execute` read a
 * long stream's state and only the events after it, instead of folding the
 * whole stream every time.
 *
 * A snapshot records the version of every stream it covers (declared and
 * discovered), the state's `version` and how the command's event schema read
 * stored events (`EventSchema.Codec.fingerprint`). `execute` reads it together
 * with the streams' current versions and later events, in one statement, and
 * appends with those current versions: a snapshot never hides a conflict. One
 * whose versions do not match, that does not decode, or that covers more than
 * the streams hold is ignored (a full fold), counted and logged once; it is
 * never an error for the command. Deleting every snapshot (`clear`) changes
 * no result.
 *
 * Bump `version` whenever `apply` changes what it makes of an event, or the
 * state schema changes its encoded form: a snapshot of an older version is
 * then ignored and replaced. Event schema changes declared with
 * `EventSchema.versions` or `EventSchema.evolve` need no bump.
 */
import { Duration, Effect, Metric, type ParseResult, Schema } from "effect"
import * as EventStore from "./EventStore.js"
import type { StoreError } from "./errors.js"
import { type StoreExtras, snapshotsKey } from "./internal/storeContract.js"

export interface Snapshot<State> {
  /** The version of the state's meaning, stored with every snapshot; a snapshot of another version is ignored. */
  readonly version: number
  /** A new snapshot is written once a command folded at least this many events beyond the last one. */
  readonly events: number
  /** ...or once reading and folding took at least this long (if set). */
  readonly duration?: Duration.Duration
  /** The state schema: how the state is stored (as JSON) and read back. */
  // biome-ignore lint/suspicious/noExplicitAny: any encoded form; the state is what matters here
  readonly schema: Schema.Schema<State, any>
  readonly encode: (state: State) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly decode: (stored: unknown) => Effect.Effect<State, ParseResult.ParseError>
}

export interface Options<State, Encoded> {
  /** The state as JSON: a schema whose encoded form JSON can carry (e.g. `Schema.ReadonlyMap`, not a `Map`). */
  readonly state: Schema.Schema<State, Encoded>
  /** The version of the state's meaning (an integer from 1): bump it when `apply` or the state schema changes. */
  readonly version: number
  /**
   * When to write a new snapshot, after a command read its streams: once it
   * folded `events` events beyond the last snapshot (default 100), or once
   * reading and folding took `duration` (no default), whichever comes first.
   */
  readonly after?: { readonly events?: number; readonly duration?: Duration.DurationInput }
}

/** How many events a command folds beyond its last snapshot before writing a new one, unless told. */
export const defaultEvents = 100

const wholeFrom = (name: string, value: number, min: number) => {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`Snapshot.make: ${name} must be an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

/**
 * Snapshots for a command (its `snapshot` field), with the state's schema and
 * version. Throws a `TypeError` for a version or event count that is not a
 * positive integer: a definition's mistake, found when the module loads.
 */
export const make = <State, Encoded>(options: Options<State, Encoded>): Snapshot<State> => {
  const duration = options.after?.duration
  return {
    version: wholeFrom("version", options.version, 1),
    events: wholeFrom("after.events", options.after?.events ?? defaultEvents, 1),
    ...(duration === undefined ? {} : { duration: Duration.decode(duration) }),
    schema: options.state,
    encode: Schema.encode(options.state),
    decode: Schema.decodeUnknown(options.state)
  }
}

/** Snapshots written, by command. */
export const writtenCounter = Metric.counter("eventcore_snapshots_written", {
  description: "snapshots of command state written",
  incremental: true
})

/**
 * Snapshots found but not used, by command and reason: `version` (another
 * state or event schema version), `undecodable` (the state schema refused it),
 * `streams` (it names other streams than the command's, or more events than
 * they hold).
 */
export const ignoredCounter = Metric.counter("eventcore_snapshots_ignored", {
  description: "snapshots of command state found but not used",
  incremental: true
})

/** Snapshot writes that failed (logged as warnings; the command was not affected). */
export const failedCounter = Metric.counter("eventcore_snapshot_writes_failed", {
  description: "snapshot writes that failed",
  incremental: true
})

const snapshotsOf = (store: EventStore.EventStore) => (store as EventStore.EventStore & StoreExtras)[snapshotsKey]

/**
 * Removes the stored snapshots of `command` (a command or its name), or of
 * every command when none is given; returns how many it removed. Commands
 * then fold their streams in full and write new ones. On PostgreSQL it needs
 * DELETE on the snapshots table (the owner's; see docs/security.md).
 */
export const clear = (
  command?: string | { readonly name: string }
): Effect.Effect<number, StoreError, EventStore.EventStore> =>
  Effect.flatMap(EventStore.EventStore, (store) => {
    const snapshots = snapshotsOf(store)
    if (snapshots === undefined) return Effect.succeed(0)
    return snapshots.clear(typeof command === "object" ? command.name : command)
  })

/**
 * Completes once every snapshot write started so far on this store has ended.
 * `execute` writes them in the background; wait for them before closing a
 * store, or in a test that reads them back.
 */
export const awaitWrites: Effect.Effect<void, never, EventStore.EventStore> = Effect.flatMap(
  EventStore.EventStore,
  (store) => snapshotsOf(store)?.awaitWrites ?? Effect.void
)
