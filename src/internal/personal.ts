/**
 * The three forms of a personal value in an event's data, and the walks that
 * turn one into the next: an append's write forms are sealed into stored forms
 * (encrypted with the subject's key), a read's stored forms are opened into the
 * values themselves, or the erased form when the subject's key is gone.
 *
 * Every append and every read walks its events' data, and nearly none holds
 * personal data: the walks that answer "none" allocate nothing and return
 * their input as it is.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { Either } from "effect"
import { InvalidPersonalData, PersonalDataCorrupt } from "../errors.js"
import type { ErasedForm, Subject } from "../PersonalData.js"
import { maxDepth, whyNotText } from "./json.js"

/** A personal value as stored: its subject, the nonce, and the ciphertext of its JSON followed by the GCM tag. */
export interface StoredForm {
  readonly $personal: { readonly subject: string; readonly iv: string; readonly ct: string }
}

const algorithm = "aes-256-gcm"
const ivBytes = 12
const tagBytes = 16

/** A new subject key: 32 random bytes, for AES-256. */
export const newKey = (): Uint8Array => randomBytes(32)

type Json = Record<string, unknown>

const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** The only own key of `object` is `$personal`. */
const isAlone = (object: Json): boolean => {
  for (const key in object) if (key !== "$personal" && Object.hasOwn(object, key)) return false
  return true
}

/**
 * Sets `object[key]` as an own property: a key `__proto__` (an own key of
 * parsed JSON) would otherwise set the prototype and leave the old value in
 * the copy.
 */
const put = (object: Json, key: string, item: unknown) => {
  if (key === "__proto__") Object.defineProperty(object, key, { value: item, enumerable: true, writable: true })
  else object[key] = item
}

/** Whether any object in `value` has a key `$personal`. Deeper than JSON allows counts as yes: the walk that names places refuses it. */
const holdsPersonal = (value: unknown, depth: number): boolean => {
  if (typeof value !== "object" || value === null) return false
  if (depth >= maxDepth) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (holdsPersonal(value[i], depth + 1)) return true
    return false
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (key === "$personal" || holdsPersonal((value as Json)[key], depth + 1)) return true
  }
  return false
}

const render = (path: ReadonlyArray<string | number>): string =>
  path.reduce<string>(
    (rendered, step) => (typeof step === "number" ? `${rendered}[${step}]` : `${rendered}.${step}`),
    "$"
  )

const whyNotSubject = (subject: unknown, what: string): string | undefined => {
  if (typeof subject !== "string" || subject.length === 0) return `${what} is not a non-empty string`
  return whyNotText(subject, what)
}

/**
 * The subject of a write form's content, or why it has none: named outright,
 * a sibling field of `holder` (the nearest object holding the value), or a
 * key of the metadata.
 */
const subjectOf = (
  personal: Json,
  holder: Json | undefined,
  metadata: Readonly<Json> | undefined
): Either.Either<string, string> => {
  const named = personal.subject
  const where = personal.subjectOf as Subject | undefined
  if (named !== undefined && where !== undefined) return Either.left("it gives both subject and subjectOf")
  if (named !== undefined) {
    const reason = whyNotSubject(named, "its subject")
    return reason === undefined ? Either.right(named as string) : Either.left(reason)
  }
  if (typeof where === "string") {
    if (holder === undefined) return Either.left(`no object holds it, so it has no sibling field ${where}`)
    if (!Object.hasOwn(holder, where)) return Either.left(`the sibling field ${where} naming its subject is missing`)
    const subject = holder[where]
    const reason = whyNotSubject(subject, `the sibling field ${where} naming its subject`)
    return reason === undefined ? Either.right(subject as string) : Either.left(reason)
  }
  if (isRecord(where) && typeof where.metadata === "string") {
    const key = where.metadata
    if (metadata === undefined || !Object.hasOwn(metadata, key)) {
      return Either.left(`the metadata key ${key} naming its subject is missing`)
    }
    const subject = metadata[key]
    const reason = whyNotSubject(subject, `the metadata key ${key} naming its subject`)
    return reason === undefined ? Either.right(subject as string) : Either.left(reason)
  }
  return Either.left(
    where === undefined
      ? "it names no subject: give subject, or subjectOf (a sibling field's name or { metadata: key })"
      : "its subjectOf is neither a sibling field's name nor { metadata: key }"
  )
}

const contentKeys = new Set(["value", "subject", "subjectOf"])

/** Why a write form is malformed, or its subject. */
const writeFormSubject = (
  form: Json,
  holder: Json | undefined,
  metadata: Readonly<Json> | undefined
): Either.Either<string, string> => {
  if (!isAlone(form)) return Either.left("an object holding $personal holds nothing else")
  const personal = form.$personal
  if (!isRecord(personal)) return Either.left("$personal is not an object")
  if (personal.ct !== undefined && personal.value === undefined) {
    return Either.left("it is a stored (encrypted) personal value: append the value itself")
  }
  for (const key in personal) {
    if (Object.hasOwn(personal, key) && !contentKeys.has(key)) {
      return Either.left(`$personal has the key ${JSON.stringify(key)}: only value, and subject or subjectOf`)
    }
  }
  if (personal.value === undefined) return Either.left("$personal has no value")
  if (holdsPersonal(personal.value, 0)) return Either.left("its value holds another personal value")
  return subjectOf(personal, holder, metadata)
}

/** Adds the subjects of the write forms in `value` to `subjects`, or returns why one cannot be written. */
const collect = (
  value: unknown,
  holder: Json | undefined,
  metadata: Readonly<Json> | undefined,
  subjects: Set<string>,
  path: Array<string | number>
): InvalidPersonalData | undefined => {
  if (typeof value !== "object" || value === null) return undefined
  if (path.length >= maxDepth) {
    return new InvalidPersonalData({ path: render(path), reason: `it is nested deeper than ${maxDepth} levels` })
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i)
      const invalid = collect(value[i], holder, metadata, subjects, path)
      if (invalid !== undefined) return invalid
      path.pop()
    }
    return undefined
  }
  const object = value as Json
  if (Object.hasOwn(object, "$personal")) {
    const subject = writeFormSubject(object, holder, metadata)
    if (Either.isLeft(subject)) return new InvalidPersonalData({ path: render(path), reason: subject.left })
    subjects.add(subject.right)
    return undefined
  }
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue
    path.push(key)
    const invalid = collect(object[key], object, metadata, subjects, path)
    if (invalid !== undefined) return invalid
    path.pop()
  }
  return undefined
}

/**
 * The subjects of the personal values an append writes: `undefined` when
 * `data` holds none (one walk, nothing allocated), or why one cannot be
 * written. A sibling subject is a string field of the nearest object holding
 * the value (through arrays). Run after `whyNotJson`: data deeper than it
 * allows is refused here too.
 */
export const subjectsToSeal = (
  data: unknown,
  metadata: Readonly<Record<string, unknown>> | undefined
): Either.Either<ReadonlySet<string>, InvalidPersonalData> | undefined => {
  if (!holdsPersonal(data, 0)) return undefined
  const subjects = new Set<string>()
  const invalid = collect(data, undefined, metadata, subjects, [])
  return invalid === undefined ? Either.right(subjects) : Either.left(invalid)
}

const encrypt = (subject: string, key: Uint8Array, plaintext: unknown): StoredForm => {
  const iv = randomBytes(ivBytes)
  const cipher = createCipheriv(algorithm, key, iv)
  cipher.setAAD(Buffer.from(subject, "utf8"))
  const body = cipher.update(JSON.stringify(plaintext), "utf8")
  const ct = Buffer.concat([body, cipher.final(), cipher.getAuthTag()])
  return { $personal: { subject, iv: iv.toString("base64"), ct: ct.toString("base64") } }
}

const sealValue = (
  value: unknown,
  holder: Json | undefined,
  metadata: Readonly<Json> | undefined,
  keys: ReadonlyMap<string, Uint8Array>
): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    let copy: Array<unknown> | undefined
    for (let i = 0; i < value.length; i++) {
      const sealed = sealValue(value[i], holder, metadata, keys)
      if (sealed !== value[i]) {
        copy ??= value.slice()
        copy[i] = sealed
      }
    }
    return copy ?? value
  }
  const object = value as Json
  if (Object.hasOwn(object, "$personal")) {
    const subject = writeFormSubject(object, holder, metadata)
    // subjectsToSeal accepted this data: a failure here is a caller that skipped it.
    if (Either.isLeft(subject)) throw new Error(`seal was given data subjectsToSeal refuses: ${subject.left}`)
    const key = keys.get(subject.right)
    if (key === undefined) throw new Error(`seal was given no key for subject ${JSON.stringify(subject.right)}`)
    return encrypt(subject.right, key, (object.$personal as Json).value)
  }
  let copy: Json | undefined
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue
    const sealed = sealValue(object[key], object, metadata, keys)
    if (sealed !== object[key]) {
      copy ??= { ...object }
      put(copy, key, sealed)
    }
  }
  return copy ?? object
}

/**
 * `data` with each write form replaced by its stored form, encrypted with its
 * subject's key from `keys`; `data` itself is left as it is, and the objects
 * without write forms are shared, not copied. Call it only on data
 * `subjectsToSeal` accepted, with a key for each of its subjects: anything
 * else throws.
 */
export const seal = (
  data: unknown,
  metadata: Readonly<Record<string, unknown>> | undefined,
  keys: ReadonlyMap<string, Uint8Array>
): unknown => sealValue(data, undefined, metadata, keys)

/** The content of a stored form: `$personal` holding a ciphertext (a write form holds a value instead). */
const storedContent = (object: Json): Json | undefined => {
  if (!Object.hasOwn(object, "$personal")) return undefined
  const personal = object.$personal
  return isRecord(personal) && Object.hasOwn(personal, "ct") ? personal : undefined
}

const addStoredSubjects = (value: unknown, found: Set<string> | undefined): Set<string> | undefined => {
  if (typeof value !== "object" || value === null) return found
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) found = addStoredSubjects(value[i], found)
    return found
  }
  const object = value as Json
  const stored = storedContent(object)
  if (stored !== undefined) {
    if (typeof stored.subject !== "string") return found
    const subjects = found ?? new Set<string>()
    subjects.add(stored.subject)
    return subjects
  }
  for (const key in object) if (Object.hasOwn(object, key)) found = addStoredSubjects(object[key], found)
  return found
}

/** The subjects of the stored forms in `data`: `undefined` when it has none (one walk, nothing allocated). */
export const storedSubjects = (data: unknown): ReadonlySet<string> | undefined => addStoredSubjects(data, undefined)

const corrupt = (subject: string, reason: string) => new PersonalDataCorrupt({ subject, reason })

const decrypt = (object: Json, stored: Json, keys: ReadonlyMap<string, Uint8Array>): unknown => {
  const { subject, iv, ct } = stored
  if (typeof subject !== "string") throw corrupt(String(subject), "its subject is not a string")
  if (!isAlone(object)) throw corrupt(subject, "the object holding it holds other keys")
  const key = keys.get(subject)
  if (key === undefined) return { $erased: { subject } } satisfies ErasedForm
  if (typeof iv !== "string" || typeof ct !== "string") throw corrupt(subject, "its iv or ct is not a string")
  const nonce = Buffer.from(iv, "base64")
  const sealed = Buffer.from(ct, "base64")
  if (nonce.length !== ivBytes) throw corrupt(subject, `its iv is not ${ivBytes} bytes`)
  if (sealed.length < tagBytes) throw corrupt(subject, "its ciphertext is shorter than its authentication tag")
  const decipher = createDecipheriv(algorithm, key, nonce, { authTagLength: tagBytes })
  decipher.setAAD(Buffer.from(subject, "utf8"))
  decipher.setAuthTag(sealed.subarray(sealed.length - tagBytes))
  let plaintext: string
  try {
    plaintext =
      decipher.update(sealed.subarray(0, sealed.length - tagBytes), undefined, "utf8") + decipher.final("utf8")
  } catch {
    throw corrupt(subject, "it does not authenticate with the subject's key: altered, or sealed with another key")
  }
  return JSON.parse(plaintext)
}

const openValue = (value: unknown, keys: ReadonlyMap<string, Uint8Array>): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    let copy: Array<unknown> | undefined
    for (let i = 0; i < value.length; i++) {
      const opened = openValue(value[i], keys)
      if (opened !== value[i]) {
        copy ??= value.slice()
        copy[i] = opened
      }
    }
    return copy ?? value
  }
  const object = value as Json
  const stored = storedContent(object)
  if (stored !== undefined) return decrypt(object, stored, keys)
  let copy: Json | undefined
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue
    const opened = openValue(object[key], keys)
    if (opened !== object[key]) {
      copy ??= { ...object }
      put(copy, key, opened)
    }
  }
  return copy ?? object
}

/**
 * `data` as readers get it: each stored form replaced by its value, or by the
 * erased form when `keys` has no key for its subject; `data` itself is left as
 * it is, and returned as it is when it holds no stored form. Throws
 * `PersonalDataCorrupt` for a stored form that does not decrypt.
 */
export const open = (data: unknown, keys: ReadonlyMap<string, Uint8Array>): unknown => openValue(data, keys)
