/** The README's direct use of the store: a write set with a read-only participant, then reads. */
import { Effect, Either, pipe } from "effect"
import { EventStore, StreamId, StreamWrites } from "eventcore"

const orderId = StreamId.unsafeMake("order-42")
const customerId = StreamId.unsafeMake("customer-7")

const writes = pipe(
  StreamWrites.empty,
  StreamWrites.expect(orderId, 3), // write to order, expecting version 3
  Either.flatMap(StreamWrites.expect(customerId, 7)), // read-only participant: checked, not written
  Either.flatMap(StreamWrites.append({ streamId: orderId, eventType: "Shipped", data: { carrier: "ups" } }))
)

export const ship = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const result = yield* store.append(yield* writes) // all or nothing
  const order = yield* store.readStream(orderId, { fromVersion: 1, maxCount: 100 })
  // store.streamEvents(orderId, { pageSize: 500 }) is a Stream pulled page by page
  return { result, order }
})
