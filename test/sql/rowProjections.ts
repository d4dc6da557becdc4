/**
 * Row projections and batch handlers against a SQL store, shared by the
 * PGlite suite (test/projections.test.ts) and the PostgreSQL one
 * (test/postgres/projectionsShared.test.ts). The read model is a table of
 * carts with columns of several types (text key, bigint, timestamptz, jsonb),
 * created by each test; its events are written straight to the store.
 */
import { sql } from "drizzle-orm"
import { bigint, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core"
import { Effect, Schedule, Schema } from "effect"
import { EventStore, LogPosition, Projection, type RecordedEvent, StreamId, StreamWrites } from "eventcore"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { Database } from "../../src/sql/driver.js"
import type { WithDatabase } from "./projections.js"

const ItemAdded = Schema.TaggedStruct("ItemAdded", { sku: Schema.String, cents: Schema.Int })
const CartEmptied = Schema.TaggedStruct("CartEmptied", {})
/** Not for the projection: it says which carts exist, not what they hold (no row). */
const CartViewed = Schema.TaggedStruct("CartViewed", {})
const CartEvent = Schema.Union(ItemAdded, CartEmptied, CartViewed)
type CartEvent = typeof CartEvent.Type

const carts = pgTable("row_projection_carts", {
  cart: text("cart").primaryKey(),
  totalCents: bigint("total_cents", { mode: "bigint" }).notNull(),
  items: integer("items").notNull(),
  skus: jsonb("skus").$type<ReadonlyArray<string>>().notNull(),
  lastAdded: timestamp("last_added", { withTimezone: true, mode: "date" }).notNull()
})
type Cart = typeof carts.$inferSelect

const createCarts = sql`create table row_projection_carts (cart text primary key, total_cents bigint not null,
  items integer not null, skus jsonb not null, last_added timestamptz not null)`

const cartOf = (recorded: RecordedEvent) => recorded.streamId.slice("cart-".length)

/** What a cart's row is after an event: the fold the table must equal. */
const evolveCart = (row: Cart | undefined, event: CartEvent, recorded: RecordedEvent): Cart | undefined => {
  if (event._tag === "CartEmptied") return undefined
  if (event._tag === "CartViewed") return row
  return {
    cart: cartOf(recorded),
    totalCents: (row?.totalCents ?? 0n) + BigInt(event.cents),
    items: (row?.items ?? 0) + 1,
    skus: [...(row?.skus ?? []), event.sku],
    lastAdded: recorded.recordedAt
  }
}

const Carts = Projection.rows({
  name: "carts",
  event: CartEvent,
  filter: { streamPrefix: "cart-" },
  table: carts,
  key: (event, recorded) => (event._tag === "CartViewed" ? undefined : cartOf(recorded)),
  evolve: evolveCart
})

/** Appends `events` to `cart`'s stream, one append each, returning what was recorded. */
const write = (cart: string, events: ReadonlyArray<CartEvent>) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const streamId = StreamId.unsafeMake(`cart-${cart}`)
    const recorded: Array<RecordedEvent> = []
    for (const event of events) {
      const { _tag, ...data } = event
      const writes = yield* StreamWrites.append(yield* StreamWrites.expect(StreamWrites.empty, streamId, "any"), {
        streamId,
        eventType: _tag,
        data
      })
      recorded.push(...(yield* store.append(writes)).events)
    }
    return recorded
  })

/** The carts the table holds, as plain values. */
const tableOf = (db: Database) =>
  Effect.promise(async () =>
    Object.fromEntries(
      (await db.select().from(carts).orderBy(carts.cart)).map((row) => [
        row.cart,
        { total: row.totalCents, items: row.items, skus: row.skus, lastAdded: row.lastAdded.getTime() }
      ])
    )
  )

/** The carts folded from every cart event in the store's log, as `tableOf` gives them. */
const foldOf = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const rows = new Map<string, Cart | undefined>()
  for (let after = LogPosition.start; ; ) {
    const page = yield* store.readAll({ after, filter: { streamPrefix: "cart-" } })
    for (const recorded of page.events) {
      const event = Schema.decodeUnknownSync(CartEvent)({ ...(recorded.data as object), _tag: recorded.eventType })
      rows.set(cartOf(recorded), evolveCart(rows.get(cartOf(recorded)), event, recorded))
    }
    after = page.position
    if (page.caughtUp) break
  }
  return Object.fromEntries(
    [...rows]
      .filter((entry): entry is [string, Cart] => entry[1] !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([cart, row]) => [
        cart,
        { total: row.totalCents, items: row.items, skus: row.skus, lastAdded: row.lastAdded.getTime() }
      ])
  )
})

const lastOf = (recorded: ReadonlyArray<RecordedEvent>) => (recorded.at(-1) as RecordedEvent).position

const quickRetry = { retry: Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(1))) }

export const defineRowProjectionTests = (withDatabase: WithDatabase) => {
  const withCarts: WithDatabase = (body) =>
    withDatabase((db) =>
      Effect.zipRight(
        Effect.promise(() => db.execute(createCarts)),
        body(db)
      )
    )

  describe("a row projection", () => {
    it("keeps its table equal to the fold of the log: bigint, timestamptz and jsonb columns, deletes, events of no row", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          yield* write("a", [ItemAdded.make({ sku: "apple", cents: 50 }), CartViewed.make({})])
          yield* write("b", [
            ItemAdded.make({ sku: "pear", cents: 2 ** 40 }),
            ItemAdded.make({ sku: 'q"uote', cents: 1 })
          ])
          const emptied = yield* write("c", [ItemAdded.make({ sku: "plum", cents: 7 }), CartEmptied.make({})])
          yield* Effect.forkScoped(Projection.run(Carts, { batchSize: 3 }))
          yield* Projection.waitFor(Carts, lastOf(emptied))
          const table = yield* tableOf(db)
          expect(table).toEqual(yield* foldOf)
          expect(Object.keys(table)).toEqual(["a", "b"])
          expect(table.b).toMatchObject({ total: 2n ** 40n + 1n, items: 2, skus: ["pear", 'q"uote'] })

          // A cart emptied after its row was written in an earlier batch: the row goes.
          const later = yield* write("a", [CartEmptied.make({}), ItemAdded.make({ sku: "kiwi", cents: 3 })])
          const gone = yield* write("b", [CartEmptied.make({})])
          yield* Projection.waitFor(Carts, lastOf([...later, ...gone]))
          expect(yield* tableOf(db)).toEqual(yield* foldOf)
          expect(Object.keys(yield* tableOf(db))).toEqual(["a"])
        })
      ))

    it("rebuilds by emptying its table and folding the log again", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          const recorded = yield* write("r", [
            ItemAdded.make({ sku: "x", cents: 1 }),
            ItemAdded.make({ sku: "y", cents: 2 })
          ])
          yield* Effect.forkScoped(Projection.run(Carts))
          yield* Projection.waitFor(Carts, lastOf(recorded))
          yield* Effect.promise(() => db.update(carts).set({ items: 99 }))
          yield* Projection.rebuild(Carts)
          yield* Projection.waitFor(Carts, lastOf(recorded))
          expect(yield* tableOf(db)).toEqual(yield* foldOf)
        })
      ))

    it("stops at an event its evolve throws on, having committed the events before it", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          const Throwing = Projection.rows({
            name: "carts-throwing",
            event: CartEvent,
            table: carts,
            key: (_, recorded) => cartOf(recorded),
            evolve: (row, event, recorded) => {
              if (event._tag === "ItemAdded" && event.sku === "poison") throw new Error("cannot fold poison")
              return evolveCart(row, event, recorded)
            }
          })
          const before = yield* write("p", [
            ItemAdded.make({ sku: "ok", cents: 1 }),
            ItemAdded.make({ sku: "ok2", cents: 2 })
          ])
          const [poison] = yield* write("p", [ItemAdded.make({ sku: "poison", cents: 3 })])
          yield* write("p", [ItemAdded.make({ sku: "after", cents: 4 })])
          const failure = yield* Effect.flip(Projection.run(Throwing, { batchSize: 10, ...quickRetry }))
          expect(failure).toMatchObject({
            _tag: "ProjectionFailed",
            projection: "carts-throwing",
            eventId: poison?.eventId,
            position: poison?.position
          })
          expect(String(failure.cause)).toContain("cannot fold poison")
          expect(
            yield* Projection.status.pipe(Effect.map((rows) => rows.find((row) => row.name === "carts-throwing")))
          ).toMatchObject({ status: "failed", position: lastOf(before) })
          expect((yield* tableOf(db)).p).toMatchObject({ items: 2, skus: ["ok", "ok2"] })
        })
      ))
  })

  describe("a row projection whose write the database refuses", () => {
    it("finds the event by splitting its batch, commits the rest, and skips it as a dead letter with the database's error", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          // The table refuses a negative total: the write fails at the commit, not in evolve.
          yield* Effect.promise(() =>
            db.execute(sql`alter table row_projection_carts add constraint not_negative check (total_cents >= 0)`)
          )
          const Refused = Projection.rows({
            name: "carts-refused",
            event: CartEvent,
            table: carts,
            key: (_, recorded) => recorded.eventId,
            evolve: (row, event, recorded) => {
              const cart = evolveCart(row, event, recorded)
              return cart === undefined ? undefined : { ...cart, cart: recorded.eventId }
            }
          })
          const events = Array.from({ length: 32 }, (_, i) =>
            ItemAdded.make({ sku: `s${i}`, cents: i === 19 ? -5 : i })
          )
          const recorded = yield* write("r", events)
          yield* Effect.forkScoped(Projection.run(Refused, { batchSize: 32, onError: "skip", ...quickRetry }))
          yield* Projection.waitFor(Refused, lastOf(recorded))
          expect(Object.keys(yield* tableOf(db)).sort()).toEqual(
            recorded
              .filter((_, i) => i !== 19)
              .map((event) => event.eventId)
              .sort()
          )
          const [dead, ...others] = yield* Projection.deadLetters(Refused)
          expect(others).toEqual([])
          expect(dead?.eventId).toBe(recorded[19]?.eventId)
          expect(dead?.error).toContain("not_negative")
        })
      ))
  })

  describe("a batch handler", () => {
    it("finds an event it fails on by halving its batch, commits the rest around it, and skips it as a dead letter", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          let calls = 0
          const Counted = Projection.make({
            name: "carts-batched",
            event: CartEvent,
            handleBatch: (events) =>
              Effect.gen(function* () {
                calls++
                if (events.some(({ event }) => event._tag === "ItemAdded" && event.sku === "poison")) {
                  return yield* Effect.fail("a batch holding poison")
                }
                const { db } = yield* Projection.ReadModel
                for (const { recorded } of events) {
                  yield* Effect.promise(() =>
                    db.insert(carts).values({
                      cart: recorded.eventId,
                      totalCents: 0n,
                      items: 1,
                      skus: [],
                      lastAdded: recorded.recordedAt
                    })
                  )
                }
              })
          })
          const events = Array.from({ length: 64 }, (_, i) =>
            ItemAdded.make({ sku: i === 41 ? "poison" : `s${i}`, cents: i })
          )
          const recorded = yield* write("h", events)
          yield* Effect.forkScoped(Projection.run(Counted, { batchSize: 64, onError: "skip", ...quickRetry }))
          yield* Projection.waitFor(Counted, lastOf(recorded))
          // Every event but the poison is in the table, once.
          expect(Object.keys(yield* tableOf(db)).sort()).toEqual(
            recorded
              .filter((_, i) => i !== 41)
              .map((event) => event.eventId)
              .sort()
          )
          const [dead] = yield* Projection.deadLetters(Counted)
          expect(dead).toMatchObject({ eventId: recorded[41]?.eventId, error: "a batch holding poison" })
          // The whole batch, then 6 halvings down to the poison (each also committing the half without it),
          // then the poison alone with its retry: about 2 log2(64) calls, not one per event.
          expect(calls).toBeLessThanOrEqual(2 + 2 * 6 + 2)
        })
      ))
  })

  describe("a row projection's table", () => {
    it("equals the fold of the log whatever the events, the batch sizes and the restarts", () =>
      withCarts((db) =>
        Effect.gen(function* () {
          const event = fc.oneof(
            {
              weight: 6,
              arbitrary: fc
                .record({ sku: fc.string({ maxLength: 4 }), cents: fc.integer({ min: -1000, max: 1000 }) })
                .map((item) => ItemAdded.make(item))
            },
            { weight: 1, arbitrary: fc.constant(CartEmptied.make({})) },
            { weight: 1, arbitrary: fc.constant(CartViewed.make({})) }
          )
          const rounds = fc.array(
            fc.record({
              writes: fc.array(fc.tuple(fc.constantFrom("w", "x", "y", "z"), event), { minLength: 1, maxLength: 25 }),
              batchSize: fc.integer({ min: 1, max: 40 })
            }),
            { minLength: 1, maxLength: 4 }
          )
          const samples = fc.sample(rounds, { numRuns: 6, seed: 2612 })
          let run = 0
          for (const sample of samples) {
            run++
            // Each sample in carts of its own; each round a new run of the projection, resumed from its checkpoint.
            for (const { writes, batchSize } of sample) {
              let last: RecordedEvent | undefined
              for (const [cart, written] of writes) last = (yield* write(`${run}${cart}`, [written])).at(-1)
              yield* Effect.scoped(
                Effect.gen(function* () {
                  yield* Effect.forkScoped(Projection.run(Carts, { batchSize }))
                  if (last !== undefined) yield* Projection.waitFor(Carts, last.position)
                })
              )
              expect(yield* tableOf(db)).toEqual(yield* foldOf)
            }
          }
        })
      ))
  })
}
