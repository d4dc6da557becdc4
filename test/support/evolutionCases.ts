/**
 * Schema evolution against a store, shared by the in-memory and PGlite suite
 * (test/evolution.test.ts) and the PostgreSQL one
 * (test/postgres/evolution.test.ts). The domain is a shopping cart whose
 * events changed over three releases: `ItemAdded` went from {sku} to
 * {sku, quantity} to {sku, quantity, unitPrice}; it was called `ProductAdded`
 * at first; `CartCleared {skus}` was given up for one `ItemRemoved` per sku;
 * and an analytics job writes `CartViewed` into carts, which the cart ignores.
 */
import { Effect, Schedule, Schema, type Scope } from "effect"
import {
  Command,
  EventDecodeError,
  EventSchema,
  EventStore,
  type ExpectedVersion,
  execute,
  type LogPosition,
  type NewEvent,
  Projection,
  type RecordedEvent,
  StreamId,
  UnknownEventType
} from "eventcore"
import { writesOf } from "eventcore/testing"
import { describe, expect, it } from "vitest"

/** Runs `body` against a fresh, empty store. */
export type WithStore = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore | Scope.Scope>) => Promise<A>

/** The prices given to items added before `ItemAdded` had a `unitPrice` (version 3). */
const pricesAtUpgrade: ReadonlyMap<string, number> = new Map([
  ["apple", 50],
  ["pear", 80],
  ["plum", 120]
])

export const priceAtUpgrade = (sku: string) => pricesAtUpgrade.get(sku) ?? 0

const ItemAdded = Schema.TaggedStruct("ItemAdded", {
  sku: Schema.String,
  quantity: Schema.Int.pipe(Schema.positive()),
  unitPrice: Schema.NonNegativeInt
}).pipe(
  EventSchema.versions(
    EventSchema.upcast(Schema.Struct({ sku: Schema.String }), (v1) => ({ ...v1, quantity: 1 })),
    EventSchema.upcast(Schema.Struct({ sku: Schema.String, quantity: Schema.Int }), (v2) => ({
      ...v2,
      unitPrice: priceAtUpgrade(v2.sku)
    }))
  )
)

const ItemRemoved = Schema.TaggedStruct("ItemRemoved", { sku: Schema.String })

const cartEvents = Schema.Union(ItemAdded, ItemRemoved)

const renamedAndReplaced = {
  renamed: { ProductAdded: "ItemAdded" },
  replaced: {
    CartCleared: EventSchema.replacedBy(Schema.Struct({ skus: Schema.Array(Schema.String) }), ({ skus }) =>
      skus.map((sku) => ItemRemoved.make({ sku }))
    )
  }
} as const

export const CartEvent = EventSchema.evolve(cartEvents, { ...renamedAndReplaced, ignored: ["CartViewed"] })
export type CartEvent = typeof CartEvent.Type

/** The cart's events as an application that never heard of `CartViewed` reads them. */
const CartEventUnawareOfViews = EventSchema.evolve(cartEvents, renamedAndReplaced)

interface Line {
  readonly sku: string
  readonly quantity: number
  readonly unitPrice: number
}

/** A cart's lines, in the order their items were first added. */
type Cart = ReadonlyArray<Line>

const cartStream = (cart: string) => StreamId.unsafeMake(`cart-${cart}`)

const applyCartEvent = (cart: Cart, event: CartEvent): Cart => {
  switch (event._tag) {
    case "ItemAdded": {
      const { sku, quantity, unitPrice } = event
      return cart.some((line) => line.sku === sku)
        ? cart.map((line) => (line.sku === sku ? { sku, quantity: line.quantity + quantity, unitPrice } : line))
        : [...cart, { sku, quantity, unitPrice }]
    }
    case "ItemRemoved":
      return cart.filter((line) => line.sku !== event.sku)
  }
}

interface AddItemInput extends Line {
  readonly cart: string
}

const AddItem = Command.make({
  name: "AddItem",
  event: CartEvent,
  streams: (input: AddItemInput) => [cartStream(input.cart)],
  initialState: [] as Cart,
  apply: (cart, event) => applyCartEvent(cart, event),
  decide: (_cart, { cart, sku, quantity, unitPrice }) =>
    Effect.succeed([{ streamId: cartStream(cart), event: ItemAdded.make({ sku, quantity, unitPrice }) }])
})

/** `command`, keeping every event its fold applies and every state its decision sees. */
const observe = <Input, State, Event extends { readonly _tag: string }, Encoded, DomainError, R>(
  command: Command.Command<Input, State, Event, Encoded, DomainError, R>
) => {
  const applied: Array<Event> = []
  const decided: Array<State> = []
  const observed = Command.make({
    ...command,
    apply: (state, event, recorded) => {
      applied.push(event)
      return command.apply(state, event, recorded)
    },
    decide: (state, input) => {
      decided.push(state)
      return command.decide(state, input)
    }
  })
  return { command: observed, applied, decided }
}

/** The carts as a projection keeps them: in memory, so that it runs on every store. */
const cartLines = (name: string) => {
  const carts = new Map<string, Cart>()
  const projection = Projection.make({
    name,
    event: CartEvent,
    filter: { streamPrefix: "cart-" },
    handle: (event, recorded) =>
      Effect.sync(() => {
        const cart = recorded.streamId.slice("cart-".length)
        carts.set(cart, applyCartEvent(carts.get(cart) ?? [], event))
      }),
    reset: Effect.sync(() => carts.clear())
  })
  return { projection, carts: () => Object.fromEntries(carts) }
}

/** One event a batch: the read model lives outside the batch's transaction, so a batch rolled back must not have touched it. */
const oneEventABatch = { batchSize: 1, retry: Schedule.recurs(1) }

/** Appends stored events as they are, old versions and types included, to one stream. */
const appendStored = (
  streamId: StreamId.StreamId,
  expected: ExpectedVersion.ExpectedVersion,
  events: ReadonlyArray<Omit<NewEvent, "streamId">>
) => Effect.flatMap(EventStore.EventStore, (store) => store.append(writesOf({ streamId, expected, events })))

const lastPositionOf = (written: { readonly events: ReadonlyArray<RecordedEvent> }): LogPosition.LogPosition =>
  (written.events.at(-1) as RecordedEvent).position

/** What a stream holds, as it was stored. */
const storedForm = (streamId: StreamId.StreamId) =>
  Effect.flatMap(EventStore.EventStore, (store) => store.readStream(streamId)).pipe(
    Effect.map((read) => read.events.map(({ eventType, schemaVersion, data }) => ({ eventType, schemaVersion, data })))
  )

const line = (sku: string, quantity: number, unitPrice: number): Line => ({ sku, quantity, unitPrice })
const added = (sku: string, quantity: number, unitPrice: number): CartEvent =>
  ItemAdded.make({ sku, quantity, unitPrice })

export const defineEvolutionTests = (withStore: WithStore) => {
  describe("a command", () => {
    it("folds ItemAdded of versions 1, 2 and 3 in one stream as today's events, and appends version 3", () =>
      withStore(
        Effect.gen(function* () {
          const cart = cartStream("mixed")
          yield* appendStored(cart, "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "pear", quantity: 2 } }
          ])
          const third = yield* execute(AddItem, { cart: "mixed", sku: "plum", quantity: 3, unitPrice: 125 })
          expect(third.events.map((event) => event.schemaVersion)).toEqual([3])

          const { command, applied, decided } = observe(AddItem)
          const result = yield* execute(command, { cart: "mixed", sku: "apple", quantity: 4, unitPrice: 55 })
          expect(applied).toEqual([added("apple", 1, 50), added("pear", 2, 80), added("plum", 3, 125)])
          expect(decided).toEqual([[line("apple", 1, 50), line("pear", 2, 80), line("plum", 3, 125)]])
          expect(result.events.map(({ streamVersion, schemaVersion }) => ({ streamVersion, schemaVersion }))).toEqual([
            { streamVersion: 4, schemaVersion: 3 }
          ])
          // Stored events are never rewritten: each keeps the form and version it was written with.
          expect(yield* storedForm(cart)).toEqual([
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "pear", quantity: 2 } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "plum", quantity: 3, unitPrice: 125 } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "apple", quantity: 4, unitPrice: 55 } }
          ])
        })
      ))

    it("folds past a type its union declares ignored; without the declaration it fails with UnknownEventType and writes nothing", () =>
      withStore(
        Effect.gen(function* () {
          const cart = cartStream("viewed")
          yield* appendStored(cart, "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
            { eventType: "CartViewed", data: { by: "analytics" } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "pear", quantity: 2 } }
          ])
          const input = { cart: "viewed", sku: "plum", quantity: 1, unitPrice: 120 }

          const unaware = Command.make({ ...AddItem, event: CartEventUnawareOfViews })
          const refused = yield* Effect.flip(execute(unaware, input))
          expect(refused).toBeInstanceOf(UnknownEventType)
          expect(refused).toMatchObject({ streamId: cart, streamVersion: 2, eventType: "CartViewed" })
          expect(refused.message).toContain('"CartViewed" at version 2 of stream "cart-viewed"')
          expect(yield* storedForm(cart)).toHaveLength(3)

          const { command, applied, decided } = observe(AddItem)
          const result = yield* execute(command, input)
          expect(applied).toEqual([added("apple", 1, 50), added("pear", 2, 80)])
          expect(decided).toEqual([[line("apple", 1, 50), line("pear", 2, 80)]])
          expect(result.events.map((event) => event.streamVersion)).toEqual([4])
        })
      ))

    it("fails with EventDecodeError, saying so, on an event stored at a version newer than the application's", () =>
      withStore(
        Effect.gen(function* () {
          const cart = cartStream("future")
          yield* appendStored(cart, "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 4, data: { sku: "apple", quantity: 1, unitPrice: 50, vat: 10 } }
          ])
          const refused = yield* Effect.flip(
            execute(AddItem, { cart: "future", sku: "pear", quantity: 1, unitPrice: 80 })
          )
          expect(refused).toBeInstanceOf(EventDecodeError)
          expect(refused).toMatchObject({
            streamId: cart,
            streamVersion: 1,
            eventType: "ItemAdded",
            cause: expect.stringContaining(
              "stored at schema version 4 of ItemAdded, but this application knows versions up to 3"
            )
          })
          expect(yield* storedForm(cart)).toHaveLength(1)
        })
      ))
  })

  describe("a command and a projection", () => {
    it("read events stored under a type's old name as today's type", () =>
      withStore(
        Effect.gen(function* () {
          const cart = cartStream("renamed")
          // Written before event types had versions: version 1, the shape of ItemAdded's first.
          yield* appendStored(cart, "no_stream", [{ eventType: "ProductAdded", data: { sku: "pear" } }])
          const { command, applied } = observe(AddItem)
          const result = yield* execute(command, { cart: "renamed", sku: "apple", quantity: 2, unitPrice: 55 })
          expect(applied).toEqual([added("pear", 1, 80)])

          const { projection, carts } = cartLines("renamed-lines")
          yield* Effect.forkScoped(Projection.run(projection, oneEventABatch))
          yield* Projection.waitFor(projection, lastPositionOf(result))
          expect(carts()).toEqual({ renamed: [line("pear", 1, 80), line("apple", 2, 55)] })
        })
      ))

    it("read an obsolete CartCleared as one ItemRemoved per sku", () =>
      withStore(
        Effect.gen(function* () {
          const cart = cartStream("cleared")
          yield* appendStored(cart, "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "apple", quantity: 2, unitPrice: 50 } },
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "pear" } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "plum", quantity: 1, unitPrice: 125 } },
            { eventType: "CartCleared", data: { skus: ["apple", "pear"] } }
          ])
          const { command, applied, decided } = observe(AddItem)
          const result = yield* execute(command, { cart: "cleared", sku: "fig", quantity: 1, unitPrice: 30 })
          expect(applied).toEqual([
            added("apple", 2, 50),
            added("pear", 1, 80),
            added("plum", 1, 125),
            ItemRemoved.make({ sku: "apple" }),
            ItemRemoved.make({ sku: "pear" })
          ])
          expect(decided).toEqual([[line("plum", 1, 125)]])

          const { projection, carts } = cartLines("cleared-lines")
          yield* Effect.forkScoped(Projection.run(projection, oneEventABatch))
          yield* Projection.waitFor(projection, lastPositionOf(result))
          expect(carts()).toEqual({ cleared: [line("plum", 1, 125), line("fig", 1, 30)] })
        })
      ))
  })

  describe("a projection", () => {
    it("rebuilt over mixed versions, renames, splits and ignored types holds what today's events make", () =>
      withStore(
        Effect.gen(function* () {
          // The same history twice: once as the releases wrote it, once as today's release would have.
          yield* appendStored(cartStream("old"), "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
            { eventType: "ProductAdded", data: { sku: "pear" } },
            { eventType: "CartViewed", data: { by: "analytics" } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "plum", quantity: 2 } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "kiwi", quantity: 1 } },
            { eventType: "CartCleared", data: { skus: ["apple", "kiwi"] } }
          ])
          yield* appendStored(cartStream("new"), "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "apple", quantity: 1, unitPrice: 50 } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "pear", quantity: 1, unitPrice: 80 } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "plum", quantity: 2, unitPrice: 120 } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "kiwi", quantity: 1, unitPrice: 0 } },
            { eventType: "ItemRemoved", data: { sku: "apple" } },
            { eventType: "ItemRemoved", data: { sku: "kiwi" } }
          ])
          yield* execute(AddItem, { cart: "old", sku: "fig", quantity: 1, unitPrice: 30 })
          const last = yield* execute(AddItem, { cart: "new", sku: "fig", quantity: 1, unitPrice: 30 })
          const expected = [line("pear", 1, 80), line("plum", 2, 120), line("fig", 1, 30)]

          const { projection, carts } = cartLines("rebuilt-lines")
          yield* Projection.rebuild(projection)
          yield* Effect.forkScoped(Projection.run(projection, oneEventABatch))
          yield* Projection.waitFor(projection, lastPositionOf(last))
          expect(carts()).toEqual({ old: expected, new: expected })

          // Again while it runs: it replays from the start into an emptied read model.
          yield* Projection.rebuild(projection)
          yield* Projection.waitFor(projection, lastPositionOf(last))
          expect(carts()).toEqual({ old: expected, new: expected })
        })
      ))

    it("handling a whole batch gets today's events of mixed versions in log order, each once", () =>
      withStore(
        Effect.gen(function* () {
          const written = yield* appendStored(cartStream("batched"), "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "apple", quantity: 1, unitPrice: 50 } },
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "pear" } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "plum", quantity: 2, unitPrice: 120 } },
            { eventType: "CartCleared", data: { skus: ["apple"] } },
            { eventType: "ItemAdded", schemaVersion: 3, data: { sku: "fig", quantity: 1, unitPrice: 30 } }
          ])
          const seen: Array<CartEvent> = []
          const Batched = Projection.make({
            name: "batched-lines",
            event: CartEvent,
            filter: { streamPrefix: "cart-batched" },
            handleBatch: (events) => Effect.sync(() => seen.push(...events.map(({ event }) => event)))
          })
          yield* Effect.forkScoped(Projection.run(Batched, { batchSize: 10 }))
          yield* Projection.waitFor(Batched, lastPositionOf(written))
          expect(seen).toEqual([
            added("apple", 1, 50),
            added("pear", 1, 80),
            added("plum", 2, 120),
            ItemRemoved.make({ sku: "apple" }),
            added("fig", 1, 30)
          ])
        })
      ))

    describe("meeting an event that does not upcast", () => {
      const withBrokenCart = Effect.gen(function* () {
        const written = yield* appendStored(cartStream("broken"), "no_stream", [
          { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
          { eventType: "ItemAdded", schemaVersion: 1, data: { sku: 7 } },
          { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "pear", quantity: 2 } }
        ])
        return { broken: written.events[1] as RecordedEvent, last: lastPositionOf(written) }
      })

      it("stops with ProjectionFailed at that event, the decode error its cause", () =>
        withStore(
          Effect.gen(function* () {
            const { broken } = yield* withBrokenCart
            const { projection, carts } = cartLines("stopping-lines")
            const failure = yield* Effect.flip(Projection.run(projection, oneEventABatch))
            expect(failure).toMatchObject({
              _tag: "ProjectionFailed",
              projection: "stopping-lines",
              eventId: broken.eventId,
              position: broken.position
            })
            const cause = (failure as { readonly cause: unknown }).cause
            expect(cause).toBeInstanceOf(EventDecodeError)
            expect(cause).toMatchObject({
              streamId: cartStream("broken"),
              streamVersion: 2,
              eventType: "ItemAdded",
              cause: expect.stringContaining("Expected string, actual 7")
            })
            expect(carts()).toEqual({ broken: [line("apple", 1, 50)] })
            const [status] = yield* Projection.status
            expect(status).toMatchObject({ status: "failed", error: expect.stringContaining("EventDecodeError") })
            expect((status?.position ?? broken.position) < broken.position).toBe(true)
          })
        ))

      it('under onError: "skip", dead-letters it and moves on', () =>
        withStore(
          Effect.gen(function* () {
            const { broken, last } = yield* withBrokenCart
            const { projection, carts } = cartLines("skipping-lines")
            yield* Effect.forkScoped(Projection.run(projection, { ...oneEventABatch, onError: "skip" }))
            yield* Projection.waitFor(projection, last)
            expect(carts()).toEqual({ broken: [line("apple", 1, 50), line("pear", 2, 80)] })
            expect(yield* Projection.deadLetters(projection)).toEqual([
              {
                eventId: broken.eventId,
                position: broken.position,
                eventType: "ItemAdded",
                error: expect.stringContaining("Expected string, actual 7")
              }
            ])
          })
        ))
    })
  })

  describe("EventSchema.check", () => {
    it("lists every stored (type, version) pair with its count; the unknown type and the undecodable pair fail", () =>
      withStore(
        Effect.gen(function* () {
          yield* appendStored(cartStream("a"), "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "apple" } },
            { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "pear", quantity: 2 } },
            { eventType: "CartViewed", data: { by: "analytics" } },
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "plum" } }
          ])
          yield* execute(AddItem, { cart: "a", sku: "fig", quantity: 1, unitPrice: 30 })
          yield* appendStored(cartStream("b"), "no_stream", [
            { eventType: "ProductAdded", data: { sku: "pear" } },
            { eventType: "ItemRemoved", data: { sku: "pear" } },
            { eventType: "CouponApplied", data: { code: "SPRING" } }
          ])
          yield* appendStored(cartStream("c"), "no_stream", [
            { eventType: "ProductAdded", data: { sku: "kiwi" } },
            { eventType: "CartCleared", data: { skus: ["kiwi"] } }
          ])
          // The newest ItemAdded of version 1, so one of the pair's samples.
          yield* appendStored(cartStream("broken"), "no_stream", [
            { eventType: "ItemAdded", schemaVersion: 1, data: { sku: 7 } }
          ])
          // A catalogue projection's schema beside the cart's: it reads ItemAdded only.
          const report = yield* EventSchema.check([CartEvent, Schema.Union(ItemAdded)])

          const decoded = (eventType: string, schemaVersion: number, count: number, readBy: ReadonlyArray<number>) => ({
            eventType,
            schemaVersion,
            count,
            outcome: "decoded",
            readBy
          })
          const unknown = { eventType: "CouponApplied", schemaVersion: 1, count: 1, outcome: "unknown", readBy: [] }
          const failed = {
            eventType: "ItemAdded",
            schemaVersion: 1,
            count: 3,
            outcome: "failed",
            readBy: [0, 1],
            error: expect.stringMatching(/ItemAdded at version 1 of stream "cart-broken".*Expected string, actual 7/s)
          }
          expect(report.types).toEqual([
            decoded("CartCleared", 1, 1, [0]),
            { eventType: "CartViewed", schemaVersion: 1, count: 1, outcome: "ignored", readBy: [] },
            unknown,
            failed,
            decoded("ItemAdded", 2, 1, [0, 1]),
            decoded("ItemAdded", 3, 1, [0, 1]),
            decoded("ItemRemoved", 1, 1, [0]),
            decoded("ProductAdded", 1, 2, [0])
          ])
          expect(report.failures).toEqual([unknown, failed])
        })
      ))
  })
}
