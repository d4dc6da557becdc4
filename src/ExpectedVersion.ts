/**
 * What a writer expects of a stream before appending to it (or merely checking it).
 */
import { Schema } from "effect"

/**
 * - `n >= 0`: the stream has exactly `n` events (`0` is the same as `"no_stream"`);
 * - `"any"`: never conflicts;
 * - `"no_stream"`: the stream has no events;
 * - `"stream_exists"`: the stream has at least one event.
 */
export type ExpectedVersion = number | "any" | "no_stream" | "stream_exists"

export const schema: Schema.Schema<ExpectedVersion> = Schema.Union(
  Schema.NonNegativeInt,
  Schema.Literal("any", "no_stream", "stream_exists")
)

export const isExpectedVersion = (u: unknown): u is ExpectedVersion =>
  u === "any" ||
  u === "no_stream" ||
  u === "stream_exists" ||
  (typeof u === "number" && Number.isSafeInteger(u) && u >= 0)

/** The canonical form: `0` becomes `"no_stream"`, so equal expectations compare equal. */
export const normalize = (expected: ExpectedVersion): ExpectedVersion => (expected === 0 ? "no_stream" : expected)

/** Whether a stream currently at `actual` satisfies `expected`. */
export const isSatisfiedBy = (expected: ExpectedVersion, actual: number): boolean => {
  switch (expected) {
    case "any":
      return true
    case "no_stream":
      return actual === 0
    case "stream_exists":
      return actual > 0
    default:
      return actual === expected
  }
}
