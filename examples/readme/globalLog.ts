/** The README's global log: a page, a stream of pages, and a live subscription. */
import { Effect, Stream } from "effect"
import { EventStore, LogMessage, LogPosition, type RecordedEvent } from "eventcore"

declare const checkpoint: LogPosition.LogPosition
declare const handle: (event: RecordedEvent) => Effect.Effect<void>
declare const save: (position: LogPosition.LogPosition) => Effect.Effect<void>

export const follow = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const page = yield* store.readAll({ after: LogPosition.start, maxCount: 500, filter: { eventTypes: ["Shipped"] } })
  // page.events (log order), page.position (resume here), page.caughtUp (reached the readable head)

  store.streamAll({ after: checkpoint, pageSize: 1000 }) // a Stream of events, ending at the head, memory bounded by the page
  yield* store
    .subscribe({ after: checkpoint }) // catches up, then follows live; never ends by itself
    .pipe(
      Stream.runForEach(
        LogMessage.match({ Event: ({ event }) => handle(event), CaughtUp: ({ position }) => save(position) })
      )
    )
  return page
})
