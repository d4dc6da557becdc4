/**
 * What a command that failed at run time prints: one line on stderr,
 * `eventcore <command>: <what failed>`, in the command line's own words. It
 * says what failed and what the user of the command can check or do; never a
 * stack trace, nor the advice eventcore's errors give the library's users
 * (`build the layer with autoMigrate`, `the next operation opens a fresh
 * connection`).
 */
import { Cause, Data } from "effect"
import { StoreError, StreamNotFound } from "../errors.js"
import { driverError, isConnectionLost, SqlState, storeError } from "../sql/errors.js"

/** SQLSTATE 42501: the role lacks a privilege the statement needs. */
export const insufficientPrivilege = "42501"

/** A failure the command line words itself: the database cannot be read as a store, the demo's check failed. */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{ readonly message: string }> {}

/** SQLSTATEs of a server that refuses the connection: no such database, no such role, a wrong password. */
const refusedConnection = new Set(["3D000", "28000", "28P01"])

/**
 * A database error as `storeError` words it for the library, worded again
 * for the command line; a message written for the occasion (the lock's, the
 * migrations') is kept.
 */
const describeStoreError = (error: StoreError): string => {
  if (error.cause === undefined || error.message !== storeError(error.operation, error.cause).message) {
    return asClause(error.message)
  }
  const { code, message = "unknown error" } = driverError(error.cause)
  if (isConnectionLost(error.cause)) {
    return `cannot reach PostgreSQL (${code}: ${message}): check the URL and that the server is running`
  }
  if (code !== undefined && refusedConnection.has(code)) {
    return `PostgreSQL refused the connection (${code}: ${message}): check the database, user and password in the URL`
  }
  if (code === SqlState.undefinedTable || code === SqlState.undefinedFunction) {
    return `eventcore's tables are missing (${message}): create them with \`eventcore migrate\``
  }
  if (code === SqlState.queryCanceled) {
    return `PostgreSQL cancelled the query (${message}): a statement timeout or an administrator cancelled it`
  }
  return code === undefined ? message : `${message} (SQLSTATE ${code})`
}

/**
 * A message of eventcore's as a clause after `eventcore <command>: `, as the
 * command line's own are: its first word in lower case unless it is a name
 * (`The` and `Cannot` become `the` and `cannot`; `PostgreSQL` and `PGlite`
 * stay), without a final period.
 */
export const asClause = (message: string) =>
  (/^[A-Z][a-z]+\b/.test(message) ? `${message.charAt(0).toLowerCase()}${message.slice(1)}` : message).replace(
    /\.$/,
    ""
  )

/** The failure in the command line's words. */
export const describeFailure = (error: unknown): string => {
  if (error instanceof CommandFailed) return error.message
  if (error instanceof StreamNotFound) return `stream ${JSON.stringify(error.streamId)} not found`
  if (error instanceof StoreError) return describeStoreError(error)
  return asClause(error instanceof Error ? error.message : String(error))
}

/** The line a failed command prints on stderr: the first line of what failed, never a stack trace. */
export const failureLine = (command: string, cause: Cause.Cause<unknown>): string =>
  `eventcore ${command}: ${describeFailure(Cause.squash(cause)).split("\n")[0]}\n`
