import { Effect, Either, ParseResult, pipe, Schema } from "effect"
import {
  ConflictingExpectedVersions,
  DuplicateEventId,
  EventDecodeError,
  EventEncodeError,
  ExpectedVersion,
  InvalidExpectedVersion,
  InvalidReadOptions,
  InvalidStreamId,
  StoreError,
  StreamId,
  StreamNotFound,
  StreamWrites,
  UndeclaredStream,
  VersionConflict
} from "eventcore"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { maxDepth, whyNotJson } from "../src/internal/json.js"
import { uuidv7 } from "../src/internal/uuid.js"

const id = StreamId.unsafeMake

describe("StreamId", () => {
  it("trims and brands valid input", () => {
    expect(id("  order-1 \n")).toBe("order-1")
    expect(Effect.runSync(StreamId.make("x"))).toBe("x")
    expect(Schema.decodeUnknownSync(StreamId.schema)(" y ")).toBe("y")
    expect(Schema.encodeSync(StreamId.schema)(id("z"))).toBe("z")
  })

  it.each([
    ["", "must not be empty or only whitespace"],
    [" \t\n ", "must not be empty or only whitespace"],
    ["x".repeat(256), "must be at most 255 characters"],
    ["🚀".repeat(256), "must be at most 255 characters"],
    ["a\u0000b", "must not contain NUL characters"],
    ["a\uD800b", "must be well-formed Unicode (no lone surrogates)"],
    ["\uDC00", "must be well-formed Unicode (no lone surrogates)"]
  ])("refuses %j: %s", (input, reason) => {
    const result = Effect.runSync(Effect.either(StreamId.make(input)))
    expect(result).toEqual(Either.left(new InvalidStreamId({ input, reason })))
    expect(() => StreamId.unsafeMake(input)).toThrow(InvalidStreamId)
    expect(Either.isLeft(Schema.decodeUnknownEither(StreamId.schema)(input))).toBe(true)
  })

  it("refuses a value that is not a string (from untyped callers) instead of throwing", () => {
    expect(StreamId.validate(42 as unknown as string)).toEqual(
      Either.left(new InvalidStreamId({ input: "42", reason: "must be a string" }))
    )
  })

  it("the schema names StreamId and the broken rule in its errors, and brands the type side", () => {
    const decoded = Schema.decodeUnknownEither(StreamId.schema)("  ")
    expect(Either.isLeft(decoded) && ParseResult.TreeFormatter.formatErrorSync(decoded.left)).toBe(
      "StreamId\n└─ Transformation process failure\n   └─ must not be empty or only whitespace"
    )
    const encoded = Schema.encodeUnknownEither(StreamId.schema)(5)
    expect(Either.isLeft(encoded) && ParseResult.TreeFormatter.formatErrorSync(encoded.left)).toBe(
      'StreamId\n└─ Type side transformation failure\n   └─ Expected string & Brand<"StreamId">, actual 5'
    )
  })

  it("counts characters as code points, as PostgreSQL does", () => {
    expect(id("🚀".repeat(255))).toHaveLength(510)
    expect(id(" ".repeat(300) + "x".repeat(255) + " ".repeat(300))).toHaveLength(255)
  })

  // fast-check directly, not @fast-check/vitest: that one takes seconds to import,
  // which every mutant of the mutation run would pay again.
  it("accepts exactly the trimmed, well-formed, 1..255 strings", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
        const trimmed = s.trim()
        const valid =
          [...trimmed].length >= 1 &&
          [...trimmed].length <= 255 &&
          !trimmed.includes("\u0000") &&
          !/\p{Surrogate}/u.test(trimmed)
        const result = StreamId.validate(s)
        expect(Either.isRight(result)).toBe(valid)
        if (Either.isRight(result)) expect(result.right).toBe(trimmed)
      })
    )
  })
})

describe("ExpectedVersion", () => {
  it.each([
    ["any", 0, true],
    ["any", 5, true],
    ["no_stream", 0, true],
    ["no_stream", 1, false],
    ["stream_exists", 0, false],
    ["stream_exists", 1, true],
    [0, 0, true],
    [0, 1, false],
    [3, 3, true],
    [3, 2, false],
    [3, 4, false]
  ] as const)("%j against version %i is satisfied: %s", (expected, actual, satisfied) => {
    expect(ExpectedVersion.isSatisfiedBy(expected, actual)).toBe(satisfied)
  })

  it("recognises valid expectations only", () => {
    for (const valid of [0, 1, 1_000_000, "any", "no_stream", "stream_exists"]) {
      expect(ExpectedVersion.isExpectedVersion(valid)).toBe(true)
      expect(Either.isRight(Schema.decodeUnknownEither(ExpectedVersion.schema)(valid))).toBe(true)
    }
    for (const invalid of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "exists", "", null, undefined, 2 ** 60]) {
      expect(ExpectedVersion.isExpectedVersion(invalid)).toBe(false)
    }
  })
})

describe("StreamWrites", () => {
  // Literal ids, validated in the StreamId tests: a call at collection time, outside
  // any test, would make Stryker treat StreamId's code as static and run every test for it.
  const a = "a" as StreamId.StreamId
  const b = "b" as StreamId.StreamId

  it("is immutable and keeps participants in registration order, read-only ones included", () => {
    const withA = Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, a, 2))
    const withAB = Either.getOrThrow(StreamWrites.expect(withA, b, "any"))
    const withEvent = Either.getOrThrow(StreamWrites.append(withAB, { streamId: a, eventType: "E", data: { x: 1 } }))
    expect(StreamWrites.participants(StreamWrites.empty)).toEqual([])
    expect(StreamWrites.participants(withA)).toEqual([[a, 2]])
    expect(StreamWrites.participants(withEvent)).toEqual([
      [a, 2],
      [b, "any"]
    ])
    expect(StreamWrites.events(withAB)).toEqual([])
    expect(StreamWrites.events(withEvent)).toEqual([{ streamId: a, eventType: "E", data: { x: 1 } }])
  })

  it("offers data-first and pipeable forms", () => {
    const dataFirst = Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, a, "no_stream"))
    const piped = pipe(StreamWrites.empty, StreamWrites.expect(a, "no_stream"), Either.getOrThrow)
    expect(StreamWrites.participants(piped)).toEqual(StreamWrites.participants(dataFirst))
    const appended = pipe(piped, StreamWrites.append({ streamId: a, eventType: "E", data: 1 }), Either.getOrThrow)
    expect(StreamWrites.events(appended)).toHaveLength(1)
    expect(StreamWrites.isStreamWrites(appended)).toBe(true)
    expect(StreamWrites.isStreamWrites({})).toBe(false)
    for (const notWrites of [null, undefined, "writes", 5]) expect(StreamWrites.isStreamWrites(notWrites)).toBe(false)
    const method = StreamWrites.empty.pipe(StreamWrites.expect(a, "no_stream"), Either.getOrThrow)
    expect(StreamWrites.participants(method)).toEqual([[a, "no_stream"]])
  })

  it("registering a stream again with the same expectation is a no-op, with another an error", () => {
    const once = Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, a, 0))
    expect(StreamWrites.expect(once, a, 0)).toEqual(Either.right(once))
    // 0 and "no_stream" mean the same thing.
    expect(Either.isRight(StreamWrites.expect(once, a, "no_stream"))).toBe(true)
    expect(StreamWrites.expect(once, a, 1)).toEqual(
      Either.left(new ConflictingExpectedVersions({ streamId: a, first: 0, second: 1 }))
    )
    expect(StreamWrites.expect(once, a, "any")).toEqual(
      Either.left(new ConflictingExpectedVersions({ streamId: a, first: 0, second: "any" }))
    )
  })

  it.each([-1, 1.5, Number.NaN, "sometimes"])("refuses the expected version %j", (bad) => {
    expect(StreamWrites.expect(StreamWrites.empty, a, bad as ExpectedVersion.ExpectedVersion)).toEqual(
      Either.left(new InvalidExpectedVersion({ streamId: a, expected: bad }))
    )
  })

  it("appending to an unregistered stream fails with UndeclaredStream", () => {
    expect(StreamWrites.append(StreamWrites.empty, { streamId: a, eventType: "E", data: {} })).toEqual(
      Either.left(new UndeclaredStream({ streamId: a }))
    )
  })

  describe("refuses events that would not read back as written", () => {
    const registered = () => Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, a, "any"))
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    let deep: unknown = 1
    for (let i = 0; i < 600; i++) deep = [deep]
    class Money {
      constructor(readonly cents: number) {}
    }
    it.each([
      ["undefined data", { data: undefined }, "data is undefined"],
      ["a BigInt", { data: { n: 1n } }, "data.n is a BigInt"],
      ["NaN", { data: [Number.NaN] }, "data[0] is NaN"],
      ["Infinity", { data: Number.POSITIVE_INFINITY }, "data is Infinity"],
      ["a cycle", { data: cyclic }, "data.self is a cyclic reference"],
      ["600 levels of nesting", { data: deep }, "nested deeper than 512 levels"],
      ["a Date", { data: { at: new Date(0) } }, "data.at is a Date, not a plain object"],
      ["a Map", { data: new Map() }, "data is a Map, not a plain object"],
      ["a class instance", { data: new Money(5) }, "data is a Money, not a plain object"],
      ["a NUL in a string", { data: { s: "a\u0000" } }, "data.s contains a NUL character"],
      ["a lone surrogate", { data: { s: "\uD800" } }, "data.s contains a lone surrogate"],
      ["a lone surrogate key", { data: { "\uDC00": 1 } }, "contains a lone surrogate"],
      ["a function", { data: () => 1 }, "data is a function"],
      ["array metadata", { data: {}, metadata: [] }, "metadata must be an object"],
      ["string metadata", { data: {}, metadata: "x" }, "metadata must be an object"],
      ["null metadata", { data: {}, metadata: null }, "metadata must be an object"],
      ["a non-string event type", { data: {}, eventType: 5 }, "eventType must be a non-empty string"],
      ["a BigInt in metadata", { data: {}, metadata: { n: 2n } }, "metadata.n is a BigInt"],
      ["an empty event type", { data: {}, eventType: "" }, "eventType must be a non-empty string"],
      ["a NUL in the event type", { data: {}, eventType: "A\u0000B" }, "eventType contains a NUL character"],
      ["a lone surrogate in the event type", { data: {}, eventType: "\uD800" }, "eventType contains a lone surrogate"],
      ["a malformed eventId", { data: {}, eventId: "not-a-uuid" }, "eventId not-a-uuid is not a UUID"],
      ["schema version 0", { data: {}, schemaVersion: 0 }, "schemaVersion 0 is not an integer from 1 to 2147483647"],
      ["a negative schema version", { data: {}, schemaVersion: -1 }, "schemaVersion -1 is not an integer"],
      ["a fractional schema version", { data: {}, schemaVersion: 1.5 }, "schemaVersion 1.5 is not an integer"],
      [
        "a schema version past int4",
        { data: {}, schemaVersion: 2 ** 31 },
        "schemaVersion 2147483648 is not an integer"
      ],
      ["a NaN schema version", { data: {}, schemaVersion: Number.NaN }, "schemaVersion NaN is not an integer"],
      ["a schema version as a string", { data: {}, schemaVersion: "2" }, "schemaVersion 2 is not an integer"]
    ])("%s", (_, event, reason) => {
      const result = StreamWrites.append(registered(), { streamId: a, eventType: "E", ...event } as never)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left._tag).toBe("EventEncodeError")
        expect(String((result.left as { cause?: unknown }).cause)).toContain(reason)
      }
    })

    it("accepts plain JSON, null included, and drops undefined properties as JSON does", () => {
      for (const data of [null, 0, "", [], {}, { a: [1, { b: null }], c: "ü🚀" }, { optional: undefined }]) {
        expect(Either.isRight(StreamWrites.append(registered(), { streamId: a, eventType: "E", data }))).toBe(true)
      }
      expect(
        Either.isRight(StreamWrites.append(registered(), { streamId: a, eventType: "E", data: Object.create(null) }))
      ).toBe(true)
    })

    it("accepts schema versions from 1 to 2147483647", () => {
      for (const schemaVersion of [1, 2, 2_147_483_647]) {
        const appended = StreamWrites.append(registered(), { streamId: a, eventType: "E", data: {}, schemaVersion })
        expect(Either.map(appended, StreamWrites.events)).toEqual(
          Either.right([{ streamId: a, eventType: "E", data: {}, schemaVersion }])
        )
      }
    })
  })
})

describe("uuidv7", () => {
  it("carries the given milliseconds in its first 48 bits, version 7 and the RFC 9562 variant", () => {
    const at = Date.UTC(2026, 10, 27, 4, 30, 15, 123)
    const id = uuidv7(at)
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at)
    expect(uuidv7(0).startsWith("00000000-0000-7")).toBe(true)
  })

  it("sorts by time as text, and ids of the same millisecond differ", () => {
    const ids = [1, 255, 256, 65_536, 2 ** 40, 2 ** 48 - 1].map((ms) => uuidv7(ms))
    expect([...ids].sort()).toEqual(ids)
    const sameMillisecond = new Set(Array.from({ length: 1000 }, () => uuidv7(42)))
    expect(sameMillisecond.size).toBe(1000)
  })
})

describe("whyNotJson", () => {
  const nested = (levels: number, wrap: (inner: unknown) => unknown) => {
    let value: unknown = 1
    for (let i = 0; i < levels; i++) value = wrap(value)
    return value
  }

  it("names the offending value by its path, from $ by default", () => {
    expect(whyNotJson(1n)).toBe("$ is a BigInt, which JSON cannot represent: encode it as a string")
    expect(whyNotJson({ a: [{ b: Number.NaN }] })).toBe("$.a[0].b is NaN, which JSON cannot represent")
    expect(whyNotJson(undefined, "data")).toBe("data is undefined, which JSON cannot represent")
    expect(whyNotJson(Symbol("s"), "data")).toBe("data is a symbol, which JSON cannot represent")
    expect(whyNotJson({ "\uDC00": 1 }, "data")).toBe(
      'data key "\\udc00" contains a lone surrogate (not well-formed Unicode)'
    )
    expect(whyNotJson(["ok", "a\u0000"], "data")).toBe(
      "data[1] contains a NUL character, which PostgreSQL jsonb cannot store"
    )
  })

  it("checks every element and property, not only the first", () => {
    expect(whyNotJson([1, true, Number.POSITIVE_INFINITY])).toBe("$[2] is Infinity, which JSON cannot represent")
    expect(whyNotJson({ a: 1, b: "x", c: 2n })).toBe(
      "$.c is a BigInt, which JSON cannot represent: encode it as a string"
    )
  })

  it("allows 512 levels of nesting, in arrays or objects, and refuses 513", () => {
    expect(maxDepth).toBe(512)
    for (const wrap of [(inner: unknown) => [inner], (inner: unknown) => ({ k: inner })]) {
      expect(whyNotJson(nested(512, wrap))).toBeUndefined()
      expect(whyNotJson(nested(513, wrap))).toMatch(/ is nested deeper than 512 levels$/)
    }
  })

  it("the same object twice, side by side, is not a cycle", () => {
    const shared = { n: 1 }
    expect(whyNotJson({ a: shared, b: shared, c: [shared, shared] })).toBeUndefined()
    const cyclic: Array<unknown> = []
    cyclic.push(cyclic)
    expect(whyNotJson(cyclic)).toBe("$[0] is a cyclic reference")
  })

  it("names the class of a non-plain object, or says object when it has none", () => {
    expect(whyNotJson(new Date(0))).toBe("$ is a Date, not a plain object: encode it with a Schema first")
    expect(whyNotJson(Object.create(Object.create(null)))).toBe(
      "$ is a object, not a plain object: encode it with a Schema first"
    )
  })
})

describe("error messages say what went wrong, with the facts", () => {
  const s = "order-1" as StreamId.StreamId

  it.each([
    [
      "InvalidStreamId",
      new InvalidStreamId({ input: 'a"b', reason: "must not be empty" }),
      'Invalid stream id "a\\"b": must not be empty'
    ],
    [
      "InvalidExpectedVersion",
      new InvalidExpectedVersion({ streamId: s, expected: -1 }),
      'Invalid expected version -1 for stream "order-1": use a non-negative integer, "any", "no_stream" or "stream_exists"'
    ],
    [
      "InvalidReadOptions",
      new InvalidReadOptions({ option: "maxCount", value: 1.5, reason: "must be an integer >= 0" }),
      "Invalid read option maxCount = 1.5: must be an integer >= 0"
    ],
    ["StreamNotFound", new StreamNotFound({ streamId: s }), 'Stream "order-1" not found'],
    [
      "VersionConflict",
      new VersionConflict({ streamId: s, expected: "no_stream", actual: 3 }),
      'Version conflict on stream "order-1": expected no_stream, actual 3'
    ],
    [
      "UndeclaredStream",
      new UndeclaredStream({ streamId: s }),
      'Stream "order-1" was not declared: register it (or read it in the command) before writing to it'
    ],
    [
      "ConflictingExpectedVersions",
      new ConflictingExpectedVersions({ streamId: s, first: 0, second: "any" }),
      'Stream "order-1" registered with two expected versions: 0 and any'
    ],
    [
      "EventEncodeError",
      new EventEncodeError({ streamId: s, eventType: "Paid", cause: new Error("amount is not a number") }),
      'Cannot encode event Paid for stream "order-1": amount is not a number'
    ],
    [
      "EventEncodeError",
      new EventEncodeError({ streamId: s, eventType: "Paid", cause: "data is NaN" }),
      'Cannot encode event Paid for stream "order-1": data is NaN'
    ],
    [
      "EventDecodeError",
      new EventDecodeError({ streamId: s, streamVersion: 4, eventType: "Paid", cause: 42 }),
      'Cannot decode event Paid at version 4 of stream "order-1": 42'
    ],
    [
      "DuplicateEventId",
      new DuplicateEventId({ eventId: "0190a7d2-3c4e-7a1b-8c2d-000000000001" }),
      "An event with id 0190a7d2-3c4e-7a1b-8c2d-000000000001 is already stored: event ids must be unique"
    ],
    ["StoreError", new StoreError({ operation: "append", message: "the server is gone" }), "the server is gone"]
  ] as const)("%#: %s", (tag, error, message) => {
    expect(error._tag).toBe(tag)
    expect(error.message).toBe(message)
  })
})
