import { randomUUID } from "node:crypto"

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits,
 * so ids generated later sort later and index well in a B-tree.
 *
 * The random bits and the variant come from `randomUUID` (a version 4), which
 * draws from a pooled buffer of random bytes: a `randomFillSync` of 16 bytes
 * per id cost ~7 µs, a few percent of an append's CPU.
 */
export const uuidv7 = (nowMillis: number = Date.now()): string => {
  const time = nowMillis.toString(16).padStart(12, "0")
  // From a v4's 13 hex digits of version and random bits on: "4xxx-Vxxx-xxxxxxxxxxxx" without the 4.
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${randomUUID().slice(15)}`
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const isUuid = (s: unknown): s is string => typeof s === "string" && uuidPattern.test(s)
