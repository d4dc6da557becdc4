/**
 * The SQL stores' error mapping on driver errors shaped as postgres.js and
 * PGlite report them (test/postgres/errors.test.ts raises the real ones on a
 * server). Pure functions: these run in milliseconds, so mutation testing runs them.
 */
import { DrizzleQueryError } from "drizzle-orm"
import { DuplicateEventId, StoreError, VersionConflict } from "eventcore"
import { describe, expect, it } from "vitest"
import {
  driverError,
  isRacedWrite,
  parseDuplicateEventId,
  parseVersionConflict,
  SqlState,
  storeError
} from "../src/sql/errors.js"

/** A driver error: an `Error` with the fields PostgreSQL sends. */
const pgError = (
  fields: { code?: string; detail?: string; constraint_name?: string; constraint?: string },
  message = "boom"
) => Object.assign(new Error(message), fields)

/** drizzle's wrapper, whose own message lists the query parameters. */
const wrapped = (cause: unknown) =>
  new DrizzleQueryError("select eventcore_append($1)", ["secret-parameter"], cause as Error)

describe("driverError", () => {
  it("unwraps drizzle's DrizzleQueryError to the driver error underneath", () => {
    const inner = pgError({ code: "23505" })
    expect(driverError(wrapped(inner))).toBe(inner)
    expect(driverError(inner)).toBe(inner)
  })

  it("keeps a DrizzleQueryError without a cause as it is", () => {
    const bare = new DrizzleQueryError("select 1", [], undefined as unknown as Error)
    expect(driverError(bare)).toBe(bare)
  })

  it("turns a thrown non-object into an error with that message", () => {
    expect(driverError("socket hang up")).toEqual({ message: "socket hang up" })
    expect(driverError(undefined)).toEqual({ message: "undefined" })
    expect(driverError(null)).toEqual({ message: "null" })
    expect(driverError(wrapped(42))).toEqual({ message: "42" })
  })
})

describe("storeError", () => {
  it("never carries drizzle's message (it holds the query parameters), only the driver's", () => {
    const inner = pgError({ code: "XX000" }, "internal error")
    const error = storeError("read_stream", wrapped(inner))
    expect(error).toBeInstanceOf(StoreError)
    expect(error.operation).toBe("read_stream")
    expect(error.message).toBe("PostgreSQL failed read_stream (XX000): internal error")
    expect(error.message).not.toContain("secret-parameter")
    expect(error.cause).toBe(inner)
  })

  it("without a code or a message, says so", () => {
    expect(storeError("append", {}).message).toBe("PostgreSQL failed append: unknown error")
    expect(storeError("append", { code: "" }).message).toBe("PostgreSQL failed append: unknown error")
  })

  it.each([
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "ENOTFOUND",
    "EAI_AGAIN",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
    "CONNECT_TIMEOUT",
    "57P01",
    "57P02",
    "57P03",
    "08000",
    "08006"
  ])("%s is a lost connection: during append it says the outcome is all or nothing", (code) => {
    const error = pgError({ code }, "gone")
    expect(storeError("append", error).message).toBe(
      `Lost the connection to PostgreSQL during append (${code}: gone). The append either committed completely or not at all: read the streams again before retrying.`
    )
    expect(storeError("read_stream", error).message).toBe(
      `Cannot reach PostgreSQL during read_stream (${code}: gone): check that the server is up and the connection URL is right; the next operation opens a fresh connection.`
    )
  })

  it("a code merely containing 08, or another 57P code, is not a lost connection", () => {
    expect(storeError("append", pgError({ code: "22008" }, "x")).message).toBe("PostgreSQL failed append (22008): x")
    expect(storeError("append", pgError({ code: "57P04" }, "x")).message).toBe("PostgreSQL failed append (57P04): x")
  })

  it.each([SqlState.undefinedTable, SqlState.undefinedFunction])("%s means the migrations have not run", (code) => {
    expect(storeError("read_stream", pgError({ code }, 'relation "eventcore_events" does not exist')).message).toBe(
      'The eventcore tables are missing (relation "eventcore_events" does not exist): run PostgresEventStore.migrate, or build the layer with autoMigrate: true.'
    )
  })

  it("57014 names the cancelled operation and the statement timeout", () => {
    expect(
      storeError("append", pgError({ code: "57014" }, "canceling statement due to statement timeout")).message
    ).toBe(
      "PostgreSQL cancelled append (canceling statement due to statement timeout): a statement timeout or an administrator cancelled it; retry, or raise statement_timeout."
    )
  })

  it("the append-only guard's message is passed on as a sentence", () => {
    expect(storeError("append", pgError({ code: "EC002" }, "events are append-only")).message).toBe(
      "events are append-only."
    )
  })
})

describe("parseVersionConflict", () => {
  const detail = JSON.stringify({ stream_id: "order-1", expected: "no_stream", actual: 3 })

  it("reads stream, expected and actual from EC001's DETAIL, wrapped by drizzle or not", () => {
    const expected = new VersionConflict({ streamId: "order-1" as never, expected: "no_stream", actual: 3 })
    expect(parseVersionConflict(pgError({ code: "EC001", detail }))).toEqual(expected)
    expect(parseVersionConflict(wrapped(pgError({ code: "EC001", detail })))).toEqual(expected)
  })

  it("is undefined for another code, or for EC001 without a DETAIL", () => {
    expect(parseVersionConflict(pgError({ code: "EC003", detail }))).toBeUndefined()
    expect(parseVersionConflict(pgError({ code: "EC001" }))).toBeUndefined()
    expect(parseVersionConflict("EC001")).toBeUndefined()
  })
})

describe("parseDuplicateEventId", () => {
  const id = "0190A7D2-3C4E-7A1B-8C2D-00000000000F"
  const detail = `Key (event_id)=(${id}) already exists.`

  it("reads the id, lower-cased, from postgres.js's constraint_name and PGlite's constraint", () => {
    const expected = new DuplicateEventId({ eventId: id.toLowerCase() })
    const postgresJs = pgError({ code: "23505", constraint_name: "eventcore_events_event_id_unique", detail })
    const pglite = pgError({ code: "23505", constraint: "eventcore_events_event_id_unique", detail })
    expect(parseDuplicateEventId(postgresJs)).toEqual(expected)
    expect(parseDuplicateEventId(wrapped(pglite))).toEqual(expected)
  })

  it("says unknown when the DETAIL does not name the id", () => {
    const error = pgError({ code: "23505", constraint: "eventcore_events_event_id_unique" })
    expect(parseDuplicateEventId(error)).toEqual(new DuplicateEventId({ eventId: "unknown" }))
    const other = pgError({ code: "23505", constraint: "eventcore_events_event_id_unique", detail: "Key (x)=(1)" })
    expect(parseDuplicateEventId(other)).toEqual(new DuplicateEventId({ eventId: "unknown" }))
  })

  it("is undefined for the stream version index or for another code", () => {
    const version = pgError({ code: "23505", constraint_name: "eventcore_events_stream_version_unique", detail })
    expect(parseDuplicateEventId(version)).toBeUndefined()
    const notUnique = pgError({ code: "23503", constraint: "eventcore_events_event_id_unique", detail })
    expect(parseDuplicateEventId(notUnique)).toBeUndefined()
  })
})

describe("isRacedWrite", () => {
  it.each(["23505", "40001", "40P01"])("%s means another writer got there first", (code) => {
    expect(isRacedWrite(pgError({ code }))).toBe(true)
    expect(isRacedWrite(wrapped(pgError({ code })))).toBe(true)
  })

  it.each(["EC001", "EC002", "23503", "57014", undefined])("%s does not", (code) => {
    expect(isRacedWrite(code === undefined ? new Error("x") : pgError({ code }))).toBe(false)
  })
})
