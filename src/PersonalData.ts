/**
 * Personal data that can be erased from a log that never changes. Each
 * personal value in an event belongs to a data subject (a customer, an
 * account holder) and is stored encrypted with that subject's own key
 * (AES-256-GCM, a fresh nonce per value); reads decrypt it transparently.
 * Erasing a subject destroys its key: its values become unreadable in the
 * log and in every copy of it (replicas, backups of the log) without any
 * event being rewritten, and every read returns them as `Erased`, which the
 * application's schema accepts, so commands still fold and projections still
 * rebuild.
 *
 * An event schema marks its personal values with `field` (the subject taken
 * from a sibling field or from the event's metadata); a raw append marks them
 * with `value`. The keys `$personal` and `$erased` are reserved in event data:
 * an object holding one of them is read as a personal value, never as the
 * application's own data.
 */
import { Effect, ParseResult, Schema } from "effect"
import * as EventStore from "./EventStore.js"
import { InvalidPersonalData, StoreError } from "./errors.js"
import { type Erasure, personalDataKey, type StoreExtras } from "./internal/storeContract.js"
import * as StreamId from "./StreamId.js"

/** Where a `field` finds its subject: a sibling field's name, or a key of the event's metadata. */
export type Subject = string | { readonly metadata: string }

/**
 * A personal value as written: what encoding an event produces and what an
 * append hands the store, which encrypts it. `subject` names the subject
 * itself; `subjectOf` names where to find it (a string field of the nearest
 * object holding the value, or a key of the event's metadata).
 */
export type WriteForm<V = unknown> = {
  readonly $personal:
    | { readonly value: V; readonly subject: string }
    | { readonly value: V; readonly subjectOf: Subject }
}

/** An erased personal value as read: the subject's key is gone, and with it the value. */
export type ErasedForm = { readonly $erased: { readonly subject: string } }

/** What a `field` encodes to and decodes from: the value as read, the write form, or the erased form. */
export type Encoded<I> = I | WriteForm<I> | ErasedForm

/** The metadata key under which the store records the subjects of an event's personal values (a string array). */
export const subjectsMetadataKey = "eventcore.subjects"

/** A personal value whose subject was erased: what `field` decodes in its place. */
export class Erased extends Schema.TaggedClass<Erased>("PersonalData.Erased")("Erased", {
  subject: Schema.String
}) {}

export const isErased = (u: unknown): u is Erased => u instanceof Erased

export { InvalidPersonalData, PersonalDataCorrupt, SubjectErased } from "./errors.js"

/** A personal value of a subject named outright, for appends that do not encode with a Schema. */
export const value = <V>(subject: string, v: V): WriteForm<V> => ({ $personal: { value: v, subject } })

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const isSubjectOf = (u: unknown): boolean => typeof u === "string" || (isRecord(u) && typeof u.metadata === "string")

/** Whether the reserved forms in `u` are well formed; anything else is left to the inner schema. */
const isEncodedForm = (u: unknown): boolean => {
  if (!isRecord(u)) return true
  const personal = u.$personal
  if (personal !== undefined) {
    return (
      isRecord(personal) &&
      personal.value !== undefined &&
      (typeof personal.subject === "string" || isSubjectOf(personal.subjectOf))
    )
  }
  const erased = u.$erased
  return erased === undefined || (isRecord(erased) && typeof erased.subject === "string")
}

const whyNotEncoded = (actual: unknown): string =>
  isRecord(actual) && isRecord(actual.$personal) && actual.$personal.ct !== undefined
    ? "A personal value still encrypted: decode events as an eventcore store reads them, which decrypts them"
    : "Expected a personal value: its encoded value, { $personal: { value, subject | subjectOf } } or { $erased: { subject } }"

/**
 * A personal value of an event: `inner`'s value, stored encrypted with the key
 * of its subject, which `subject` says where to find: the name of a sibling
 * field (a string field of the same object, such as the account's id) or
 * `{ metadata: key }` (a string in the event's metadata).
 *
 * Its type is `A | Erased`: once the subject is erased, it decodes as an
 * `Erased`, which encodes back to the erased form (so copying it into a new
 * event never writes anything personal). With `erased: replacement` its type
 * is `A` and an erased value decodes as `replacement`; that encodes like any
 * other value, as personal data of the subject, which a store refuses for a
 * subject already erased (`SubjectErased`).
 *
 * ```ts
 * const Opened = Schema.TaggedStruct("Opened", {
 *   accountId: Schema.String,
 *   holder: PersonalData.field(Schema.String, { subject: "accountId" })
 * })
 * ```
 */
export function field<A, I, R>(
  inner: Schema.Schema<A, I, R>,
  options: { readonly subject: Subject; readonly erased: NoInfer<A> }
): Schema.Schema<A, Encoded<I>, R>
export function field<A, I, R>(
  inner: Schema.Schema<A, I, R>,
  options: { readonly subject: Subject }
): Schema.Schema<A | Erased, Encoded<I>, R>
export function field<A, I, R>(
  inner: Schema.Schema<A, I, R>,
  options: { readonly subject: Subject; readonly erased?: A }
): Schema.Schema<A | Erased, Encoded<I>, R> {
  const subjectOf = options.subject
  const hasReplacement = "erased" in options
  const replacement = options.erased as A
  const decodeInner = ParseResult.decodeUnknown(inner)
  const encodeInner = ParseResult.encodeUnknown(inner)
  const encoded = Schema.declare((u: unknown): u is Encoded<I> => isEncodedForm(u), {
    identifier: "PersonalData",
    message: (issue) => whyNotEncoded(issue.actual)
  })
  const decoded = Schema.Union(Schema.typeSchema(inner), Schema.typeSchema(Erased))
  return Schema.transformOrFail(encoded, decoded, {
    strict: true,
    decode: (input, parseOptions) => {
      if (isRecord(input)) {
        const personal = (input as Partial<WriteForm<I>>).$personal
        if (personal !== undefined) {
          return ParseResult.mapError(
            decodeInner(personal.value, parseOptions),
            (issue) => new ParseResult.Pointer(["$personal", "value"], input, issue)
          )
        }
        const erased = (input as Partial<ErasedForm>).$erased
        if (erased !== undefined) {
          return ParseResult.succeed(hasReplacement ? replacement : new Erased({ subject: erased.subject }))
        }
      }
      return decodeInner(input, parseOptions)
    },
    encode: (output, parseOptions) =>
      isErased(output)
        ? ParseResult.succeed<Encoded<I>>({ $erased: { subject: output.subject } })
        : ParseResult.map(
            encodeInner(output, parseOptions),
            (v): Encoded<I> => ({ $personal: { value: v, subjectOf } })
          )
  })
}

/** The stream where erasures are recorded: one `SubjectErased` event each, free of personal data. */
export const erasureStream: StreamId.StreamId = StreamId.unsafeMake("eventcore-erasures")

/**
 * The event an erasure appends to `erasureStream`: what projections and
 * reactors react to, to erase what they derived from the subject's events
 * (a read model's copy of a name, a row keyed by the subject).
 */
export const SubjectErasedEvent = Schema.TaggedStruct("SubjectErased", { subject: Schema.String })

export type { Erasure }

/**
 * Erases `subject`: destroys its key (with the store's own key store, in the
 * same transaction as the rest), records who erased it (`by`: a name for the
 * audit, not a person's personal data if that can be avoided) and when,
 * removes every snapshot (their states may hold the subject's values), and
 * appends `SubjectErasedEvent` to `erasureStream`. From then on every read
 * returns the subject's values as `Erased`, and appends of new personal data
 * of it fail with `SubjectErased`. Erasing a subject again changes nothing
 * (`already: true`).
 *
 * On PostgreSQL only a role granted `EXECUTE` on `eventcore.erase_subject`
 * may erase (the owner; docs/erasure.md): the application role gets a
 * `StoreError` (SQLSTATE 42501).
 */
export const erase = (
  subject: string,
  options: { readonly by: string }
): Effect.Effect<Erasure, InvalidPersonalData | StoreError, EventStore.EventStore> =>
  Effect.flatMap(EventStore.EventStore, (store): Effect.Effect<Erasure, InvalidPersonalData | StoreError> => {
    if (subject.length === 0 || options.by.length === 0) {
      return Effect.fail(
        new InvalidPersonalData({ path: "$", reason: "erase needs a subject and who erases it (by), both non-empty" })
      )
    }
    const personal = (store as EventStore.EventStore & StoreExtras)[personalDataKey]
    if (personal === undefined) {
      return Effect.fail(
        new StoreError({
          operation: "erase",
          message: "This store does not keep personal data: it cannot erase a subject."
        })
      )
    }
    return Effect.zipRight(personal.keys.destroy(subject), personal.erase(subject, options.by))
  })
