import { Schema } from "effect"
import { EventSchema } from "eventcore"
import { expectDecodes, storedEvent } from "eventcore/testing"
import { describe, expect, it } from "vitest"

const ItemAdded = Schema.TaggedStruct("ItemAdded", { sku: Schema.String, quantity: Schema.Int }).pipe(
  EventSchema.versions(EventSchema.upcast(Schema.Struct({ sku: Schema.String }), (v1) => ({ ...v1, quantity: 1 })))
)
const CartCleared = Schema.TaggedStruct("CartCleared", {})
const CartEvent = EventSchema.evolve(Schema.Union(ItemAdded, CartCleared), {
  renamed: { ProductAdded: "ItemAdded" },
  replaced: {
    CartAbandoned: EventSchema.replacedBy(Schema.Struct({}), (_, recorded) =>
      recorded.metadata.reason === "expired" ? [{ _tag: "CartCleared" as const }] : []
    )
  }
})

describe("golden samples (eventcore/testing)", () => {
  // As the README shows it.
  it("ItemAdded of version 1 decodes with a quantity of 1", () =>
    expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "A-1" } }, [
      { _tag: "ItemAdded", sku: "A-1", quantity: 1 }
    ]))

  it("stored JSON of the current version, or of a renamed or replaced type, decodes to today's events", () => {
    expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "A-1", quantity: 3 } }, [
      { _tag: "ItemAdded", sku: "A-1", quantity: 3 }
    ])
    // Without a version: 1, as the stores read events written before versions.
    expectDecodes(CartEvent, { eventType: "ProductAdded", data: { sku: "B-2" } }, [
      { _tag: "ItemAdded", sku: "B-2", quantity: 1 }
    ])
    // What a replacement reads of the recorded event (here its metadata) can be given.
    expectDecodes(CartEvent, { eventType: "CartAbandoned", data: {}, metadata: { reason: "expired" } }, [
      { _tag: "CartCleared" }
    ])
    expectDecodes(CartEvent, { eventType: "CartAbandoned", data: {} }, [])
  })

  it("a sample that decodes to other events fails, showing both", () => {
    const failure = captured(() =>
      expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "A-1" } }, [
        { _tag: "ItemAdded", sku: "A-1", quantity: 2 }
      ])
    )
    expect(failure.message).toMatch(/^ItemAdded at schema version 1 decodes to other events: expected \[/)
    // What vitest's reporter diffs.
    expect(failure).toMatchObject({
      actual: [{ _tag: "ItemAdded", sku: "A-1", quantity: 1 }],
      expected: [{ _tag: "ItemAdded", sku: "A-1", quantity: 2 }]
    })
  })

  it("a sample that does not decode fails, saying why", () => {
    expect(
      captured(() => expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 1, data: { code: "A-1" } }, []))
        .message
    ).toMatch(/^ItemAdded at schema version 1 does not decode: Cannot decode event ItemAdded .*\bsku\b.*is missing/s)
    expect(
      captured(() => expectDecodes(CartEvent, { eventType: "ItemAdded", schemaVersion: 3, data: {} }, [])).message
    ).toContain("stored at schema version 3 of ItemAdded, but this application knows versions up to 2")
    expect(captured(() => expectDecodes(CartEvent, { eventType: "CartOpened", data: {} }, [])).message).toMatch(
      /^CartOpened at schema version 1 does not decode: Unknown event type "CartOpened"/
    )
  })

  it("storedEvent builds the recorded event a store would read back, the sample's fields over its defaults", () => {
    const event = storedEvent({ eventType: "ItemAdded", schemaVersion: 2, data: { sku: "A-1" }, streamId: "cart-7" })
    expect(event).toMatchObject({ streamId: "cart-7", streamVersion: 1, schemaVersion: 2, metadata: {} })
    expect(storedEvent({ eventType: "ItemAdded", data: {} })).toMatchObject({
      streamId: "golden-sample",
      schemaVersion: 1
    })
  })
})

const captured = (run: () => void): Error & { readonly actual?: unknown; readonly expected?: unknown } => {
  try {
    run()
  } catch (error) {
    return error as Error
  }
  throw new Error("the expectation passed")
}
