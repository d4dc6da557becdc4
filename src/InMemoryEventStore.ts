/**
 * An event store in process memory, for tests and prototypes. It keeps every
 * guarantee of the SQL stores: atomic multi-stream appends, every participant
 * checked, gap-free versions, unique event ids, one global log in commit order
 * (an event's log position is its append's commit number and its global
 * position).
 */
import { Clock, Effect, Either, Layer, Option } from "effect"
import type { RecordedEvent } from "./Event.js"
import * as EventStore from "./EventStore.js"
import * as ExpectedVersion from "./ExpectedVersion.js"
import {
  DuplicateEventId,
  InvalidTruncation,
  StreamArchived,
  StreamNotFound,
  SubjectErased,
  VersionConflict
} from "./errors.js"
import { memoryCheckpoints } from "./internal/checkpoints.js"
import { fromOperations } from "./internal/eventStore.js"
import { newKey } from "./internal/personal.js"
import type {
  Erasure,
  Lifecycle,
  LogFilter,
  LogPage,
  SnapshotStore,
  StoredEventType,
  StoredSnapshot,
  StreamTail
} from "./internal/storeContract.js"
import { uuidv7 } from "./internal/uuid.js"
import * as KeyStore from "./KeyStore.js"
import * as LogPosition from "./LogPosition.js"
import { erasureStream } from "./PersonalData.js"
import type { StreamId } from "./StreamId.js"
import * as StreamWrites from "./StreamWrites.js"

const jsonCopy = <A>(value: A): A => JSON.parse(JSON.stringify(value))

/** Strings in code point order, the order of the SQL stores' (their "C" collation of UTF-8). */
const compareCodePoints = (a: string, b: string): number => {
  const left = Array.from(a, (c) => c.codePointAt(0) as number)
  const right = Array.from(b, (c) => c.codePointAt(0) as number)
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] !== right[i]) return (left[i] as number) - (right[i] as number)
  }
  return left.length - right.length
}

/**
 * A fresh, empty store. Each append checks and writes inside one synchronous
 * step: JavaScript runs it to the end before any other fiber resumes, which is
 * what makes it atomic without locks.
 */
export const make: Effect.Effect<EventStore.EventStore> = Effect.flatMap(
  Effect.serviceOption(KeyStore.KeyStore),
  (providedKeys) => Effect.sync(() => makeStore(Option.getOrUndefined(providedKeys)))
)

const makeStore = (providedKeys: KeyStore.KeyStore | undefined): EventStore.EventStore => {
  const streams = new Map<StreamId, Array<RecordedEvent>>()
  /** Every event in commit order: the global log. */
  const log: Array<RecordedEvent> = []
  const eventIds = new Set<string>()
  let lastPosition = 0n
  let commits = 0n

  const versionOf = (streamId: StreamId) => streams.get(streamId)?.length ?? 0
  /** Archived streams, and where truncated streams' reads start (as `stream_states` on the SQL stores). */
  const archivedAt = new Map<StreamId, Date>()
  const truncatedBefore = new Map<StreamId, number>()

  const commit = (
    writes: StreamWrites.StreamWrites,
    now: number
  ): EventStore.AppendResult | VersionConflict | StreamArchived | DuplicateEventId => {
    const participants = StreamWrites.participants(writes)
    for (const [streamId] of participants) if (archivedAt.has(streamId)) return new StreamArchived({ streamId })
    for (const [streamId, expected] of participants) {
      const actual = versionOf(streamId)
      if (!ExpectedVersion.isSatisfiedBy(expected, actual)) {
        return new VersionConflict({ streamId, expected, actual })
      }
    }
    const newEvents = StreamWrites.events(writes)
    const batchIds = new Set<string>()
    for (const event of newEvents) {
      if (event.eventId === undefined) continue
      const eventId = event.eventId.toLowerCase()
      if (eventIds.has(eventId) || batchIds.has(eventId)) return new DuplicateEventId({ eventId })
      batchIds.add(eventId)
    }

    const versions = new Map<StreamId, number>()
    for (const [streamId] of participants) versions.set(streamId, versionOf(streamId))
    const recordedAt = new Date(now)
    const commitNumber = newEvents.length > 0 ? ++commits : commits
    const recorded = newEvents.map((event): RecordedEvent => {
      const streamVersion = (versions.get(event.streamId) ?? 0) + 1
      versions.set(event.streamId, streamVersion)
      lastPosition += 1n
      return {
        eventId: event.eventId?.toLowerCase() ?? uuidv7(now),
        streamId: event.streamId,
        streamVersion,
        globalPosition: lastPosition,
        position: LogPosition.make(commitNumber, lastPosition),
        eventType: event.eventType,
        schemaVersion: event.schemaVersion ?? 1,
        // The same trip through JSON text that jsonb makes: what reads back is
        // what a SQL store would return, and later mutation of the writer's
        // objects cannot change what was stored.
        data: jsonCopy(event.data),
        metadata: jsonCopy(event.metadata ?? {}),
        recordedAt
      }
    })
    for (const event of recorded) {
      log.push(event)
      eventIds.add(event.eventId)
      let stream = streams.get(event.streamId)
      if (stream === undefined) {
        stream = []
        streams.set(event.streamId, stream)
      }
      stream.push(event)
    }
    return { streamVersions: versions, events: recorded }
  }

  /** Index of the first event after `after` (the log is sorted by position). */
  const firstAfter = (after: LogPosition.LogPosition) => {
    let low = 0
    let high = log.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((log[middle] as RecordedEvent).position <= after) low = middle + 1
      else high = middle
    }
    return low
  }

  const readLog = (after: LogPosition.LogPosition, limit: number, filter: LogFilter) =>
    Effect.sync((): LogPage => {
      const types = filter.eventTypes === undefined ? undefined : new Set(filter.eventTypes)
      const events: Array<RecordedEvent> = []
      for (let i = firstAfter(after); i < log.length && events.length < limit; i++) {
        const event = log[i] as RecordedEvent
        if (types !== undefined && !types.has(event.eventType)) continue
        if (filter.streamPrefix !== undefined && !event.streamId.startsWith(filter.streamPrefix)) continue
        events.push(event)
      }
      const last = events.at(-1)
      if (events.length === limit && last !== undefined) {
        return { events, position: last.position, caughtUp: false, heldBack: false }
      }
      // Every commit so far was examined; later ones are numbered higher.
      return {
        events,
        position: LogPosition.max(after, LogPosition.afterTransaction(commits)),
        caughtUp: true,
        heldBack: false
      }
    })

  const storedTypes = Effect.sync(() => {
    const pairs = new Map<string, { count: number; oldest: RecordedEvent; newest: RecordedEvent }>()
    for (const event of log) {
      const key = JSON.stringify([event.eventType, event.schemaVersion])
      const pair = pairs.get(key)
      if (pair === undefined) pairs.set(key, { count: 1, oldest: event, newest: event })
      else {
        pair.count++
        pair.newest = event
      }
    }
    return [...pairs.values()]
      .map(
        ({ count, oldest, newest }): StoredEventType => ({
          eventType: oldest.eventType,
          schemaVersion: oldest.schemaVersion,
          count,
          samples: oldest === newest ? [oldest] : [oldest, newest]
        })
      )
      .sort((a, b) => compareCodePoints(a.eventType, b.eventType) || a.schemaVersion - b.schemaVersion)
  })

  /** By command, then key: stored as JSON text, so what reads back is what a SQL store's jsonb would give. */
  const snapshots = new Map<string, Map<string, { readonly json: string; readonly covered: number }>>()
  const coveredBy = (snapshot: StoredSnapshot) => snapshot.streams.reduce((sum, [, version]) => sum + version, 0)
  const snapshotStore: SnapshotStore = {
    load: (request) =>
      Effect.sync(() => {
        const stored = snapshots.get(request.command)?.get(request.key)
        const found = stored === undefined ? undefined : (JSON.parse(stored.json) as StoredSnapshot)
        const usable =
          found !== undefined &&
          found.stateVersion === request.stateVersion &&
          found.eventVersions === request.eventVersions
        const covered = new Map(usable ? found.streams : [])
        const tails = request.streams.map((streamId): StreamTail => {
          const from = Math.max(covered.get(streamId) ?? 0, (truncatedBefore.get(streamId) ?? 1) - 1)
          const stream = streams.get(streamId) ?? []
          return { streamId, version: stream.length, after: from, events: stream.slice(from) }
        })
        return found === undefined ? { usable, tails } : { found, usable, tails }
      }),
    save: (snapshot) =>
      Effect.sync(() => {
        let ofCommand = snapshots.get(snapshot.command)
        if (ofCommand === undefined) {
          ofCommand = new Map()
          snapshots.set(snapshot.command, ofCommand)
        }
        const stored = ofCommand.get(snapshot.key)
        const covered = coveredBy(snapshot)
        if (stored !== undefined) {
          const old = JSON.parse(stored.json) as StoredSnapshot
          const sameVersions =
            old.stateVersion === snapshot.stateVersion && old.eventVersions === snapshot.eventVersions
          if (sameVersions && stored.covered >= covered) return false
        }
        ofCommand.set(snapshot.key, { json: JSON.stringify(snapshot), covered })
        return true
      }),
    clear: (command) =>
      Effect.sync(() => {
        const removed = (names: Iterable<string>) => {
          let count = 0
          for (const name of [...names]) {
            count += snapshots.get(name)?.size ?? 0
            snapshots.delete(name)
          }
          return count
        }
        return removed(command === undefined ? snapshots.keys() : [command])
      })
  }

  /** Subjects' keys, and who erased which subject when. */
  const subjectKeys = new Map<string, Uint8Array>()
  const erasures = new Map<string, { readonly by: string; readonly at: Date }>()
  const ownKeys: KeyStore.KeyStore = {
    keysFor: (subjects) =>
      Effect.suspend(() => {
        for (const subject of subjects) if (erasures.has(subject)) return Effect.fail(new SubjectErased({ subject }))
        const found = new Map<string, Uint8Array>()
        for (const subject of subjects) {
          const key = subjectKeys.get(subject) ?? newKey()
          subjectKeys.set(subject, key)
          found.set(subject, key)
        }
        return Effect.succeed(found)
      }),
    existingKeys: (subjects) =>
      Effect.sync(() => {
        const found = new Map<string, Uint8Array>()
        for (const subject of subjects) {
          const key = subjectKeys.get(subject)
          if (key !== undefined) found.set(subject, key)
        }
        return found
      }),
    destroy: (subject) => Effect.sync(() => void subjectKeys.delete(subject))
  }
  // As erase_subject does on the SQL stores (migration 0013), in one synchronous step.
  const erase = (subject: string, by: string): Effect.Effect<Erasure> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync((): Erasure => {
        const before = erasures.get(subject)
        if (before !== undefined) {
          return { subject, erasedBy: before.by, erasedAt: before.at, already: true, snapshotsRemoved: 0 }
        }
        const erasedAt = new Date(now)
        erasures.set(subject, { by, at: erasedAt })
        subjectKeys.delete(subject)
        let snapshotsRemoved = 0
        for (const ofCommand of snapshots.values()) snapshotsRemoved += ofCommand.size
        snapshots.clear()
        const writes = Either.getOrThrow(
          StreamWrites.append(Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, erasureStream, "any")), {
            streamId: erasureStream,
            eventType: "SubjectErased",
            data: { subject }
          })
        )
        const recorded = commit(writes, now)
        const position = "events" in recorded ? recorded.events[0]?.position : undefined
        return { subject, erasedBy: by, erasedAt, already: false, snapshotsRemoved, ...(position ? { position } : {}) }
      })
    )

  // As the functions of migration 0014 do on the SQL stores.
  const lifecycle: Lifecycle = {
    archive: (streamId) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.suspend(() => {
          const version = versionOf(streamId)
          if (version === 0) return Effect.fail(new StreamNotFound({ streamId }))
          const before = archivedAt.get(streamId)
          if (before === undefined) archivedAt.set(streamId, new Date(now))
          return Effect.succeed({
            streamId,
            version,
            archivedAt: before ?? new Date(now),
            already: before !== undefined
          })
        })
      ),
    truncate: (streamId, before) =>
      Effect.suspend(() => {
        const version = versionOf(streamId)
        if (before < 1 || before > version) return Effect.fail(new InvalidTruncation({ streamId, before, version }))
        const point = Math.max(before, truncatedBefore.get(streamId) ?? 1)
        truncatedBefore.set(streamId, point)
        for (const ofCommand of snapshots.values()) {
          for (const [key, stored] of ofCommand) {
            const covers = (JSON.parse(stored.json) as StoredSnapshot).streams.some(([id]) => id === streamId)
            if (covers) ofCommand.delete(key)
          }
        }
        return Effect.succeed({ streamId, version, truncatedBefore: point })
      }),
    // The streams keep their arrays (a version is its place in them); the global log lets the events go.
    purge: Effect.sync(() => {
      const kept = log.filter((event) => event.streamVersion >= (truncatedBefore.get(event.streamId) ?? 1))
      const removed = log.length - kept.length
      log.splice(0, log.length, ...kept)
      return removed
    })
  }

  return fromOperations({
    attributes: { "db.system": "memory" },
    lifecycle,
    keys: providedKeys ?? ownKeys,
    erase,
    snapshots: snapshotStore,
    readLog,
    storedTypes,
    checkpoints: memoryCheckpoints((position) => log.slice(firstAfter(position))),
    read: (streamId, fromVersion, limit) =>
      Effect.sync(() => {
        const stream = streams.get(streamId) ?? []
        if (archivedAt.has(streamId)) return { version: stream.length, events: [], archived: true }
        const start = Math.max(fromVersion, truncatedBefore.get(streamId) ?? 1) - 1
        return { version: stream.length, events: stream.slice(start, start + Math.min(limit, stream.length)) }
      }),
    append: (writes) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const outcome = commit(writes, now)
        return outcome instanceof VersionConflict ||
          outcome instanceof StreamArchived ||
          outcome instanceof DuplicateEventId
          ? Effect.fail(outcome)
          : Effect.succeed(outcome)
      })
  })
}

/** A fresh, empty store per build of the layer. */
export const layer: Layer.Layer<EventStore.EventStore> = Layer.effect(EventStore.EventStore, make)
