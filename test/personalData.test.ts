/**
 * Personal values in event data, without a store: the write forms an append
 * seals (their subjects found, each value encrypted with its subject's key),
 * the stored forms a read opens (the values again, or the erased form), and
 * `PersonalData.field`, the schema that writes and reads them.
 */
import { Effect, Either, Schema } from "effect"
import { EventSchema, LogPosition, type RecordedEvent, StreamId } from "eventcore"
import fc from "fast-check"
import { describe, expect, expectTypeOf, it } from "vitest"
import { maxDepth } from "../src/internal/json.js"
import { newKey, open, type StoredForm, seal, storedSubjects, subjectsToSeal } from "../src/internal/personal.js"
import * as PersonalData from "../src/PersonalData.js"

const propertyRuns = Number(process.env.EVENTCORE_PROPERTY_RUNS ?? 100)

const k1 = newKey()
const k2 = newKey()
const keys = new Map([
  ["cust-1", k1],
  ["cust-2", k2]
])

const sibling = (v: unknown, subjectOf = "accountId") => ({ $personal: { value: v, subjectOf } })
const fromMetadata = (v: unknown, key = "customerId") => ({ $personal: { value: v, subjectOf: { metadata: key } } })
const erasedForm = (subject: string) => ({ $erased: { subject } })

/** The subjects `subjectsToSeal` finds, failing the test when it refuses. */
const subjectsOf = (data: unknown, metadata: Record<string, unknown> = {}) => {
  const found = subjectsToSeal(data, metadata)
  if (found === undefined) return undefined
  if (Either.isLeft(found)) throw found.left
  return [...found.right].sort()
}

/** Why `subjectsToSeal` refuses `data`. */
const refusal = (data: unknown, metadata: Record<string, unknown> = {}) => {
  const found = subjectsToSeal(data, metadata)
  if (found === undefined || Either.isRight(found)) throw new Error(`accepted: ${JSON.stringify(data)}`)
  return found.left
}

/** What a store does on append then read: seal, JSON through the database, open. */
const roundTrip = (data: unknown, metadata: Record<string, unknown> = {}, readKeys = keys) => {
  const found = subjectsToSeal(data, metadata)
  expect(found === undefined || Either.isRight(found)).toBe(true)
  const stored = JSON.parse(JSON.stringify(seal(data, metadata, keys)))
  return open(stored, readKeys)
}

const deepFrozen = <T>(value: T): T => {
  if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) deepFrozen(item)
    Object.freeze(value)
  }
  return value
}

const jsonValues: ReadonlyArray<unknown> = [
  null,
  true,
  false,
  0,
  -1.5,
  1e21,
  "",
  "Ada Lovelace",
  "ünïcødé 🚀",
  [],
  {},
  [1, "two", null, [false]],
  { street: "1 Main St", lines: ["a", "b"], geo: { lat: 51.5, lon: -0.12 } }
]

describe("subjectsToSeal", () => {
  it.each([
    null,
    42,
    "text",
    [],
    {},
    { accountId: "a1", amount: 10, tags: ["x", { nested: [1, 2, { deep: true }] }] },
    { $erased: { subject: "cust-1" } },
    { personal: { value: 1, subject: "s" } }
  ])("is undefined for data without personal values: %j", (data) => {
    expect(subjectsToSeal(data, {})).toBeUndefined()
    expect(seal(data, {}, keys)).toBe(data)
    expect(storedSubjects(data)).toBeUndefined()
    expect(open(data, keys)).toBe(data)
  })

  it("finds literal, sibling and metadata subjects, in nested objects and arrays", () => {
    const data = {
      accountId: "acc-1",
      holder: sibling("Ada"),
      direct: PersonalData.value("cust-2", "x"),
      contacts: [{ accountId: "acc-2", phone: sibling("555") }, fromMetadata("e@x.org")],
      aliases: [sibling("A."), sibling("L.")]
    }
    expect(subjectsOf(data, { customerId: "cust-1" })).toEqual(["acc-1", "acc-2", "cust-1", "cust-2"])
  })

  it("finds the subject of a value that is the whole data", () => {
    expect(subjectsOf(PersonalData.value("cust-1", 1))).toEqual(["cust-1"])
    expect(subjectsOf(fromMetadata(1), { customerId: "cust-1" })).toEqual(["cust-1"])
  })

  it.each<[string, unknown, Record<string, unknown>, string, string]>([
    ["a missing sibling", { holder: sibling("Ada") }, {}, "$.holder", "sibling field accountId"],
    ["a numeric sibling", { accountId: 7, holder: sibling("Ada") }, {}, "$.holder", "not a non-empty string"],
    ["an empty sibling", { accountId: "", holder: sibling("Ada") }, {}, "$.holder", "not a non-empty string"],
    [
      "a personal sibling",
      { accountId: PersonalData.value("c", "a"), holder: sibling("Ada") },
      {},
      "$.holder",
      "not a non-empty string"
    ],
    ["no holder for a sibling", sibling("Ada"), {}, "$", "no object holds it"],
    ["a missing metadata key", { holder: fromMetadata("Ada") }, {}, "$.holder", "metadata key customerId"],
    [
      "a non-string metadata subject",
      { holder: fromMetadata("Ada") },
      { customerId: ["c"] },
      "$.holder",
      "not a non-empty string"
    ],
    ["an empty literal subject", { x: PersonalData.value("", 1) }, {}, "$.x", "not a non-empty string"],
    ["a subject with NUL", { x: PersonalData.value("a\u0000b", 1) }, {}, "$.x", "NUL"],
    ["no subject", { x: { $personal: { value: 1 } } }, {}, "$.x", "names no subject"],
    [
      "subject and subjectOf",
      { a: "s", x: { $personal: { value: 1, subject: "s", subjectOf: "a" } } },
      {},
      "$.x",
      "both subject and subjectOf"
    ],
    ["a bad subjectOf", { x: { $personal: { value: 1, subjectOf: { meta: "k" } } } }, {}, "$.x", "neither"],
    ["no value", { x: { $personal: { subject: "s" } } }, {}, "$.x", "has no value"],
    ["an unexpected key", { x: { $personal: { value: 1, subject: "s", sujbect: "t" } } }, {}, "$.x", "sujbect"],
    ["a key beside $personal", { x: { ...PersonalData.value("s", 1), other: 2 } }, {}, "$.x", "nothing else"],
    ["a non-object $personal", { list: [{ a: { $personal: "yes" } }] }, {}, "$.list[0].a", "not an object"],
    [
      "a nested write form",
      { x: PersonalData.value("s", { inner: PersonalData.value("t", 1) }) },
      {},
      "$.x",
      "holds another personal value"
    ],
    [
      "a stored form",
      { x: { $personal: { subject: "s", iv: "AAAAAAAAAAAAAAAA", ct: "AAAA" } } },
      {},
      "$.x",
      "append the value itself"
    ]
  ])("refuses %s", (_, data, metadata, path, reason) => {
    const invalid = refusal(data, metadata)
    expect(invalid).toBeInstanceOf(PersonalData.InvalidPersonalData)
    expect(invalid.path).toBe(path)
    expect(invalid.reason).toContain(reason)
    expect(invalid.message).toContain(path)
  })

  it("refuses data nested deeper than JSON allows, and cyclic data, instead of overflowing", () => {
    let deep: unknown = PersonalData.value("s", 1)
    for (let i = 0; i < maxDepth + 5; i++) deep = [deep]
    expect(refusal(deep).reason).toContain("deeper than")
    const cyclic: Record<string, unknown> = { x: PersonalData.value("s", 1) }
    cyclic.self = cyclic
    expect(refusal(cyclic).reason).toContain("deeper than")
  })
})

describe("seal and open", () => {
  it.each(jsonValues)("give back a value of every JSON type: %j", (v) => {
    const data = { accountId: "cust-1", v: sibling(v), inList: [PersonalData.value("cust-2", v)] }
    expect(roundTrip(data)).toEqual({ accountId: "cust-1", v, inList: [v] })
  })

  it("open the values of several subjects in nested objects and arrays, sharing what holds none", () => {
    const untouched = { amount: 10, tags: ["a", "b"] }
    const data = deepFrozen({
      accountId: "cust-1",
      holder: sibling({ first: "Ada", last: "Lovelace" }),
      untouched,
      contacts: [{ accountId: "cust-2", phone: sibling("555-0100") }, fromMetadata(["e@x.org"])]
    })
    const sealed = seal(data, { customerId: "cust-1" }, keys) as typeof data
    expect(sealed.untouched).toBe(untouched)
    expect(storedSubjects(sealed)).toEqual(new Set(["cust-1", "cust-2"]))
    expect(open(sealed, keys)).toEqual({
      accountId: "cust-1",
      holder: { first: "Ada", last: "Lovelace" },
      untouched,
      contacts: [{ accountId: "cust-2", phone: "555-0100" }, ["e@x.org"]]
    })
  })

  it("store each value as its subject, a 12-byte nonce, and its ciphertext with a 16-byte tag", () => {
    const sealed = seal({ accountId: "cust-1", a: sibling("same"), b: sibling("same") }, {}, keys) as {
      a: StoredForm
      b: StoredForm
    }
    expect(Object.keys(sealed.a)).toEqual(["$personal"])
    expect(Object.keys(sealed.a.$personal).sort()).toEqual(["ct", "iv", "subject"])
    expect(sealed.a.$personal.subject).toBe("cust-1")
    expect(Buffer.from(sealed.a.$personal.iv, "base64")).toHaveLength(12)
    expect(Buffer.from(sealed.a.$personal.ct, "base64")).toHaveLength(Buffer.byteLength('"same"') + 16)
    expect(sealed.b.$personal.iv).not.toBe(sealed.a.$personal.iv)
    expect(sealed.b.$personal.ct).not.toBe(sealed.a.$personal.ct)
  })

  it("keep a __proto__ key an own property of the copy", () => {
    const data = JSON.parse('{"accountId":"cust-1","__proto__":{"$personal":{"value":"Ada","subjectOf":"accountId"}}}')
    const sealed = seal(data, {}, keys) as Record<string, unknown>
    expect(Object.getPrototypeOf(sealed)).toBe(Object.prototype)
    expect(JSON.stringify(sealed)).not.toContain("Ada")
    const opened = open(sealed, keys) as Record<string, unknown>
    expect(Object.getPrototypeOf(opened)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(opened, "__proto__")?.value).toBe("Ada")
  })

  it("read a value whose subject has no key as erased, and the others as they were", () => {
    const data = { accountId: "cust-1", holder: sibling("Ada"), other: PersonalData.value("cust-2", "Bob") }
    expect(roundTrip(data, {}, new Map([["cust-2", k2]]))).toEqual({
      accountId: "cust-1",
      holder: erasedForm("cust-1"),
      other: "Bob"
    })
    expect(roundTrip(data, {}, new Map())).toEqual({
      accountId: "cust-1",
      holder: erasedForm("cust-1"),
      other: erasedForm("cust-2")
    })
  })

  it("leave an erased value written again as it is: nothing personal to seal", () => {
    const data = { accountId: "cust-1", holder: erasedForm("cust-1") }
    expect(subjectsToSeal(data, {})).toBeUndefined()
    expect(open(seal(data, {}, keys), keys)).toBe(data)
  })

  it("throw on data subjectsToSeal refuses, or without a key for a subject", () => {
    expect(() => seal({ holder: sibling("Ada") }, {}, keys)).toThrow("subjectsToSeal refuses")
    expect(() => seal(PersonalData.value("cust-3", "Ada"), {}, keys)).toThrow('no key for subject "cust-3"')
  })

  describe("a stored value that does not authenticate", () => {
    const sealedHolder = () =>
      (seal({ accountId: "cust-1", holder: sibling("Ada Lovelace") }, {}, keys) as { holder: StoredForm }).holder
    const flip = (base64: string, at: number) => {
      const bytes = Buffer.from(base64, "base64")
      bytes[at] = (bytes[at] as number) ^ 1
      return bytes.toString("base64")
    }
    const corruptWith = (stored: unknown, readKeys = keys) => {
      try {
        open({ holder: stored }, readKeys)
      } catch (error) {
        expect(error).toBeInstanceOf(PersonalData.PersonalDataCorrupt)
        const corrupt = error as PersonalData.PersonalDataCorrupt
        expect(corrupt.message).not.toContain("Ada")
        for (const key of readKeys.values()) {
          expect(corrupt.message).not.toContain(Buffer.from(key).toString("base64"))
          expect(corrupt.message).not.toContain(Buffer.from(key).toString("hex"))
        }
        return corrupt
      }
      throw new Error("opened")
    }

    it.each([0, 5, 17])("is corrupt when its ciphertext or tag is altered at byte %i", (at) => {
      const { $personal } = sealedHolder()
      const corrupt = corruptWith({ $personal: { ...$personal, ct: flip($personal.ct, at) } })
      expect(corrupt.subject).toBe("cust-1")
      expect(corrupt.reason).toContain("does not authenticate")
    })

    it("is corrupt when its nonce is altered", () => {
      const { $personal } = sealedHolder()
      expect(corruptWith({ $personal: { ...$personal, iv: flip($personal.iv, 3) } }).reason).toContain(
        "does not authenticate"
      )
    })

    it("is corrupt when moved to another subject, or read with another key", () => {
      const { $personal } = sealedHolder()
      expect(corruptWith({ $personal: { ...$personal, subject: "cust-2" } }).subject).toBe("cust-2")
      // The same key under two subjects: only the subject, authenticated with the value, tells them apart.
      const sameKey = new Map([
        ["cust-1", k1],
        ["cust-9", k1]
      ])
      expect(corruptWith({ $personal: { ...$personal, subject: "cust-9" } }, sameKey).subject).toBe("cust-9")
      expect(corruptWith({ $personal }, new Map([["cust-1", k2]])).reason).toContain("another key")
    })

    it.each<[string, (stored: StoredForm["$personal"]) => unknown, string]>([
      ["a truncated ciphertext", (p) => ({ $personal: { ...p, ct: "AAAA" } }), "shorter than"],
      ["a short nonce", (p) => ({ $personal: { ...p, iv: "AAAA" } }), "iv is not 12 bytes"],
      ["a numeric ct", (p) => ({ $personal: { ...p, ct: 1 } }), "not a string"],
      ["a key beside it", (p) => ({ $personal: p, extra: 1 }), "other keys"]
    ])("is corrupt with %s", (_, alter, reason) => {
      expect(corruptWith(alter(sealedHolder().$personal)).reason).toContain(reason)
    })
  })
})

describe("newKey", () => {
  it("makes 32 random bytes", () => {
    expect(newKey()).toHaveLength(32)
    expect(Buffer.from(newKey()).equals(Buffer.from(newKey()))).toBe(false)
  })
})

/** JSON values holding `marker` somewhere: as a string, inside one, as a key, deep in arrays. */
const holding = (marker: string) =>
  fc
    .tuple(fc.jsonValue({ maxDepth: 3 }), fc.string())
    .chain(([json, text]) =>
      fc.constantFrom<unknown>(
        marker,
        `${text}${marker}${text}`,
        [json, marker],
        { [marker]: json },
        { json, note: { text: marker } },
        [[[{ deep: [marker, json] }]]]
      )
    )

describe("properties", () => {
  it("seal then open gives back every JSON value, in any place", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue({ maxDepth: 2 }), (v, around) => {
        const data = { around, accountId: "cust-1", v: sibling(v), list: [around, PersonalData.value("cust-2", v)] }
        const expected = JSON.parse(JSON.stringify({ around, accountId: "cust-1", v, list: [around, v] }))
        expect(roundTrip(data)).toEqual(expected)
      }),
      { numRuns: propertyRuns }
    )
  })

  it("the stored form never holds the plaintext", () => {
    // `!` is neither in base64 nor in the subjects: the marker can only come from the plaintext.
    const marker = fc.string({ minLength: 1, maxLength: 12 }).map((s) => `!${s}!`)
    fc.assert(
      fc.property(
        marker.chain((m) => fc.tuple(fc.constant(m), holding(m))),
        ([m, v]) => {
          const sealed = JSON.stringify(seal({ accountId: "cust-1", holder: sibling(v) }, {}, keys))
          expect(sealed).not.toContain(m)
          expect(sealed).not.toContain(JSON.stringify(m).slice(1, -1))
        }
      ),
      { numRuns: propertyRuns }
    )
  })

  it("data without personal values is returned as it is, by every walk", () => {
    const plain = fc.jsonValue().filter((json) => !JSON.stringify(json).includes('"$personal"'))
    fc.assert(
      fc.property(plain, (json) => {
        expect(subjectsToSeal(json, {})).toBeUndefined()
        expect(seal(json, {}, keys)).toBe(json)
        expect(storedSubjects(json)).toBeUndefined()
        expect(open(json, keys)).toBe(json)
      }),
      { numRuns: propertyRuns }
    )
  })
})

const Address = Schema.Struct({ street: Schema.String, city: Schema.String })

const Opened = Schema.TaggedStruct("Opened", {
  accountId: Schema.String,
  holder: PersonalData.field(Schema.String, { subject: "accountId" }),
  address: PersonalData.field(Address, { subject: { metadata: "customerId" } }),
  limit: PersonalData.field(Schema.NumberFromString, { subject: "accountId", erased: 0 })
})
const Deposited = Schema.TaggedStruct("Deposited", { accountId: Schema.String, amount: Schema.Number })
const AccountEvent = Schema.Union(Opened, Deposited)

const opened: typeof Opened.Type = {
  _tag: "Opened",
  accountId: "cust-1",
  holder: "Ada Lovelace",
  address: { street: "12 St James's Square", city: "London" },
  limit: 500
}

const recorded = (eventType: string, data: unknown): RecordedEvent => ({
  eventId: "0190a4b2-0000-7000-8000-000000000001",
  streamId: StreamId.unsafeMake("account-cust-1"),
  streamVersion: 1,
  globalPosition: 1n,
  position: LogPosition.make(1n, 1n),
  eventType,
  schemaVersion: 1,
  data,
  metadata: { customerId: "cust-1" },
  recordedAt: new Date(0)
})

/** An event through an append and a read: encode, seal, open, decode with the codec. */
const throughStore = (event: typeof AccountEvent.Type, readKeys = keys) => {
  const { _tag, ...data } = Schema.encodeSync(AccountEvent)(event)
  const opened = roundTrip(data, { customerId: "cust-1" }, readKeys)
  return Effect.runSync(EventSchema.codecOf(AccountEvent).decode(recorded(_tag, opened)))
}

describe("PersonalData.field", () => {
  it("types a value as itself or Erased, or as itself with a replacement", () => {
    expectTypeOf<(typeof Opened.Type)["holder"]>().toEqualTypeOf<string | PersonalData.Erased>()
    expectTypeOf<(typeof Opened.Type)["limit"]>().toEqualTypeOf<number>()
    expectTypeOf<(typeof Opened.Encoded)["limit"]>().toEqualTypeOf<PersonalData.Encoded<string>>()
  })

  it("encodes to write forms naming where the subject is", () => {
    expect(Schema.encodeSync(AccountEvent)(opened)).toEqual({
      _tag: "Opened",
      accountId: "cust-1",
      holder: { $personal: { value: "Ada Lovelace", subjectOf: "accountId" } },
      address: { $personal: { value: opened.address, subjectOf: { metadata: "customerId" } } },
      limit: { $personal: { value: "500", subjectOf: "accountId" } }
    })
  })

  it("decodes what it encodes, and the values as read", () => {
    const decode = Schema.decodeUnknownSync(AccountEvent)
    expect(decode(Schema.encodeSync(AccountEvent)(opened))).toEqual(opened)
    expect(decode({ ...opened, limit: "500" })).toEqual(opened)
  })

  it("reads back through seal, open and the event codec", () => {
    expect(throughStore(opened)).toEqual([opened])
    const deposited = { _tag: "Deposited", accountId: "cust-1", amount: 5 } as const
    expect(throughStore(deposited)).toEqual([deposited])
  })

  it("decodes an erased value as Erased, or as the replacement it declares", () => {
    const [event] = throughStore(opened, new Map()) as [typeof Opened.Type]
    expect(event.holder).toEqual(new PersonalData.Erased({ subject: "cust-1" }))
    expect(PersonalData.isErased(event.holder)).toBe(true)
    expect(PersonalData.isErased(event.address)).toBe(true)
    expect(event.limit).toBe(0)
    expect(PersonalData.isErased("Ada")).toBe(false)
  })

  it("encodes Erased back to the erased form: copied into a new event, it seals to nothing", () => {
    const [event] = throughStore(opened, new Map()) as [typeof Opened.Type]
    const again = Schema.encodeSync(AccountEvent)(event)
    expect(again).toMatchObject({ holder: erasedForm("cust-1"), address: erasedForm("cust-1") })
    const { holder, address } = again as Record<string, unknown>
    expect(subjectsToSeal({ holder, address }, { customerId: "cust-1" })).toBeUndefined()
    expect(Schema.decodeUnknownSync(AccountEvent)(again)).toEqual(event)
  })

  it("fails to decode a value still encrypted, or a malformed one, saying why", () => {
    const stored = seal(Schema.encodeSync(AccountEvent)(opened), { customerId: "cust-1" }, keys)
    expect(() => Schema.decodeUnknownSync(AccountEvent)(stored)).toThrow("still encrypted")
    const decode = Schema.decodeUnknownEither(Opened)
    expect(Either.isLeft(decode({ ...opened, limit: "500", holder: { $personal: { value: 7, subject: "s" } } }))).toBe(
      true
    )
    expect(Either.isLeft(decode({ ...opened, limit: "500", holder: { $erased: {} } }))).toBe(true)
    expect(Either.isLeft(decode({ ...opened, limit: "500", holder: 7 }))).toBe(true)
  })

  it("fails an event decode in the codec with EventDecodeError for a value still encrypted", () => {
    const { _tag, ...data } = Schema.encodeSync(AccountEvent)(opened)
    const stored = seal(data, { customerId: "cust-1" }, keys)
    const failure = Effect.runSync(Effect.flip(EventSchema.codecOf(AccountEvent).decode(recorded(_tag, stored))))
    expect(failure._tag).toBe("EventDecodeError")
    expect(failure.message).toContain("still encrypted")
    expect(failure.message).not.toContain("Ada")
  })

  it("works optional, and inside arrays", () => {
    const Profile = Schema.Struct({
      accountId: Schema.String,
      nickname: Schema.optional(PersonalData.field(Schema.String, { subject: "accountId" })),
      phones: Schema.Array(PersonalData.field(Schema.String, { subject: "accountId" }))
    })
    const profile = { accountId: "cust-2", phones: ["555-0100", "555-0199"] }
    const encoded = Schema.encodeSync(Profile)(profile)
    expect(subjectsOf(encoded)).toEqual(["cust-2"])
    const read = open(JSON.parse(JSON.stringify(seal(encoded, {}, keys))), new Map([["cust-1", k1]]))
    expect(Schema.decodeUnknownSync(Profile)(read)).toEqual({
      accountId: "cust-2",
      phones: [new PersonalData.Erased({ subject: "cust-2" }), new PersonalData.Erased({ subject: "cust-2" })]
    })
  })
})

describe("errors", () => {
  it("say what happened in words a user understands", () => {
    expect(new PersonalData.InvalidPersonalData({ path: "$.holder", reason: "no subject" }).message).toBe(
      "Cannot write the personal value at $.holder: no subject"
    )
    expect(new PersonalData.PersonalDataCorrupt({ subject: "c", reason: "altered" }).message).toBe(
      'A stored personal value of subject "c" cannot be read: altered'
    )
    expect(new PersonalData.SubjectErased({ subject: "c" }).message).toContain('Subject "c" was erased')
  })
})
