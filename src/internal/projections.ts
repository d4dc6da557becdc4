/**
 * What a store offers projections and reactors: ownership of a name (one
 * active instance at a time), a checkpoint moved by compare-and-set in the
 * same transaction as the work of a batch, failure and dead-letter records,
 * and status. The SQL stores keep all of it in the database
 * (src/sql/projections.ts); the in-memory store here, in memory.
 */
import { hostname } from "node:os"
import { Clock, Data, Deferred, Effect, type Scope } from "effect"
import type { StoreError } from "../errors.js"
import * as LogPosition from "../LogPosition.js"
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

export interface StatusRow {
  readonly name: string
  readonly kind: Kind
  readonly status: "running" | "stopped" | "failed"
  readonly position: LogPosition.LogPosition
  readonly owner?: string
  readonly updatedAt: Date
  readonly error?: string
}

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
   * Owns `name` for the scope: waits (stands by) while another instance owns
   * it, creating its checkpoint at the start of the log if it has none.
   */
  readonly own: (name: string, kind: Kind) => Effect.Effect<Owned, StoreError, Scope.Scope>
  readonly checkpointOf: (name: string) => Effect.Effect<LogPosition.LogPosition | undefined, StoreError>
  /**
   * Moves the checkpoint of `name` back to the start and runs `body` in one
   * transaction (the read model's reset); an instance running it sees its
   * checkpoint moved and replays.
   */
  readonly reset: <E, R>(
    name: string,
    kind: Kind,
    body: (db: Database | undefined) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | StoreError, R>
  readonly statuses: Effect.Effect<ReadonlyArray<StatusRow>, StoreError>
  /** Events of the log after `position`: how far a projection lags. */
  readonly lag: (position: LogPosition.LogPosition) => Effect.Effect<number, StoreError>
  readonly deadLetters: (name: string) => Effect.Effect<ReadonlyArray<DeadLetter>, StoreError>
}

/** Who an instance is, in `owner` columns and logs: host, process, and a tag for the instance. */
export const instanceName = () => `${hostname()}/${process.pid}/${Math.random().toString(16).slice(2, 8)}`

/** How often an instance standing by looks whether it may take over. */
export const standbyPoll = "1 second"

/** Checkpoints, ownership and dead letters in memory, for the in-memory store. */
export const memoryBackend = (countAfter: (position: LogPosition.LogPosition) => number): ProjectionBackend => {
  interface Entry {
    kind: Kind
    position: LogPosition.LogPosition
    status: StatusRow["status"]
    owner: string | undefined
    error: string | undefined
    updatedAt: Date
  }
  const entries = new Map<string, Entry>()
  const owners = new Set<string>()
  const letters = new Map<string, Array<DeadLetter>>()
  const released = makeSignal()

  const entryOf = (name: string, kind: Kind, now: number) => {
    let entry = entries.get(name)
    if (entry === undefined) {
      entry = {
        kind,
        position: LogPosition.start,
        status: "stopped",
        owner: undefined,
        error: undefined,
        updatedAt: new Date(now)
      }
      entries.set(name, entry)
    }
    return entry
  }

  const own = (name: string, kind: Kind) =>
    Effect.gen(function* () {
      const owner = instanceName()
      for (;;) {
        const wakeup = yield* released.current
        if (!owners.has(name)) break
        yield* Effect.race(Deferred.await(wakeup), Effect.sleep(standbyPoll))
      }
      owners.add(name)
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          Effect.sync(() => {
            owners.delete(name)
            const entry = entries.get(name)
            if (entry !== undefined && entry.status === "running") entry.status = "stopped"
          }),
          released.notify
        )
      )
      const now = yield* Clock.currentTimeMillis
      const entry = entryOf(name, kind, now)
      entry.owner = owner
      entry.status = "running"
      entry.updatedAt = new Date(now)
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
    reset: (name, kind, body) =>
      Effect.flatMap(body(undefined), () =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = entryOf(name, kind, now)
          entry.position = LogPosition.start
          entry.updatedAt = new Date(now)
        })
      ),
    statuses: Effect.sync(() =>
      [...entries].map(
        ([name, entry]): StatusRow => ({
          name,
          kind: entry.kind,
          status: entry.status,
          position: entry.position,
          updatedAt: entry.updatedAt,
          ...(entry.owner === undefined || !owners.has(name) ? {} : { owner: entry.owner }),
          ...(entry.error === undefined ? {} : { error: entry.error })
        })
      )
    ),
    lag: (position) => Effect.sync(() => countAfter(position)),
    deadLetters: (name) => Effect.sync(() => letters.get(name) ?? [])
  }
}
