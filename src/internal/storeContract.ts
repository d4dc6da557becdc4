/**
 * The contract between the generic layer and the stores: what a store
 * implements (`StoreOperations`, which `internal/eventStore.ts` turns into an
 * `EventStore`), and what it offers the read side (`CheckpointStore`, for
 * projections and reactors). Types only, but for the keys a store's
 * service carries its extras under and the one error a checkpoint store
 * raises: this module imports nothing of eventcore's but its values, so every
 * other module can depend on it and it on none of them.
 */
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core"
import { Data, type Duration, type Effect, type Scope } from "effect"
import type { RecordedEvent } from "../Event.js"
import type {
  DuplicateEventId,
  InvalidPersonalData,
  InvalidTruncation,
  StoreError,
  StreamArchived,
  StreamNotFound,
  SubjectErased,
  VersionConflict
} from "../errors.js"
import type { KeyStore } from "../KeyStore.js"
import type { LogPosition } from "../LogPosition.js"
import type { StreamId } from "../StreamId.js"
import type { StreamWrites } from "../StreamWrites.js"

/** Which events of the global log to read; both parts are applied by the store (in SQL for the SQL stores). */
export interface LogFilter {
  /** Only events of these types. */
  readonly eventTypes?: ReadonlyArray<string>
  /** Only events of streams whose id starts with this, literally (no pattern characters). */
  readonly streamPrefix?: string
}

export interface AppendResult {
  /** Every participant's version after the append, read-only participants included. */
  readonly streamVersions: ReadonlyMap<StreamId, number>
  readonly events: ReadonlyArray<RecordedEvent>
}

export type AppendError =
  | VersionConflict
  | StreamArchived
  | DuplicateEventId
  | InvalidPersonalData
  | SubjectErased
  | StoreError

export interface LogRead {
  /** Events after `after`, in log order. */
  readonly events: ReadonlyArray<RecordedEvent>
  /**
   * Where the next read resumes: at least the last event returned, possibly
   * further, past events the filter skipped, but never past a point where an
   * event could still appear (a transaction still running).
   */
  readonly position: LogPosition
  /**
   * Whether the read reached the readable head: nothing readable follows
   * `position` (yet). A filtered read may return fewer events than `maxCount`,
   * even none, without having reached it: it bounds the events it examines.
   */
  readonly caughtUp: boolean
}

/** One page of the global log, as a store reads it (see `LogRead`). */
export interface LogPage extends LogRead {
  /**
   * Whether events have committed that cannot be read yet, because a
   * transaction that started before them is still running.
   */
  readonly heldBack: boolean
}

/** A stored (event type, schema version) pair: how many events have it, and a sample of them (the oldest and the newest). */
export interface StoredEventType {
  readonly eventType: string
  readonly schemaVersion: number
  readonly count: number
  readonly samples: ReadonlyArray<RecordedEvent>
}

/** What holds the global log back: the oldest transaction still running on the server. */
export interface BlockingTransaction {
  /** The backend running it; absent for a prepared transaction. */
  readonly pid?: number
  readonly database?: string
  /** Its state (`idle in transaction`, `active`, ...), or that it is prepared, when visible to this role. */
  readonly state?: string
  /** Seconds since it began. */
  readonly ageSeconds?: number
  readonly applicationName?: string
}

/**
 * What a store implements; `internal/eventStore.ts` adds option validation,
 * paging, live subscriptions, spans and metrics, so every store behaves the
 * same at its surface.
 */
export interface StoreOperations {
  /**
   * Up to `limit` events of the stream from `fromVersion` on, with the stream's
   * current version (0 when it has no events).
   */
  readonly read: (
    streamId: StreamId,
    fromVersion: number,
    limit: number
  ) => Effect.Effect<
    {
      readonly version: number
      readonly events: ReadonlyArray<RecordedEvent>
      /** Whether the stream is archived (then its events are not read). */
      readonly archived?: boolean
    },
    StoreError
  >
  readonly append: (writes: StreamWrites) => Effect.Effect<AppendResult, AppendError>
  /**
   * Up to `limit` events (at least 1) of the global log after `after` that
   * pass `filter`, in log order, with where to resume (see `LogPage`).
   */
  readonly readLog: (after: LogPosition, limit: number, filter: LogFilter) => Effect.Effect<LogPage, StoreError>
  /**
   * How often a caught-up subscription looks for events written by others
   * (another process, raw SQL): from `min` after events arrived, doubling up to
   * `max` while none do. Absent when the store's own appends are its only
   * writes (in memory): they wake its subscriptions at once either way.
   */
  readonly polling?: { readonly min: Duration.DurationInput; readonly max: Duration.DurationInput }
  /** Checkpoints and ownership for projections and reactors. */
  readonly checkpoints?: CheckpointStore
  /** What holds the log back, when `readLog` says it is (`heldBack`). */
  readonly blockingTransaction?: Effect.Effect<BlockingTransaction | undefined, StoreError>
  /**
   * The oldest transaction whose events `readLog` cannot read yet, where it
   * reads (on a replica, as far as it has replayed). Absent when every
   * committed event is readable at once (in memory).
   */
  readonly horizon?: Effect.Effect<bigint, StoreError>
  /**
   * Every (event type, schema version) pair the store holds, by event type
   * (in code point order) then version, each with its count and a sample:
   * what a check before a deploy decodes. It reads every event's type and
   * version, but only the sampled events whole.
   */
  readonly storedTypes?: Effect.Effect<ReadonlyArray<StoredEventType>, StoreError>
  /** Snapshots of commands' folded state. */
  readonly snapshots?: SnapshotStore
  /**
   * The store's own key store for personal data (see `PersonalData`): with it,
   * appends seal personal values and reads open them (`personalStore.ts`).
   */
  readonly keys?: KeyStore
  /** Archiving, truncating and purging streams (see `StreamLifecycle`). */
  readonly lifecycle?: Lifecycle
  /** Records `subject`'s erasure as `by` (its key already destroyed, or destroyed with it). */
  readonly erase?: (subject: string, by: string) => Effect.Effect<Erasure, StoreError>
  /** Span attributes naming the backend, e.g. `{ "db.system": "postgresql" }`. */
  readonly attributes?: Record<string, unknown>
}

/**
 * A store's snapshots as commands use them: writes run in the background,
 * out of the command's way, and can be awaited.
 */
export interface Snapshots extends SnapshotStore {
  /** Runs `work` in a fiber of its own, out of the caller's way (a save, its metrics, its failure logged). */
  readonly inBackground: (work: Effect.Effect<void>) => Effect.Effect<void>
  /** Completes once all the work started in the background so far has ended. */
  readonly awaitWrites: Effect.Effect<void>
  /** Runs `log` the first time it is called with `key` on this store, and never again. */
  readonly once: (key: string, log: Effect.Effect<void>) => Effect.Effect<void>
}

/** A stream archived, as the store recorded it. */
export interface Archived {
  readonly streamId: StreamId
  /** The stream's version, its last event's. */
  readonly version: number
  readonly archivedAt: Date
  /** Whether it had been archived before (nothing changed). */
  readonly already: boolean
}

/** A stream truncated, as the store recorded it. */
export interface Truncated {
  readonly streamId: StreamId
  readonly version: number
  /** The first version reads return from now on (never moved back by a later, lower truncation). */
  readonly truncatedBefore: number
}

/** What a store does to streams after their last append. */
export interface Lifecycle {
  readonly archive: (streamId: StreamId) => Effect.Effect<Archived, StreamNotFound | StoreError>
  readonly truncate: (streamId: StreamId, before: number) => Effect.Effect<Truncated, InvalidTruncation | StoreError>
  /** Removes the events truncations hid, for good; how many. */
  readonly purge: Effect.Effect<number, StoreError>
}

/** A subject's erasure, as the store recorded it. */
export interface Erasure {
  readonly subject: string
  readonly erasedBy: string
  readonly erasedAt: Date
  /** Whether the subject had been erased before (nothing changed). */
  readonly already: boolean
  /** How many snapshots the erasure removed (all of them: their states may hold the subject's values). */
  readonly snapshotsRemoved: number
  /** Where `SubjectErased` stands in the global log (absent when the subject had been erased before). */
  readonly position?: LogPosition
}

/** A command's folded state as a store keeps it (see `Snapshot.ts`). */
export interface StoredSnapshot {
  readonly command: string
  /** The streams the command declared, hashed (see `snapshotKey` in internal/snapshots.ts). */
  readonly key: string
  readonly stateVersion: number
  /** `Codec.fingerprint` of the command's event schema when the state was folded. */
  readonly eventVersions: string
  /** Every stream the state covers, in the order they were folded (the declared ones first), at its version. */
  readonly streams: ReadonlyArray<readonly [StreamId, number]>
  /** The state, encoded (JSON). */
  readonly state: unknown
}

/** What a command's first read asks for: its declared streams, in order, and the snapshot that may cover them. */
export interface SnapshotRequest {
  readonly command: string
  readonly key: string
  readonly stateVersion: number
  readonly eventVersions: string
  readonly streams: ReadonlyArray<StreamId>
}

/** A stream as a command's first read found it: its current version and its events after `after`. */
export interface StreamTail {
  readonly streamId: StreamId
  readonly version: number
  /** The version the snapshot covers it to (0: read from the start). */
  readonly after: number
  readonly events: ReadonlyArray<RecordedEvent>
}

/** The outcome of a `SnapshotStore.load`, all read at one moment (one statement on the SQL stores). */
export interface SnapshotLoad {
  /** The key's snapshot, if one is stored, whether or not it was usable. */
  readonly found?: StoredSnapshot
  /**
   * Whether `found` has the state and event versions asked for: then each
   * declared stream's tail starts after the version it covers; otherwise
   * every declared stream is read from the start. The streams it covers
   * beyond the declared ones (discovered) are not read here.
   */
  readonly usable: boolean
  readonly tails: ReadonlyArray<StreamTail>
}

/** Where snapshots of commands' state are kept. */
export interface SnapshotStore {
  /** The snapshot of the request's key with the tails of the declared streams, in one read. */
  readonly load: (request: SnapshotRequest) => Effect.Effect<SnapshotLoad, StoreError>
  /**
   * Stores `snapshot` unless the key's stored one covers more events with the
   * same versions: a snapshot never replaces a newer one. Whether it was stored.
   */
  readonly save: (snapshot: StoredSnapshot) => Effect.Effect<boolean, StoreError>
  /** Removes the snapshots of `command` (all of them when absent); how many it removed. */
  readonly clear: (command?: string) => Effect.Effect<number, StoreError>
}

/** Where a store's service keeps its `CheckpointStore` (see `StoreOperations.checkpoints`). */
export const checkpointsKey: unique symbol = Symbol.for("eventcore/EventStore/checkpoints")

/** Where a store's service keeps its log's horizon (see `StoreOperations.horizon`, `EventStore.waitForLog`). */
export const horizonKey: unique symbol = Symbol.for("eventcore/EventStore/horizon")

/** Where a store's service keeps the event types it holds (see `StoreOperations.storedTypes`). */
export const storedTypesKey: unique symbol = Symbol.for("eventcore/EventStore/storedTypes")

/** Where a store's service keeps its snapshots (see `StoreOperations.snapshots`, internal/snapshots.ts). */
export const snapshotsKey: unique symbol = Symbol.for("eventcore/EventStore/snapshots")

/** What a store's service carries beside the `EventStore` interface, for the read side and for commands. */
/** Where a store's service carries its personal data's keys and erasure. */
export const personalDataKey: unique symbol = Symbol.for("eventcore/EventStore/personalData")

/** Where a store's service carries its `Lifecycle`. */
export const lifecycleKey: unique symbol = Symbol.for("eventcore/EventStore/lifecycle")

export interface StoreExtras {
  readonly [lifecycleKey]?: Lifecycle
  readonly [personalDataKey]?: {
    readonly keys: KeyStore
    readonly erase: (subject: string, by: string) => Effect.Effect<Erasure, StoreError>
  }
  readonly [snapshotsKey]?: Snapshots
  readonly [checkpointsKey]?: CheckpointStore
  readonly [horizonKey]?: Effect.Effect<bigint, StoreError>
  readonly [storedTypesKey]?: Effect.Effect<ReadonlyArray<StoredEventType>, StoreError>
}

export type ProjectionKind = "projection" | "reactor"

/**
 * A row of `Projection.status`: a projection or reactor, or an instance
 * standing by to take one over.
 */
export interface ProjectionStatus {
  readonly name: string
  readonly kind: ProjectionKind
  /**
   * The name's own row: `running` while an instance owns it, `failed` after it
   * stopped on an error, `stopped` otherwise. `standby`: a row of its own for
   * each instance waiting for the owner's lock, after the name's row.
   */
  readonly status: "running" | "standby" | "stopped" | "failed"
  /** Its checkpoint. */
  readonly position: LogPosition
  /**
   * Its events after its checkpoint: those of its event types and stream
   * prefix, as its last run declared them (until a checkpoint made before
   * migration 0009 runs again: every event).
   */
  readonly lag?: number
  /** The instance (host/pid/tag) running it, or, on a `standby` row, the one standing by. */
  readonly owner?: string
  /** When its row last changed; on a `standby` row, since when the instance stands by. */
  readonly updatedAt: Date
  readonly error?: string
}

/** An event skipped after its handler failed (`onError: "skip"`), recorded with the move past it. */
export interface DeadLetter {
  readonly eventId: string
  readonly position: LogPosition
  readonly eventType: string
  readonly error: string
}

/** An instance standing by to take a name over, and since when. */
export interface Standby {
  readonly instance: string
  readonly since: Date
}

/** A read model's database: any Drizzle PostgreSQL database, whatever its driver and the application's tables. */
// biome-ignore lint/suspicious/noExplicitAny: the application's tables, whatever its Drizzle schema
export type ReadModelDatabase = PgDatabase<PgQueryResultHKT, any>

/** A SQL statement and its parameters. */
export type Statement = readonly [statement: string, params: ReadonlyArray<unknown>]

/**
 * A statement a batch left for its commit failed (see `Ownership.commit`):
 * the batch's failure, as if its handler had run the statement itself.
 */
export class WriteAtCommitFailed {
  constructor(readonly cause: unknown) {}
}

/** The checkpoint moved since this instance read it: another instance, or a rebuild, committed first. */
export class CheckpointMoved extends Data.TaggedError("CheckpointMoved")<{ readonly name: string }> {
  override get message() {
    return `The checkpoint of ${JSON.stringify(this.name)} moved since this instance read it`
  }
}

/** What an instance can do while it owns a name. */
export interface Ownership {
  /** The stored checkpoint. */
  readonly checkpoint: Effect.Effect<LogPosition, StoreError>
  /**
   * Runs `body` and moves the checkpoint from `from` to `to`, in one
   * transaction where the store has them: all or nothing. Fails with
   * `CheckpointMoved`, rolling back, if the checkpoint is no longer at `from`.
   * `body` gets the transaction's database on the SQL stores, and may leave
   * statements for the commit: they run after it, with the compare-and-set
   * and the commit in one round trip on PostgreSQL (a failure of one is a
   * `WriteAtCommitFailed`).
   */
  readonly commit: <E, R>(
    from: LogPosition,
    to: LogPosition,
    // biome-ignore lint/suspicious/noConfusingVoidType: a body that leaves nothing for the commit is an Effect<void>
    body: (db: ReadModelDatabase | undefined) => Effect.Effect<ReadonlyArray<Statement> | void, E, R>,
    deadLetter?: DeadLetter
  ) => Effect.Effect<void, E | StoreError | CheckpointMoved | WriteAtCommitFailed, R>
  /** Records that the instance stopped on an error (status `failed`). */
  readonly fail: (error: string) => Effect.Effect<void, StoreError>
}

/**
 * What a store offers projections and reactors: ownership of a name (one
 * active instance at a time), a checkpoint moved by compare-and-set in the
 * same transaction as the work of a batch, failure and dead-letter records,
 * and status.
 */
export interface CheckpointStore {
  /** Whether `commit` gives bodies a database transaction (a `ReadModel`). */
  readonly transactional: boolean
  /**
   * Owns `name` for the scope: waits (stands by, and says so in the status)
   * while another instance owns it, creating its checkpoint at the start of
   * the log if it has none. Once it owns the name, `filter` is what its status
   * counts as its own events.
   */
  readonly own: (
    name: string,
    kind: ProjectionKind,
    filter: LogFilter
  ) => Effect.Effect<Ownership, StoreError, Scope.Scope>
  readonly checkpointOf: (name: string) => Effect.Effect<LogPosition | undefined, StoreError>
  /**
   * Moves the checkpoint of `name` back to the start and runs `body` in one
   * transaction (the read model's reset); an instance running it sees its
   * checkpoint moved and replays. A name without a checkpoint gets one, with
   * `filter` as its events.
   */
  readonly reset: <E, R>(
    name: string,
    kind: ProjectionKind,
    filter: LogFilter,
    body: (db: ReadModelDatabase | undefined) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | StoreError, R>
  /**
   * Every name with a checkpoint, by name, each with its lag (the events
   * after its checkpoint that its filter matches), then its instances
   * standing by (see `internal/checkpoints.ts`, `statusRows`).
   */
  readonly statuses: Effect.Effect<ReadonlyArray<ProjectionStatus>, StoreError>
  readonly deadLetters: (name: string) => Effect.Effect<ReadonlyArray<DeadLetter>, StoreError>
}
