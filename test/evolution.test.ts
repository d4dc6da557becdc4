/**
 * Schema evolution on the in-memory store and on PGlite (the cases of
 * ./support/evolutionCases.ts), and the property that an upcast chain decodes
 * old stored data as the event written at the current version would.
 */
import { Effect } from "effect"
import { EventSchema, InMemoryEventStore, LogPosition, type RecordedEvent, StreamId } from "eventcore"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { CartEvent, defineEvolutionTests, priceAtUpgrade } from "./support/evolutionCases.js"
import { usePgliteTemplate } from "./support/pglite.js"

const propertyRuns = Number(process.env.EVENTCORE_PROPERTY_RUNS ?? 100)

describe("in memory", () =>
  defineEvolutionTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(InMemoryEventStore.layer)))))

describe("PGlite", () => {
  const pglite = usePgliteTemplate()
  defineEvolutionTests((body) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(pglite.layer))))
})

/** A stored ItemAdded (or ProductAdded, its first name) as a store reads it back. */
const stored = (eventType: string, schemaVersion: number, data: unknown): RecordedEvent => ({
  eventId: "0190a4b2-0000-7000-8000-000000000001",
  streamId: StreamId.unsafeMake("cart-property"),
  streamVersion: 1,
  globalPosition: 1n,
  position: LogPosition.make(1n, 1n),
  eventType,
  schemaVersion,
  data,
  metadata: {},
  recordedAt: new Date(0)
})

const sku = fc.oneof(fc.constantFrom("apple", "pear", "plum"), fc.string())

/** Stored data of an older version, and the same item as version 3 stores it (upcast by hand). */
const older = fc.oneof(
  sku.map((sku) => ({
    schemaVersion: 1,
    data: { sku },
    current: { sku, quantity: 1, unitPrice: priceAtUpgrade(sku) }
  })),
  fc.record({ sku, quantity: fc.integer({ min: 1, max: 1_000_000 }) }).map((v2) => ({
    schemaVersion: 2,
    data: v2,
    current: { ...v2, unitPrice: priceAtUpgrade(v2.sku) }
  }))
)

describe("an upcast chain", () => {
  // fast-check directly, as test/domain.test.ts does: @fast-check/vitest takes seconds to import.
  it("decodes older stored data, under the type's old name too, as the event written at the current version", () => {
    const decode = EventSchema.decode(CartEvent)
    fc.assert(
      fc.property(
        older,
        fc.constantFrom("ItemAdded", "ProductAdded"),
        ({ schemaVersion, data, current }, eventType) => {
          const upcast = Effect.runSync(decode(stored(eventType, schemaVersion, data)))
          const written = Effect.runSync(decode(stored("ItemAdded", 3, current)))
          expect(upcast).toEqual(written)
          expect(written).toEqual([{ _tag: "ItemAdded", ...current }])
        }
      ),
      { numRuns: propertyRuns }
    )
  })
})
