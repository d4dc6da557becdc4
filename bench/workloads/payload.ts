/**
 * Event data of about 200 bytes of JSON, varied a little so nothing caches a
 * single value.
 */
import type { BenchEvent } from "../systems/system.js"

let sequence = 0

/** A fresh event of ~200 bytes of JSON. */
export const benchEvent = (): BenchEvent => {
  const n = sequence++
  return {
    type: "OrderPlaced",
    data: {
      orderId: `order-${String(n).padStart(10, "0")}`,
      customerId: `customer-${n % 9973}`,
      amount: 1000 + (n % 100_000),
      currency: "EUR",
      lines: [
        { sku: `sku-${n % 997}`, quantity: 1 + (n % 5) },
        { sku: `sku-${(n * 7) % 991}`, quantity: 1 }
      ],
      note: "left at the front desk, ring twice"
    }
  }
}

export const benchEvents = (count: number): ReadonlyArray<BenchEvent> => Array.from({ length: count }, benchEvent)

/** A stream id never used before in this process, e.g. `w1-123`. */
let streamCounter = 0
export const freshStreamId = (prefix: string): string => `${prefix}-${streamCounter++}`
