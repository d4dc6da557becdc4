/**
 * Stream identity: a trimmed string of 1..255 characters, branded so that an
 * unvalidated string cannot reach a store by accident.
 */
import { type Brand, type Effect, Either, ParseResult, Schema } from "effect"
import { InvalidStreamId } from "./errors.js"

export type StreamId = string & Brand.Brand<"StreamId">

/** The longest stream id, counted in Unicode code points (PostgreSQL's notion of a character). */
export const maxLength = 255

/**
 * Validates already-trimmed input. NUL and lone surrogates are refused because
 * PostgreSQL text cannot hold them: the id would not read back as written.
 */
const loneSurrogate = /\p{Surrogate}/u

const check = (trimmed: string): string | undefined => {
  if (trimmed.length === 0) return "must not be empty or only whitespace"
  if (loneSurrogate.test(trimmed)) return "must be well-formed Unicode (no lone surrogates)"
  if (trimmed.includes("\u0000")) return "must not contain NUL characters"
  let codePoints = 0
  for (const _ of trimmed) {
    if (++codePoints > maxLength) return `must be at most ${maxLength} characters`
  }
  return undefined
}

/** Validates and brands `input` (after trimming). */
export const validate = (input: string): Either.Either<StreamId, InvalidStreamId> => {
  if (typeof input !== "string") {
    return Either.left(new InvalidStreamId({ input: String(input), reason: "must be a string" }))
  }
  const trimmed = input.trim()
  const reason = check(trimmed)
  return reason === undefined ? Either.right(trimmed as StreamId) : Either.left(new InvalidStreamId({ input, reason }))
}

export const make = (input: string): Effect.Effect<StreamId, InvalidStreamId> => validate(input)

/** Validates `input`, throwing `InvalidStreamId` when it is not a valid stream id. */
export const unsafeMake = (input: string): StreamId => Either.getOrThrowWith(validate(input), (error) => error)

/** A schema from `string` to `StreamId`: trims, then validates. */
export const schema: Schema.Schema<StreamId, string> = Schema.transformOrFail(
  Schema.String,
  Schema.String.pipe(Schema.brand("StreamId")),
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.mapLeft(validate(input), (error) => new ParseResult.Type(ast, input, error.reason)),
    encode: (id) => ParseResult.succeed(id)
  }
).annotations({ identifier: "StreamId" })
