/**
 * A store as a store author would first give the contract suite: one database
 * for every test of a file, already holding events, and written to while the
 * suite runs. The events look like the suite's own (the stream names and event
 * types its cases once used unscoped), and there are more of them than a
 * filtered read examines at once, so a case that read the log as if the store
 * held only its own events would fail here.
 */
import { Effect, Exit, Fiber, type Layer } from "effect"
import { EventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { afterAll, beforeAll } from "vitest"

const streams = [
  "order-1",
  "order-2",
  "customer-1",
  "a_b-1",
  "axb-1",
  "log-a",
  "log-b",
  "log-c",
  "paged-log",
  "paging-0",
  "rare",
  "live",
  "from-here",
  "after-interrupt",
  "writer-0",
  "shared-0"
].map(StreamId.unsafeMake)

const types = ["Placed", "Paid", "Registered", "Shipped", "Rare", "Tested", "Mark", "Modelled"]

const append = (streamId: StreamId.StreamId, events: ReadonlyArray<{ eventType: string; data: unknown }>) =>
  Effect.flatMap(EventStore.EventStore, (store) => store.append(writesOf({ streamId, expected: "any", events })))

/** 12,000 events on streams `common-0..11`, then every type on every stream above. */
const unrelatedEvents = Effect.gen(function* () {
  for (let i = 0; i < 12; i++) yield* append(StreamId.unsafeMake(`common-${i}`), testEvents(1000))
  for (const streamId of streams)
    yield* append(
      streamId,
      types.map((eventType, n) => ({ eventType, data: { n } }))
    )
})

/** One event at a time, on those streams with those types, every 20 ms, until interrupted. */
const keepWriting = Effect.gen(function* () {
  for (let n = 0; ; n++) {
    yield* append(streams[n % streams.length] as StreamId.StreamId, [
      { eventType: types[n % types.length] as string, data: { n } }
    ])
    yield* Effect.sleep("20 millis")
  }
})

/**
 * Fills the store `layer` opens before the file's tests and keeps writing to
 * it until they end; fails the file if that writer failed meanwhile.
 */
export const useUnrelatedEvents = (layer: () => Layer.Layer<EventStore.EventStore, unknown>) => {
  let writer: Fiber.RuntimeFiber<never, unknown> | undefined
  beforeAll(async () => {
    await Effect.runPromise(Effect.provide(unrelatedEvents, layer()))
    writer = Effect.runFork(Effect.provide(keepWriting, layer()))
  }, 120_000)
  afterAll(async () => {
    if (writer === undefined) return
    const failed = writer.unsafePoll()
    await Effect.runPromise(Fiber.interrupt(writer))
    if (failed !== null && Exit.isFailure(failed)) throw new Error(`the unrelated writer failed: ${failed.cause}`)
  })
}
