/**
 * The event types a store holds, as a check before a deploy lists them: every
 * (event type, schema version) pair with its count and its oldest and newest
 * events. Not part of the public contract suite: a store offers it through
 * its extras (src/internal/storeContract.ts), which custom stores do not see.
 * Shared by the in-memory, PGlite and PostgreSQL suites; `makeLayer` gives a
 * fresh, empty store.
 */
import { Effect, type Layer } from "effect"
import { EventStore, type NewEvent, type RecordedEvent, StreamId } from "eventcore"
import { writesOf } from "eventcore/testing"
import { expect, it } from "vitest"
import { type StoreExtras, storedTypesKey } from "../../src/internal/storeContract.js"

const storedTypes = Effect.flatMap(EventStore.EventStore, (store) => {
  const operation = (store as EventStore.EventStore & StoreExtras)[storedTypesKey]
  if (operation === undefined) return Effect.die(new Error("the store does not list the event types it holds"))
  return operation
})

const append = (stream: string, events: ReadonlyArray<Omit<NewEvent, "streamId">>) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    store.append(writesOf({ streamId: StreamId.unsafeMake(stream), expected: "any", events }))
  ).pipe(Effect.map((result) => result.events))

export const defineStoredTypesTests = (makeLayer: () => Layer.Layer<EventStore.EventStore, unknown>) => {
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
    Effect.runPromise(Effect.provide(effect, makeLayer()))

  it("an empty store holds no event types", async () => {
    expect(await run(storedTypes)).toEqual([])
  })

  it("lists each (event type, schema version) pair once, by type in code point order then version, with its count, oldest and newest events", async () => {
    // Code point order is neither a locale's ("B" before "a") nor JavaScript's
    // default sort's (UTF-16 units put an astral character before U+FF5E).
    const rocket = "\u{1F680}"
    const tilde = "\uFF5E"
    const { first, second, listed } = await run(
      Effect.gen(function* () {
        const first = yield* append("cart-1", [
          { eventType: "a", data: { n: 1 } },
          { eventType: "B", data: { n: 2 }, schemaVersion: 2 },
          { eventType: "a", data: { n: 3 } },
          { eventType: rocket, data: { n: 4 }, schemaVersion: 3 },
          { eventType: tilde, data: { n: 5 } }
        ])
        const second = yield* append("cart-2", [
          { eventType: "a", data: { n: 6 }, schemaVersion: 1 },
          { eventType: "B", data: { n: 7 }, schemaVersion: 10 },
          { eventType: "B", data: { n: 8 }, schemaVersion: 2 },
          { eventType: "a", data: { n: 9 }, schemaVersion: 2 }
        ])
        return { first, second, listed: yield* storedTypes }
      })
    )
    const event = (events: ReadonlyArray<RecordedEvent>, n: number) =>
      events.find((e) => (e.data as { n: number }).n === n) as RecordedEvent
    expect(listed).toEqual([
      { eventType: "B", schemaVersion: 2, count: 2, samples: [event(first, 2), event(second, 8)] },
      { eventType: "B", schemaVersion: 10, count: 1, samples: [event(second, 7)] },
      { eventType: "a", schemaVersion: 1, count: 3, samples: [event(first, 1), event(second, 6)] },
      { eventType: "a", schemaVersion: 2, count: 1, samples: [event(second, 9)] },
      { eventType: tilde, schemaVersion: 1, count: 1, samples: [event(first, 5)] },
      { eventType: rocket, schemaVersion: 3, count: 1, samples: [event(first, 4)] }
    ])
  })
}
