/**
 * Personal data through a store's operations: an append seals the personal
 * values of its events (write forms become ciphertext under each subject's
 * key, and the event's metadata names its subjects), and every read opens them
 * again (the values, or `{"$erased": ...}` where a subject's key is gone).
 * Reads check the metadata, so an event without personal data costs one
 * property lookup, and an append without it one walk of its data.
 */
import { Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import { type InvalidPersonalData, StoreError, type SubjectErased } from "../errors.js"
import type { KeyStore } from "../KeyStore.js"
import { subjectsMetadataKey } from "../PersonalData.js"
import * as StreamWrites from "../StreamWrites.js"
import { open, seal, subjectsToSeal } from "./personal.js"
import type { AppendError, AppendResult, SnapshotStore, StoreOperations, StreamTail } from "./storeContract.js"

/** The subjects an event read back holds personal data of, from its metadata (undefined when none). */
const subjectsOf = (event: RecordedEvent): ReadonlyArray<string> | undefined => {
  const subjects = event.metadata[subjectsMetadataKey]
  return Array.isArray(subjects) && subjects.length > 0 ? (subjects as ReadonlyArray<string>) : undefined
}

/**
 * `events` with their personal values opened by `keys`, or undefined when
 * none holds any: the caller then passes its result on as it is, without a
 * step of its own (reads are hot paths).
 */
const openAll = (
  operation: string,
  keys: KeyStore,
  events: ReadonlyArray<RecordedEvent>
): Effect.Effect<ReadonlyArray<RecordedEvent>, StoreError> | undefined => {
  let subjects: Set<string> | undefined
  for (const event of events) {
    const of = subjectsOf(event)
    if (of === undefined) continue
    subjects ??= new Set()
    for (const subject of of) subjects.add(subject)
  }
  if (subjects === undefined) return undefined
  return Effect.flatMap(keys.existingKeys(subjects), (found) =>
    Effect.try({
      try: () =>
        events.map((event) => (subjectsOf(event) === undefined ? event : { ...event, data: open(event.data, found) })),
      // A value that fails to authenticate: the stored ciphertext or its key was changed.
      catch: (cause) =>
        new StoreError({
          operation,
          message: `Cannot read personal data (${cause instanceof Error ? cause.message : String(cause)}): a stored value or its key was changed outside eventcore.`,
          cause
        })
    })
  )
}

/** `result` with its events opened, or `result` itself (as an Effect) when none holds personal data. */
const openEvents = <A extends { readonly events: ReadonlyArray<RecordedEvent> }>(
  operation: string,
  keys: KeyStore,
  result: A
): Effect.Effect<A, StoreError> => {
  const opening = openAll(operation, keys, result.events)
  return opening === undefined ? Effect.succeed(result) : Effect.map(opening, (events) => ({ ...result, events }))
}

export const withPersonalData = (operations: StoreOperations, keys: KeyStore): StoreOperations => {
  const append = (
    writes: StreamWrites.StreamWrites
  ): Effect.Effect<AppendResult, AppendError | InvalidPersonalData | SubjectErased> => {
    const events = StreamWrites.events(writes)
    let sealing: Array<ReadonlySet<string> | undefined> | undefined
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as (typeof events)[number]
      const found = subjectsToSeal(event.data, event.metadata ?? {})
      if (found === undefined) continue
      if (found._tag === "Left") return Effect.fail(found.left)
      sealing ??= new Array(events.length)
      sealing[i] = found.right
    }
    if (sealing === undefined) return operations.append(writes)
    const plan = sealing
    const subjects = new Set(plan.flatMap((of) => (of === undefined ? [] : [...of])))
    return Effect.flatMap(keys.keysFor(subjects), (found) => {
      const sealed = events.map((event, i) => {
        const of = plan[i]
        if (of === undefined) return event
        const metadata = event.metadata ?? {}
        return {
          ...event,
          data: seal(event.data, metadata, found),
          metadata: { ...metadata, [subjectsMetadataKey]: [...of].sort() }
        }
      })
      return Effect.map(operations.append(StreamWrites.unsafeWithEvents(writes, sealed)), (result) => ({
        ...result,
        // What the append returns reads as what any read returns: the values, opened.
        events: result.events.map((event, i) =>
          plan[i] === undefined ? event : { ...event, data: open(event.data, found) }
        )
      }))
    })
  }

  const openTails = (tails: ReadonlyArray<StreamTail>) =>
    Effect.forEach(tails, (tail) => openEvents("load_snapshot", keys, tail))

  const snapshots: SnapshotStore | undefined =
    operations.snapshots === undefined
      ? undefined
      : {
          ...operations.snapshots,
          load: (request) =>
            Effect.flatMap((operations.snapshots as SnapshotStore).load(request), (load) =>
              Effect.map(openTails(load.tails), (tails) => ({ ...load, tails }))
            )
        }

  return {
    ...operations,
    append,
    read: (streamId, fromVersion, limit) =>
      Effect.flatMap(operations.read(streamId, fromVersion, limit), (read) => openEvents("read_stream", keys, read)),
    readLog: (after, limit, filter) =>
      Effect.flatMap(operations.readLog(after, limit, filter), (page) => openEvents("read_all", keys, page)),
    ...(operations.storedTypes === undefined
      ? {}
      : {
          storedTypes: Effect.flatMap(operations.storedTypes, (types) =>
            Effect.forEach(types, (type) =>
              Effect.map(openEvents("stored_types", keys, { events: type.samples }), ({ events }) => ({
                ...type,
                samples: events
              }))
            )
          )
        }),
    ...(snapshots === undefined ? {} : { snapshots })
  }
}
