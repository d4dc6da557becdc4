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
import * as LogPosition from "../LogPosition.js"
import { storeError } from "../sql/errors.js"
import type { SchemaState } from "../sql/migrations.js"
import { type Database, rowsOf, statementsIn } from "../sql/SqlEventStore.js"

/** The transaction holding the log back, as the `holdup` statement of the stores finds it. */
export interface Holder {
  /** The backend running it; absent for a prepared transaction. */
  readonly pid?: number
  readonly database?: string
  /** `idle in transaction`, `active`, ...: visible only to roles allowed to see other sessions. */
  readonly state?: string
  readonly openForSeconds?: number
  readonly application?: string
}

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
  readonly heldBy: Holder | undefined
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

const optional = <K extends string, A>(key: K, value: A | null | undefined) =>
  (value === null || value === undefined || value === "" ? {} : { [key]: value }) as { readonly [P in K]?: A }

export const logStatus = (
  db: Database,
  schema: string,
  migrations: Extract<SchemaState, { readonly _tag: "Present" }>
): Effect.Effect<LogStatus, StoreError> =>
  Effect.tryPromise({
    try: async (): Promise<LogStatus> => {
      const events = sql`${sql.identifier(schema)}.events`
      // Every number as text: postgres.js and PGlite give int8 and xid8 differently.
      const [row] = rowsOf(
        await db.execute(sql`with horizon as materialized (select pg_snapshot_xmin(pg_current_snapshot()) as xmin)
select h.xmin::text as horizon,
       head.transaction_id::text as head_transaction, head.global_position::text as head_position,
       readable.transaction_id::text as readable_transaction, readable.global_position::text as readable_position,
       (select count(*) from ${events} w where w.transaction_id >= h.xmin)::text as held_back,
       (select count(*) from ${sql.identifier(schema)}.migrations)::text as applied
from horizon h
left join lateral (
  select e.transaction_id, e.global_position from ${events} e
  order by e.transaction_id desc, e.global_position desc limit 1
) head on true
left join lateral (
  select e.transaction_id, e.global_position from ${events} e where e.transaction_id < h.xmin
  order by e.transaction_id desc, e.global_position desc limit 1
) readable on true`)
      )
      if (row === undefined) throw new Error("the status query returned no row")
      const heldBack = Number(row.held_back)
      const [holder] = heldBack === 0 ? [] : rowsOf(await db.execute(sql.raw(statementsIn(schema).holdup)))
      return {
        head: positionOf(row.head_transaction, row.head_position),
        readable: positionOf(row.readable_transaction, row.readable_position),
        horizon: BigInt(String(row.horizon)),
        heldBack,
        heldBy:
          holder === undefined
            ? undefined
            : {
                ...optional("pid", holder.pid === null ? null : Number(holder.pid)),
                ...optional("database", holder.database as string | null),
                ...optional("state", holder.state as string | null),
                ...optional(
                  "openForSeconds",
                  holder.age_seconds === null ? null : Math.round(Number(holder.age_seconds))
                ),
                ...optional("application", holder.application_name as string | null)
              },
        migrations: { applied: Number(row.applied), pending: migrations.pending, unknown: migrations.unknown }
      }
    },
    catch: (error) => storeError("status", error)
  })

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

/** Who holds the log back, in words: `pid 4242 in database app, idle in transaction, open for 42 s (psql)`. */
const describeHolder = (holder: Holder) =>
  [
    [
      holder.pid === undefined ? "a prepared transaction" : `pid ${holder.pid}`,
      holder.database === undefined ? "" : ` in database ${holder.database}`
    ].join(""),
    holder.state ?? "state not visible to this role",
    ...(holder.openForSeconds === undefined ? [] : [`open for ${holder.openForSeconds} s`])
  ].join(", ") + (holder.application === undefined ? "" : ` (${holder.application})`)

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
    heldBy: status.heldBy ?? null
  })
