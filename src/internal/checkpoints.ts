/**
 * Checkpoints of projections and reactors (`CheckpointStore`, see
 * `internal/storeContract.ts`): what every store's shares (status rows,
 * instance names, the standby poll), and the in-memory store's. The SQL
 * stores keep theirs in the database (src/sql/checkpoints.ts).
 */
import { hostname } from "node:os"
import { Clock, Deferred, Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import * as LogPosition from "../LogPosition.js"
import { makeSignal } from "./follow.js"
import {
  CheckpointMoved,
  type CheckpointStore,
  type DeadLetter,
  type LogFilter,
  type Ownership,
  type ProjectionKind,
  type ProjectionStatus,
  type Standby
} from "./storeContract.js"

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
export const memoryCheckpoints = (
  eventsAfter: (position: LogPosition.LogPosition) => ReadonlyArray<RecordedEvent>
): CheckpointStore => {
  interface Entry {
    kind: ProjectionKind
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

  const entryOf = (name: string, kind: ProjectionKind, filter: LogFilter, now: number) => {
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

  const own = (name: string, kind: ProjectionKind, filter: LogFilter) =>
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
      const ownership: Ownership = {
        checkpoint: Effect.sync(() => entry.position),
        commit: (from, to, body, deadLetter) =>
          Effect.flatMap(body(undefined), () =>
            Effect.flatMap(Clock.currentTimeMillis, (at) => {
              if (entry.position !== from) return Effect.fail(new CheckpointMoved({ name }))
              entry.position = to
              entry.status = "running"
              entry.error = undefined
              entry.updatedAt = new Date(at)
              if (deadLetter !== undefined) letters.set(name, [...(letters.get(name) ?? []), deadLetter])
              return Effect.void
            })
          ),
        fail: (error) =>
          Effect.map(Clock.currentTimeMillis, (at) => {
            entry.status = "failed"
            entry.error = error
            entry.updatedAt = new Date(at)
          })
      }
      return ownership
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
