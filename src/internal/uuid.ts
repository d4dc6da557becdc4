import { randomFillSync } from "node:crypto"

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits,
 * so ids generated later sort later and index well in a B-tree.
 */
export const uuidv7 = (nowMillis: number = Date.now()): string => {
  const bytes = randomFillSync(new Uint8Array(16))
  let ms = nowMillis
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80
  const hex = Buffer.from(bytes).toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const isUuid = (s: unknown): s is string => typeof s === "string" && uuidPattern.test(s)
