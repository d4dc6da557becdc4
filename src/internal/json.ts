/**
 * Checks that a value survives a trip through PostgreSQL `jsonb` unchanged, so a
 * store never writes something that reads back different (or fails half-way).
 */

/** Deeper nesting is refused: PostgreSQL's JSON parser and `JSON.stringify` both have stack limits. */
export const maxDepth = 512

const loneSurrogate = /\p{Surrogate}/u

/** Why `s` cannot be stored as PostgreSQL text or a jsonb string, or `undefined` when it can. */
export const whyNotText = (s: string, path: string): string | undefined => {
  if (s.includes("\u0000")) return `${path} contains a NUL character, which PostgreSQL jsonb cannot store`
  if (loneSurrogate.test(s)) return `${path} contains a lone surrogate (not well-formed Unicode)`
  return undefined
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Returns why `value` is not plain JSON, or `undefined` when it is. Object
 * properties whose value is `undefined` are allowed: they are omitted, exactly as
 * `JSON.stringify` and optional Schema fields treat them.
 */
export const whyNotJson = (value: unknown, path = "$"): string | undefined =>
  // Every append checks its events: the common answer (it is JSON) comes without building a path
  // for each property; the walk that names the place runs only for a value that fails.
  fits(value, new Set(), 0) ? undefined : walk(value, path, new Set(), 0)

const isText = (s: string) => !s.includes("\u0000") && !loneSurrogate.test(s)

/** Whether `walk` finds nothing wrong with `value`, without saying where. */
const fits = (value: unknown, ancestors: Set<object>, depth: number): boolean => {
  switch (typeof value) {
    case "string":
      return isText(value)
    case "boolean":
      return true
    case "number":
      return Number.isFinite(value)
    case "object": {
      if (value === null) return true
      if (depth >= maxDepth || ancestors.has(value)) return false
      ancestors.add(value)
      if (Array.isArray(value)) {
        for (const item of value) if (!fits(item, ancestors, depth + 1)) return false
      } else {
        if (!isPlainObject(value)) return false
        for (const key in value) {
          if (!Object.hasOwn(value, key)) continue
          const item = (value as Record<string, unknown>)[key]
          if (!isText(key) || (item !== undefined && !fits(item, ancestors, depth + 1))) return false
        }
      }
      ancestors.delete(value)
      return true
    }
    default:
      return false
  }
}

const walk = (value: unknown, path: string, ancestors: Set<object>, depth: number): string | undefined => {
  switch (typeof value) {
    case "string":
      return whyNotText(value, path)
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot represent`
    case "undefined":
      return `${path} is undefined, which JSON cannot represent`
    case "bigint":
      return `${path} is a BigInt, which JSON cannot represent: encode it as a string`
    case "object": {
      if (value === null) return undefined
      if (depth >= maxDepth) return `${path} is nested deeper than ${maxDepth} levels`
      if (ancestors.has(value)) return `${path} is a cyclic reference`
      if (Array.isArray(value)) {
        ancestors.add(value)
        for (let i = 0; i < value.length; i++) {
          const reason = walk(value[i], `${path}[${i}]`, ancestors, depth + 1)
          if (reason !== undefined) return reason
        }
        ancestors.delete(value)
        return undefined
      }
      if (!isPlainObject(value)) {
        const name = value.constructor?.name ?? "object"
        return `${path} is a ${name}, not a plain object: encode it with a Schema first`
      }
      ancestors.add(value)
      for (const [key, item] of Object.entries(value)) {
        const keyReason = whyNotText(key, `${path} key ${JSON.stringify(key)}`)
        if (keyReason !== undefined) return keyReason
        if (item === undefined) continue
        const reason = walk(item, `${path}.${key}`, ancestors, depth + 1)
        if (reason !== undefined) return reason
      }
      ancestors.delete(value)
      return undefined
    }
    default:
      return `${path} is a ${typeof value}, which JSON cannot represent`
  }
}
