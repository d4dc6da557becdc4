/**
 * Reading rows into events (src/sql/rows.ts): a stream's page of events comes
 * in version order whatever order the database returned its rows in.
 */
import { StreamId } from "eventcore"
import { storedEvent } from "eventcore/testing"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { inVersionOrder } from "../src/sql/rows.js"

const atVersion = (streamVersion: number) => ({
  ...storedEvent({ eventType: "E", data: { v: streamVersion } }),
  streamId: StreamId.unsafeMake("s"),
  streamVersion
})

describe("inVersionOrder", () => {
  it("gives a stream's events in version order, whatever order the rows came in, and keeps an ordered page as it is", () =>
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { maxLength: 50 }), (versions) => {
        const events = versions.map(atVersion)
        const sorted = [...versions].sort((a, b) => a - b)
        expect(inVersionOrder([...events]).map((event) => event.streamVersion)).toEqual(sorted)
        const ordered = sorted.map(atVersion)
        expect(inVersionOrder(ordered)).toBe(ordered)
      })
    ))
})
