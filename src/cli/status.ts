/**
 * What `eventcore status` reports about the global log: its head, how far
 * readers can read now, how many committed events they cannot read yet, and
 * which transaction holds those back. Read-only queries over a connection the
 * command line opened; the figures of the log come from one statement, so
 * from one snapshot, and agree with each other.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import type { StoreError } from "../errors.js"
import { blockingFacts } from "../internal/follow.js"
import type { BlockingTransaction } from "../internal/storeContract.js"
import * as LogPosition from "../LogPosition.js"
import type { Database } from "../sql/driver.js"
import { storeError } from "../sql/errors.js"
import type { SchemaState } from "../sql/migrations.js"
import { blockingTransactionOf, rowsOf } from "../sql/rows.js"
import { logStatusStatement, storeStatements } from "../sql/statements.js"

export interface LogStatus {
  /** The position of the last committed event, readable or not; undefined when the log is empty. */
  readonly head: LogPosition.LogPosition | undefined
  /** The position of the last event readers can read now. */
  readonly readable: LogPosition.LogPosition | undefined
  /**
   * The readable horizon: the oldest transaction still running on the server,
   * or the next to start if none is. Readers read the events of the
   * transactions below it.
   */
  readonly horizon: bigint
  /** Committed events at or above the horizon: readable once the transactions before them end. */
  readonly heldBack: number
  /** What holds them back, when some are (and it is still running when looked for). */
  readonly heldBy: BlockingTransaction | undefined
  readonly migrations: {
    /** Rows of the schema's migration history. */
    readonly applied: number
    readonly pending: ReadonlyArray<string>
    /** Applied migrations this command line does not know (the schema is newer). */
    readonly unknown: number
  }
}

const positionOf = (transaction: unknown, position: unknown) =>
  transaction === null || transaction === undefined
    ? undefined
    : LogPosition.make(BigInt(String(transaction)), BigInt(String(position)))

export const logStatus = (
  db: Database,
  schema: string,
  migrations: Extract<SchemaState, { readonly _tag: "Present" }>
): Effect.Effect<LogStatus, StoreError> =>
  Effect.tryPromise({
    try: async (): Promise<LogStatus> => {
      const [row] = rowsOf(await db.execute(sql.raw(logStatusStatement(schema))))
      if (row === undefined) throw new Error("the status query returned no row")
      const heldBack = Number(row.held_back)
      // Rows as arrays of values in the statement's order, as the stores read them.
      const [holder] =
        heldBack === 0
          ? []
          : rowsOf(await db.execute(sql.raw(storeStatements(schema).blockingTransaction))).map((found) =>
              blockingTransactionOf(Object.values(found))
            )
      return {
        head: positionOf(row.head_transaction, row.head_position),
        readable: positionOf(row.readable_transaction, row.readable_position),
        horizon: BigInt(String(row.horizon)),
        heldBack,
        heldBy: holder,
        migrations: { applied: Number(row.applied), pending: migrations.pending, unknown: migrations.unknown }
      }
    },
    catch: (error) => storeError("status", error)
  })

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

/** Who holds the log back, in words: `pid 4242 in database app, idle in transaction, open for 42 s (psql)`. */
const describeHolder = (holder: BlockingTransaction) =>
  [
    [
      holder.pid === undefined ? "a prepared transaction" : `pid ${holder.pid}`,
      holder.database === undefined ? "" : ` in database ${holder.database}`
    ].join(""),
    holder.state ?? "state not visible to this role",
    ...(holder.ageSeconds === undefined ? [] : [`open for ${Math.round(holder.ageSeconds)} s`])
  ].join(", ") + (holder.applicationName === undefined ? "" : ` (${holder.applicationName})`)

/** The status for people, one fact a line. */
export const formatStatus = (where: string, schema: string, status: LogStatus): ReadonlyArray<string> => {
  const { migrations } = status
  const row = (label: string, value: string) => `${label.padEnd(13)}${value}`
  return [
    row("database", where),
    row(
      "schema",
      [
        `${schema}: ${plural(migrations.applied, "migration")} applied`,
        migrations.pending.length === 0
          ? ", none pending"
          : `, pending ${migrations.pending.join(", ")} (apply them with \`eventcore migrate\`)`,
        migrations.unknown === 0
          ? ""
          : `; ${migrations.unknown} unknown to this command line (the schema is of a newer release)`
      ].join("")
    ),
    row("log head", status.head === undefined ? "none: the log is empty" : `${status.head} (the last committed event)`),
    row(
      "readable",
      status.readable === undefined ? "none yet" : `${status.readable} (the last event readers can read now)`
    ),
    row("horizon", `transaction ${status.horizon}: readers read the events of the transactions below it`),
    row(
      "held back",
      status.heldBack === 0
        ? "none: every committed event is readable"
        : `${plural(status.heldBack, "committed event")}, readable once the transaction holding them ends`
    ),
    ...(status.heldBack === 0
      ? []
      : [
          row(
            "held by",
            status.heldBy === undefined
              ? "a transaction that has ended since (look again)"
              : describeHolder(status.heldBy)
          )
        ])
  ]
}

/** The status as one JSON object: positions and the horizon as strings. */
export const statusJson = (where: string, schema: string, status: LogStatus) =>
  JSON.stringify({
    database: where,
    schema,
    migrations: status.migrations,
    head: status.head ?? null,
    readable: status.readable ?? null,
    horizon: status.horizon.toString(),
    heldBack: status.heldBack,
    heldBy: status.heldBy === undefined ? null : blockingFacts(status.heldBy)
  })
