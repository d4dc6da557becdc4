/**
 * What a store offers projections and reactors: ownership of a name (one
 * active instance at a time), a checkpoint moved by compare-and-set in the
 * same transaction as the work of a batch, failure and dead-letter records,
 * and status. The SQL stores keep all of it in the database
 * (src/sql/projections.ts); the in-memory store here, in memory.
 */
import { hostname } from "node:os"
import { Clock, Data, Deferred, Effect, type Scope } from "effect"
import type { RecordedEvent } from "../Event.js"
import type { LogFilter } from "../EventStore.js"
import type { StoreError } from "../errors.js"
import * as LogPosition from "../LogPosition.js"
import type { ProjectionStatus } from "../Projection.js"
import type { Database } from "../sql/SqlEventStore.js"
import { makeSignal } from "./follow.js"

export type Kind = "projection" | "reactor"

/** The checkpoint moved since this instance read it: another instance, or a rebuild, committed first. */
export class Deposed extends Data.TaggedError("Deposed")<{ readonly name: string }> {}

/** An event skipped after its handler failed (`onError: "skip"`), recorded with the move past it. */
export interface DeadLetter {
  readonly eventId: string
  readonly position: LogPosition.LogPosition
  readonly eventType: string
  readonly error: string
}

/** An instance standing by to take a name over, and since when. */
export interface Standby {
  readonly instance: string
  readonly since: Date
}

/**
 * A name's rows in `Projection.status`: its own, then one for each instance
 * standing by to take it over, the longest waiting first.
 */
export const statusRows = (
  row: ProjectionStatus,
  standbys: ReadonlyArray<Standby>
): ReadonlyArray<ProjectionStatus> => [
  row,
  ...[...standbys]
    .sort((a, b) => a.since.getTime() - b.since.getTime() || (a.instance < b.instance ? -1 : 1))
    .map(
      ({ instance, since }): ProjectionStatus => ({
        name: row.name,
        kind: row.kind,
        status: "standby",
        position: row.position,
        ...(row.lag === undefined ? {} : { lag: row.lag }),
        owner: instance,
        updatedAt: since
      })
    )
]

/** What an instance can do once it owns a name. */
export interface Owned {
  /** The stored checkpoint. */
  readonly checkpoint: Effect.Effect<LogPosition.LogPosition, StoreError>
  /**
   * Runs `body` and moves the checkpoint from `from` to `to`, in one
   * transaction where the store has them: all or nothing. Fails with
   * `Deposed`, rolling back, if the checkpoint is no longer at `from`.
   * `body` gets the transaction's database on the SQL stores.
   */
  readonly commit: <A, E, R>(
    from: LogPosition.LogPosition,
    to: LogPosition.LogPosition,
    body: (db: Database | undefined) => Effect.Effect<A, E, R>,
    deadLetter?: DeadLetter
  ) => Effect.Effect<A, E | StoreError | Deposed, R>
  /** Records that the instance stopped on an error (status `failed`). */
  readonly fail: (error: string) => Effect.Effect<void, StoreError>
}

export interface ProjectionBackend {
  /** Whether `commit` gives bodies a database transaction (a `ReadModel`). */
  readonly transactional: boolean
  /**
   * Owns `name` for the scope: waits (stands by, and says so in the status)
   * while another instance owns it, creating its checkpoint at the start of
   * the log if it has none. Once it owns the name, `filter` is what its status
   * counts as its own events.
   */
  readonly own: (name: string, kind: Kind, filter: LogFilter) => Effect.Effect<Owned, StoreError, Scope.Scope>
  readonly checkpointOf: (name: string) => Effect.Effect<LogPosition.LogPosition | undefined, StoreError>
  /**
   * Moves the checkpoint of `name` back to the start and runs `body` in one
   * transaction (the read model's reset); an instance running it sees its
   * checkpoint moved and replays. A name without a checkpoint gets one, with
   * `filter` as its events.
   */
  readonly reset: <E, R>(
    name: string,
    kind: Kind,
    filter: LogFilter,
    body: (db: Database | undefined) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | StoreError, R>
  /**
   * Every name with a checkpoint, by name, each with its lag (the events
   * after its checkpoint that its filter matches), then its instances
   * standing by (see `statusRows`).
   */
  readonly statuses: Effect.Effect<ReadonlyArray<ProjectionStatus>, StoreError>
  readonly deadLetters: (name: string) => Effect.Effect<ReadonlyArray<DeadLetter>, StoreError>
}

/** Who an instance is, in `owner` columns and logs: host, process, and a tag for the instance. */
export const instanceName = () => `${hostname()}/${process.pid}/${Math.random().toString(16).slice(2, 8)}`

/** How often an instance standing by looks whether it may take over. */
export const standbyPoll = "1 second"

/** Whether `event` is one of those `filter` reads. */
const matches = (filter: LogFilter, event: RecordedEvent) =>
  (filter.eventTypes === undefined || filter.eventTypes.includes(event.eventType)) &&
  (filter.streamPrefix === undefined || event.streamId.startsWith(filter.streamPrefix))

/**
 * Checkpoints, ownership and dead letters in memory, for the in-memory store,
 * whose log after a position `eventsAfter` gives.
 */
export const memoryBackend = (
  eventsAfter: (position: LogPosition.LogPosition) => ReadonlyArray<RecordedEvent>
): ProjectionBackend => {
  interface Entry {
    kind: Kind
    filter: LogFilter
    position: LogPosition.LogPosition
    status: "running" | "stopped" | "failed"
    owner: string | undefined
    error: string | undefined
    updatedAt: Date
    /** Instances standing by, with since when. */
    readonly standbys: Map<string, Date>
  }
  const entries = new Map<string, Entry>()
  const owners = new Set<string>()
  const letters = new Map<string, Array<DeadLetter>>()
  const released = makeSignal()

  const entryOf = (name: string, kind: Kind, filter: LogFilter, now: number) => {
    let entry = entries.get(name)
    if (entry === undefined) {
      entry = {
        kind,
        filter,
        position: LogPosition.start,
        status: "stopped",
        owner: undefined,
        error: undefined,
        updatedAt: new Date(now),
        standbys: new Map()
      }
      entries.set(name, entry)
    }
    return entry
  }

  const own = (name: string, kind: Kind, filter: LogFilter) =>
    Effect.gen(function* () {
      const owner = instanceName()
      const entry = entryOf(name, kind, filter, yield* Clock.currentTimeMillis)
      if (owners.has(name)) {
        entry.standbys.set(owner, new Date(yield* Clock.currentTimeMillis))
        yield* Effect.gen(function* () {
          for (;;) {
            const wakeup = yield* released.current
            if (!owners.has(name)) return
            yield* Effect.race(Deferred.await(wakeup), Effect.sleep(standbyPoll))
          }
        }).pipe(Effect.ensuring(Effect.sync(() => entry.standbys.delete(owner))))
      }
      owners.add(name)
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          Effect.sync(() => {
            owners.delete(name)
            if (entry.status === "running") entry.status = "stopped"
          }),
          released.notify
        )
      )
      entry.owner = owner
      entry.filter = filter
      entry.status = "running"
      entry.updatedAt = new Date(yield* Clock.currentTimeMillis)
      const owned: Owned = {
        checkpoint: Effect.sync(() => entry.position),
        commit: (from, to, body, deadLetter) =>
          Effect.flatMap(body(undefined), (result) =>
            Effect.flatMap(Clock.currentTimeMillis, (at) => {
              if (entry.position !== from) return Effect.fail(new Deposed({ name }))
              entry.position = to
              entry.status = "running"
              entry.error = undefined
              entry.updatedAt = new Date(at)
              if (deadLetter !== undefined) letters.set(name, [...(letters.get(name) ?? []), deadLetter])
              return Effect.succeed(result)
            })
          ),
        fail: (error) =>
          Effect.map(Clock.currentTimeMillis, (at) => {
            entry.status = "failed"
            entry.error = error
            entry.updatedAt = new Date(at)
          })
      }
      return owned
    })

  return {
    transactional: false,
    own,
    checkpointOf: (name) => Effect.sync(() => entries.get(name)?.position),
    reset: (name, kind, filter, body) =>
      Effect.flatMap(body(undefined), () =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = entryOf(name, kind, filter, now)
          entry.position = LogPosition.start
          entry.updatedAt = new Date(now)
        })
      ),
    statuses: Effect.sync(() =>
      [...entries]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .flatMap(([name, entry]) =>
          statusRows(
            {
              name,
              kind: entry.kind,
              status: entry.status,
              position: entry.position,
              lag: eventsAfter(entry.position).filter((event) => matches(entry.filter, event)).length,
              updatedAt: entry.updatedAt,
              ...(entry.owner === undefined || !owners.has(name) ? {} : { owner: entry.owner }),
              ...(entry.error === undefined ? {} : { error: entry.error })
            },
            [...entry.standbys].map(([instance, since]) => ({ instance, since }))
          )
        )
    ),
    deadLetters: (name) => Effect.sync(() => letters.get(name) ?? [])
  }
}
