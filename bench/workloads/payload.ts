/**
 * Event data of about 200 bytes of JSON, varied a little so nothing caches a
 * single value.
 */
import { PersonalData } from "eventcore"
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

/**
 * A fresh event of `benchEvent`'s data and one personal value more: a customer's name of ~20 characters,
 * whose data subject is `subject` (W2.personal: the stream's own id), which the stores encrypt.
 */
export const personalBenchEvent = (subject: string): BenchEvent => {
  const { type, data } = benchEvent()
  const name = `Margit Lindqvist ${String((sequence - 1) % 9973).padStart(4, "0")}`
  return { type, data: { ...(data as object), customerName: PersonalData.value(subject, name) } }
}

export const benchEvents = (count: number): ReadonlyArray<BenchEvent> => Array.from({ length: count }, benchEvent)

/** A stream id never used before in this process, e.g. `w1-123`. */
let streamCounter = 0
export const freshStreamId = (prefix: string): string => `${prefix}-${streamCounter++}`
