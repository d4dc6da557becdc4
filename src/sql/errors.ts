/**
 * Database errors become eventcore's typed errors here, at the edge of the SQL
 * stores, and nowhere else. Messages never include query parameters (drizzle's
 * own error message does, so only the driver error underneath is kept).
 */
import { DrizzleQueryError } from "drizzle-orm"
import type { ExpectedVersion } from "../ExpectedVersion.js"
import { DuplicateEventId, StoreError, SubjectErased, VersionConflict } from "../errors.js"
import type { StreamId } from "../StreamId.js"

/** What the PostgreSQL drivers report: postgres.js and PGlite agree on `code`, `detail` and `message`. */
interface DriverError {
  readonly code?: string
  readonly detail?: string
  readonly message?: string
  /** postgres.js */
  readonly constraint_name?: string
  /** PGlite */
  readonly constraint?: string
}

/** SQLSTATEs the store raises or meets: its own (EC...) are raised by `append` and `refuse_change` (docs/schema.sql). */
export const SqlState = {
  versionConflict: "EC001",
  appendOnly: "EC002",
  subjectErased: "EC004",
  uniqueViolation: "23505",
  serializationFailure: "40001",
  deadlock: "40P01",
  undefinedTable: "42P01",
  undefinedFunction: "42883",
  queryCanceled: "57014",
  /** Raised on purpose by a projection's checkpoint moving from where its batch did not start (checkpointStatements.advance). */
  divisionByZero: "22012"
} as const

/** The driver's error under drizzle's wrapper (whose message lists the query parameters). */
export const driverError = (error: unknown): DriverError & { readonly cause?: unknown } => {
  const inner = error instanceof DrizzleQueryError && error.cause !== undefined ? error.cause : error
  return typeof inner === "object" && inner !== null ? (inner as DriverError) : { message: String(inner) }
}

const connectionCodes = new Set([
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
  "57P01", // admin_shutdown: the backend was terminated
  "57P02", // crash_shutdown
  "57P03" // cannot_connect_now: the server is starting or stopping
])

const isConnectionFailure = (code: string | undefined) =>
  code !== undefined && (connectionCodes.has(code) || code.startsWith("08"))

/** The connection was lost (or could not be made): the next operation opens a fresh one. */
export const isConnectionLost = (error: unknown): boolean => isConnectionFailure(driverError(error).code)

/** A `StoreError` whose message says what happened and what to do about it. */
export const storeError = (operation: string, error: unknown): StoreError => {
  const cause = driverError(error)
  const code = cause.code
  const said = cause.message ?? "unknown error"
  const message = (() => {
    if (isConnectionFailure(code)) {
      return operation === "append"
        ? `Lost the connection to PostgreSQL during append (${code}: ${said}). The append either committed completely or not at all: read the streams again before retrying.`
        : `Cannot reach PostgreSQL during ${operation} (${code}: ${said}): check that the server is up and the connection URL is right; the next operation opens a fresh connection.`
    }
    if (code === SqlState.undefinedTable || code === SqlState.undefinedFunction) {
      return `The eventcore tables are missing (${said}): run PostgresEventStore.migrate, or build the layer with autoMigrate: true.`
    }
    if (code === SqlState.queryCanceled) {
      return `PostgreSQL cancelled ${operation} (${said}): a statement timeout or an administrator cancelled it; retry, or raise statement_timeout.`
    }
    if (code === SqlState.appendOnly) return `${said}.`
    return `PostgreSQL failed ${operation}${code ? ` (${code})` : ""}: ${said}`
  })()
  return new StoreError({ operation, message, cause })
}

/** The facts of a version conflict as the append function reports them, in an error's DETAIL or in its reply. */
export interface ConflictFacts {
  readonly stream_id: string
  readonly expected: ExpectedVersion
  readonly actual: number
}

export const versionConflictOf = (facts: ConflictFacts): VersionConflict =>
  new VersionConflict({ streamId: facts.stream_id as StreamId, expected: facts.expected, actual: facts.actual })

/** A version conflict the append function raised, with the facts from its DETAIL. */
export const parseVersionConflict = (error: unknown): VersionConflict | undefined => {
  const cause = driverError(error)
  if (cause.code !== SqlState.versionConflict || cause.detail === undefined) return undefined
  return versionConflictOf(JSON.parse(cause.detail) as ConflictFacts)
}

/** A duplicate event id: the unique index on `event_id` refused the insert. */
export const parseDuplicateEventId = (error: unknown): DuplicateEventId | undefined => {
  const cause = driverError(error)
  const constraint = cause.constraint_name ?? cause.constraint
  if (cause.code !== SqlState.uniqueViolation || constraint !== "eventcore_events_event_id_unique") return undefined
  const eventId = /\(event_id\)=\(([0-9a-fA-F-]+)\)/.exec(cause.detail ?? "")?.[1] ?? "unknown"
  return new DuplicateEventId({ eventId: eventId.toLowerCase() })
}

/** A key refused for a subject already erased (`refuse_key_of_erased_subject`), with the subject from its DETAIL. */
export const parseSubjectErased = (error: unknown): SubjectErased | undefined => {
  const cause = driverError(error)
  if (cause.code !== SqlState.subjectErased || cause.detail === undefined) return undefined
  return new SubjectErased({ subject: (JSON.parse(cause.detail) as { subject: string }).subject })
}

/**
 * A hot standby cancelled the statement because replaying the primary's WAL
 * needed what it was reading ("canceling statement due to conflict with
 * recovery": 40001, or 40P01 for a buffer pin it waited on).
 */
export const isRecoveryConflict = (error: unknown): boolean => {
  const cause = driverError(error)
  return (
    (cause.code === SqlState.serializationFailure || cause.code === SqlState.deadlock) &&
    (cause.message ?? "").includes("conflict with recovery")
  )
}

/**
 * Errors that mean another writer got there first without our function seeing
 * it (a raw insert racing ours, or a serialization failure under a stricter
 * isolation level): the caller re-reads versions to report the conflict.
 */
export const isRacedWrite = (error: unknown): boolean => {
  const code = driverError(error).code
  return code === SqlState.uniqueViolation || code === SqlState.serializationFailure || code === SqlState.deadlock
}
