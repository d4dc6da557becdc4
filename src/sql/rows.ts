/**
 * Rows as the drivers return them, read into eventcore's values. The drivers
 * disagree on types: postgres.js gives int8 as text, PGlite as bigint;
 * timestamptz comes as text under drizzle's parsers, or as a Date.
 */
import type { RecordedEvent } from "../Event.js"
import type { BlockingTransaction } from "../internal/storeContract.js"
import type * as LogPosition from "../LogPosition.js"
import type { StreamId } from "../StreamId.js"

/** Rows of a drizzle `execute`: postgres.js returns an array, PGlite `{ rows }`. */
export const rowsOf = (result: unknown): ReadonlyArray<Record<string, unknown>> =>
  Array.isArray(result) ? result : (result as { rows: ReadonlyArray<Record<string, unknown>> }).rows

export const toBigInt = (value: unknown): bigint => BigInt(value as string | bigint)

export const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(value as string))

/**
 * `LogPosition.make` from the decimal digits of a transaction and a position
 * as the database returns them (an `xid8` and a `bigint`, in range by their
 * types), in its form of 20 digits, '-', 19 digits. A page of the log builds
 * one per event, and parsing both into BigInts to print them again was a
 * third of the CPU of building its events (docs/decisions/node-side-hot-path.md).
 */
export const positionOf = (transaction: string, position: string): LogPosition.LogPosition =>
  `${transaction.padStart(20, "0")}-${position.padStart(19, "0")}` as LogPosition.LogPosition

/** How many columns `logColumns` (statements.ts) selects: what a row of the log holds after them starts here. */
export const eventColumnCount = 10

/**
 * The event in the columns of `logColumns` (statements.ts), from column
 * `from` of a row on.
 */
export const eventAt = (row: ReadonlyArray<unknown>, from = 0): RecordedEvent => {
  const position = row[from + 1] as string | bigint
  return {
    eventId: row[from + 2] as string,
    streamId: row[from + 3] as StreamId,
    streamVersion: row[from + 4] as number,
    globalPosition: BigInt(position),
    position: positionOf(row[from] as string, String(position)),
    eventType: row[from + 5] as string,
    schemaVersion: row[from + 9] as number,
    data: row[from + 6],
    metadata: row[from + 7] as Record<string, unknown>,
    recordedAt: toDate(row[from + 8])
  }
}

/**
 * A stream's events in version order: as they came when they already are
 * (checked in one pass, the usual case), else sorted.
 */
export const inVersionOrder = (events: Array<RecordedEvent>): Array<RecordedEvent> => {
  for (let i = 1; i < events.length; i++) {
    if ((events[i - 1] as RecordedEvent).streamVersion > (events[i] as RecordedEvent).streamVersion) {
      return events.sort((a, b) => a.streamVersion - b.streamVersion)
    }
  }
  return events
}

/** A row of the `blockingTransaction` statement: pid, database, state, age in seconds, application name. */
export const blockingTransactionOf = (row: ReadonlyArray<unknown>): BlockingTransaction => {
  const [pid, database, state, ageSeconds, applicationName] = row
  return {
    ...(pid === null ? {} : { pid: Number(pid) }),
    ...(database === null ? {} : { database: database as string }),
    ...(state === null ? {} : { state: state as string }),
    ...(ageSeconds === null ? {} : { ageSeconds: Number(ageSeconds) }),
    ...(applicationName === null || applicationName === "" ? {} : { applicationName: applicationName as string })
  }
}
