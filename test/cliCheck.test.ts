/**
 * `eventcore check` without a store: how it finds the application's event
 * schemas in a module, what it says when it cannot, and what it prints. The
 * command itself, on a store, is in test/cli.test.ts.
 */
import { join, relative } from "node:path"
import { Effect, Either, Schema } from "effect"
import type { EventSchema } from "eventcore"
import { describe, expect, it } from "vitest"
import { checkJson, failureSummary, formatCheck, importFailure, loadEventSchemas } from "../src/cli/check.js"
import { CartEvent } from "./fixtures/check/cartEvents.js"

const fixture = relative(process.cwd(), join(import.meta.dirname, "fixtures", "check", "cartEvents.ts"))

const failureOf = (module: string, exportName?: string) =>
  Effect.runPromise(Effect.either(loadEventSchemas(module, exportName))).then((result) =>
    Either.isLeft(result) ? result.left.message : "loaded"
  )

describe("eventcore check: the module's event schemas", () => {
  it("every export that is an event schema, by its name; other exports are passed over", async () => {
    const schemas = await Effect.runPromise(loadEventSchemas(fixture, undefined))
    expect(schemas).toEqual([{ name: "CartEvent", schema: CartEvent }])
  })

  it("--export: that export only, a schema or each schema of an array", async () => {
    expect((await Effect.runPromise(loadEventSchemas(fixture, "CartEvent"))).map((s) => s.name)).toEqual(["CartEvent"])
    expect((await Effect.runPromise(loadEventSchemas(fixture, "beforeTheRename"))).map((s) => s.name)).toEqual([
      "beforeTheRename[0]"
    ])
  })

  it("a module it cannot use, or an export that is no event schema, is a failure saying which", async () => {
    expect(await failureOf("nowhere/events.js")).toBe(
      `cannot import nowhere/events.js: there is no ${join(process.cwd(), "nowhere", "events.js")}`
    )
    expect(await failureOf(fixture, "Missing")).toBe(
      `${fixture} has no export named "Missing" (its exports: CartEvent, Sku, beforeTheRename, cartStream)`
    )
    expect(await failureOf(fixture, "Sku")).toBe(
      "Sku is not an event schema: --export names an Effect Schema of Schema.TaggedStruct events, or an array of them"
    )
    expect(await failureOf(fixture, "cartStream")).toMatch(/^cartStream is not an event schema/)
    const noEvents = relative(process.cwd(), join(import.meta.dirname, "support", "core.ts"))
    expect(await failureOf(noEvents)).toBe(
      `${noEvents} exports no event schema (an Effect Schema of Schema.TaggedStruct events): export one, or name it with --export`
    )
  })

  it("TypeScript that Node cannot load: run the command line under tsx", () => {
    const error = Object.assign(new TypeError('Unknown file extension ".ts"'), { code: "ERR_UNKNOWN_FILE_EXTENSION" })
    expect(importFailure("src/events.ts", "/app/src/events.ts", error)).toBe(
      'cannot import src/events.ts: Node does not run TypeScript by itself; run the command line under tsx (NODE_OPTIONS="--import tsx" eventcore check src/events.ts) or check the compiled JavaScript'
    )
    expect(importFailure("events.js", "/app/events.js", new Error("boom\n    at somewhere"))).toBe(
      "cannot import events.js: boom"
    )
  })
})

describe("eventcore check: what it prints", () => {
  const schemas = [
    { name: "CartEvent", schema: CartEvent },
    { name: "Other", schema: Schema.Union(Schema.TaggedStruct("Other", {})) }
  ]
  const failed: EventSchema.CheckedType = {
    eventType: "ItemAdded",
    schemaVersion: 1,
    count: 12_345,
    outcome: "failed",
    readBy: [0],
    error:
      'Cannot decode event ItemAdded at version 3 of stream "cart-1": { readonly sku: string }\n└─ ["sku"]\n   └─ is missing'
  }
  const report: EventSchema.CheckReport = {
    types: [
      { eventType: "CartViewed", schemaVersion: 1, count: 2, outcome: "ignored", readBy: [] },
      failed,
      { eventType: "ItemAdded", schemaVersion: 2, count: 7, outcome: "decoded", readBy: [0, 1] },
      { eventType: "PaymentTaken", schemaVersion: 1, count: 1, outcome: "unknown", readBy: [] }
    ],
    failures: [failed, { eventType: "PaymentTaken", schemaVersion: 1, count: 1, outcome: "unknown", readBy: [] }]
  }

  it("a table under a header, counts right-aligned, the error on one line, last; then what it was checked with", () => {
    expect(formatCheck(report, schemas)).toEqual([
      "TYPE          VERSION  EVENTS  OUTCOME  ERROR",
      "CartViewed          1       2  ignored  -",
      'ItemAdded           1   12345  failed   Cannot decode event ItemAdded at version 3 of stream "cart-1": { readonly sku: string } └─ ["sku"] └─ is missing',
      "ItemAdded           2       7  decoded  -",
      "PaymentTaken        1       1  unknown  no schema has this type, nor renames, replaces or ignores it",
      "4 stored (event type, schema version) pairs checked with CartEvent, Other: 2 would stop a reader"
    ])
    expect(formatCheck({ types: [], failures: [] }, schemas)).toEqual(["no events"])
  })

  it("the failure line names the failures, the first five of them", () => {
    expect(failureSummary(report)).toBe(
      "2 of 4 stored (event type, schema version) pairs would stop a reader: ItemAdded version 1 (failed), PaymentTaken version 1 (unknown)"
    )
    const many = Array.from({ length: 7 }, (_, i) => ({ ...failed, eventType: `T${i}` }))
    expect(failureSummary({ types: many, failures: many })).toMatch(/T4 version 1 \(failed\), and 2 more$/)
  })

  it("--json: one object, the schemas by name, every field present", () => {
    const json = checkJson("PGlite in ./events", "./events.js", report, schemas)
    expect(json.split("\n")).toHaveLength(1)
    expect(JSON.parse(json)).toEqual({
      database: "PGlite in ./events",
      module: "./events.js",
      schemas: ["CartEvent", "Other"],
      types: [
        { eventType: "CartViewed", schemaVersion: 1, count: 2, outcome: "ignored", readBy: [], error: null },
        { ...failed, readBy: ["CartEvent"] },
        {
          eventType: "ItemAdded",
          schemaVersion: 2,
          count: 7,
          outcome: "decoded",
          readBy: ["CartEvent", "Other"],
          error: null
        },
        {
          eventType: "PaymentTaken",
          schemaVersion: 1,
          count: 1,
          outcome: "unknown",
          readBy: [],
          error: "no schema has this type, nor renames, replaces or ignores it"
        }
      ],
      failures: 2
    })
  })
})
