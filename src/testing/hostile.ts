/**
 * Hostile input for any store: payloads and ids chosen to break escaping,
 * encoding or size limits, and a fuzz property over arbitrary strings and JSON.
 * Every input either round-trips exactly or fails with a typed error, and a
 * failed append writes nothing.
 */
import { Effect, Either } from "effect"
import * as fc from "fast-check"
import { expect } from "vitest"
import type * as EventStore from "../EventStore.js"
import * as StreamId from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"

/** JSON has no negative zero (or `undefined`): what a JSON store gives back for `value`. */
export const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

const nested = (depth: number): unknown => {
  let value: unknown = { bottom: true }
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { level: value }
  return value
}

/** Payloads that are valid JSON but awkward for SQL, JSON escaping or Unicode handling. */
export const awkwardPayloads: ReadonlyArray<readonly [string, unknown]> = [
  ["quotes and backslashes", { s: `'"\\'; DROP TABLE eventcore.events; --`, path: "C:\\temp\\new" }],
  ["control characters", { s: "tab\tnewline\nreturn\rbell\u0007escape\u001b" }],
  ["unicode", { s: "ünïcödé 流 🚀 עברית \u0301e\u0301", "🔑": "emoji key" }],
  ["__proto__ and constructor keys", JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1}')],
  ["extreme numbers", { max: Number.MAX_VALUE, tiny: 5e-324, safe: Number.MAX_SAFE_INTEGER, negative: -1.5e-10 }],
  ["empty values", { "": "", a: [], o: {}, n: null }],
  ["top-level null", null],
  ["top-level string", "just a string"],
  ["top-level strings that read as JSON", ["123", "null", '{"a":1}', '"quoted"']],
  ["a top-level string that reads as JSON", '{"a":1}'],
  ["top-level array", [1, "two", [3], { four: 4 }]],
  ["500 levels of nesting", nested(500)]
]

/** Characters a string generator should reach: all of UTF-16, NUL and lone surrogates included. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))
const hostileString = fc.oneof(
  fc.string({ unit: anyCodeUnit, maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", " ", "%", "_", "\\", "'", '"', "\u0000", "\uD800", "a".repeat(256))
)

const fuzzCase = fc.record({
  streamId: hostileString,
  eventType: hostileString,
  data: fc.jsonValue({ maxDepth: 4 }),
  stringData: hostileString,
  metadata: fc.dictionary(hostileString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
})

/**
 * Each case: build an append of a control event plus the fuzzed one. If the
 * library refuses the input, the refusal is typed and nothing is written; if
 * it accepts it, both events read back exactly.
 */
export const runFuzzProperty = (store: EventStore.EventStore, options: { readonly numRuns: number }) =>
  Effect.promise(() =>
    fc.assert(
      fc.asyncProperty(fuzzCase, (input) =>
        Effect.runPromise(
          Effect.gen(function* () {
            const control = StreamId.unsafeMake(`fuzz-control-${crypto.randomUUID()}`)
            const streamId = StreamId.validate(input.streamId)
            if (Either.isLeft(streamId)) {
              expect(streamId.left._tag).toBe("InvalidStreamId")
              return
            }
            const target = StreamId.unsafeMake(`${crypto.randomUUID()}${streamId.right}`.slice(0, 200))
            const data = { json: input.data, text: input.stringData }
            const built = Either.flatMap(StreamWrites.expect(StreamWrites.empty, control, "no_stream"), (w) =>
              Either.flatMap(StreamWrites.expect(w, target, "no_stream"), (w) =>
                Either.flatMap(StreamWrites.append(w, { streamId: control, eventType: "Control", data: {} }), (w) =>
                  StreamWrites.append(w, {
                    streamId: target,
                    eventType: input.eventType,
                    data,
                    metadata: input.metadata
                  })
                )
              )
            )
            if (Either.isLeft(built)) {
              expect(["EventEncodeError", "UndeclaredStream"]).toContain(built.left._tag)
              expect(Either.isLeft(yield* Effect.either(store.readStream(control)))).toBe(true)
              return
            }
            yield* store.append(built.right)
            const read = yield* store.readStream(target)
            expect(read.events).toHaveLength(1)
            expect(read.events[0]?.streamId).toBe(target)
            expect(read.events[0]?.eventType).toBe(input.eventType)
            expect(read.events[0]?.data).toEqual(asJson(data))
            expect(read.events[0]?.metadata).toEqual(asJson(input.metadata))
            expect((yield* store.readStream(control)).version).toBe(1)
          })
        )
      ),
      { numRuns: options.numRuns }
    )
  )
