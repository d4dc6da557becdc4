/**
 * A row projection's batch: every row the batch's events touch loaded in one
 * query, the events folded into them in memory (the application's `evolve`,
 * pure and synchronous), and every change written in one upsert (and one
 * delete), inside the batch's transaction with its checkpoint. Per page of
 * events that is two statements, whatever its length, where a handler per
 * event awaits one or more per event.
 */
import { getTableColumns, type InferSelectModel, type SQL, sql } from "drizzle-orm"
import { getTableConfig, type PgColumn, PgDialect, type PgTable } from "drizzle-orm/pg-core"
import { Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import { StoreError } from "../errors.js"
import { type Decoded, EventFailure } from "./runner.js"
import type { ReadModelDatabase, Statement } from "./storeContract.js"

/** What a row projection declares of its table and its fold (`Projection.rows`). */
export interface RowFold<E, T extends PgTable, K> {
  readonly name: string
  /** The application's table: one row per key, its one-column primary key the key. */
  readonly table: T
  /** The row an event changes, by its key; undefined: none. Pure and synchronous. */
  readonly key: (event: E, recorded: RecordedEvent) => K | undefined
  /** The row after the event, from undefined for a row not there yet; undefined deletes it. Pure and synchronous. */
  readonly evolve: (
    row: InferSelectModel<T> | undefined,
    event: E,
    recorded: RecordedEvent
  ) => InferSelectModel<T> | undefined
}

/** The table's primary key: its one column and that column's property in the table's rows. */
const primaryKeyOf = (name: string, table: PgTable): { readonly property: string; readonly column: PgColumn } => {
  const config = getTableConfig(table)
  const keyColumns = [
    ...config.columns.filter((column) => column.primary),
    ...config.primaryKeys.flatMap((key) => key.columns)
  ]
  const column = keyColumns[0]
  if (keyColumns.length !== 1 || column === undefined) {
    throw new TypeError(
      `Projection.rows ${JSON.stringify(name)}: the table ${JSON.stringify(config.name)} needs a primary key of exactly one column (it has ${keyColumns.length}); for another shape, use Projection.make with handleBatch`
    )
  }
  const property = Object.entries(getTableColumns(table)).find(([, candidate]) => candidate === column)?.[0]
  if (property === undefined) throw new TypeError(`Projection.rows ${JSON.stringify(name)}: no property holds the key`)
  return { property, column: column as PgColumn }
}

/**
 * Where a row projection keeps `writesAtCommit` for the runner: its
 * `handleBatch` stays one that writes, for whoever calls it directly.
 */
export const writesAtCommitKey = Symbol.for("eventcore/Projection/writesAtCommit")

/** Renders statements to their text and parameters, as the sessions run them. */
const dialect = new PgDialect()

/**
 * Keys as Map keys: a primitive as itself (a Map tells 1 from "1", and compares
 * bigints by value), anything else (a date) as its JSON.
 */
const mapKey = (key: unknown) => (typeof key === "object" && key !== null ? JSON.stringify(key) : key)

const readModelFailure = (name: string, cause: unknown) =>
  new StoreError({
    operation: "read_model",
    message: `Projection ${JSON.stringify(name)} could not read or write its table: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/**
 * The batch handler and the reset of a row projection. Throws a `TypeError`
 * (a definition's mistake, found when the module loads) for a table without a
 * one-column primary key.
 */
export const make = <E, T extends PgTable, K>(fold: RowFold<E, T, K>) => {
  const { property, column } = primaryKeyOf(fold.name, fold.table)
  // Generated columns are PostgreSQL's to compute.
  const columns = (Object.entries(getTableColumns(fold.table)) as Array<[string, PgColumn]>).filter(
    ([, candidate]) => candidate.generated === undefined
  )
  const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`
  const names = sql.raw(columns.map(([, candidate]) => identifier(candidate.name)).join(", "))
  const others = columns.filter(([name]) => name !== property)
  const onConflict =
    others.length === 0
      ? sql.raw(`on conflict (${identifier(column.name)}) do nothing`)
      : sql.raw(
          `on conflict (${identifier(column.name)}) do update set ${others
            .map(([, candidate]) => `${identifier(candidate.name)} = excluded.${identifier(candidate.name)}`)
            .join(", ")}`
        )
  const keyType = sql.raw(column.getSQLType())
  // Statements of one text whatever the batch: the keys and the rows go as one JSON parameter each,
  // so each is prepared once (an IN list or a VALUES list would be a new text for every length).
  const keysIn = (keys: ReadonlyArray<K>) =>
    sql`${column} in (select k.value::${keyType} from jsonb_array_elements_text(${JSON.stringify(
      keys.map((key) => (typeof key === "bigint" ? key.toString() : key))
    )}::text::jsonb) as k(value))`
  // A row as JSON in its columns' names, each value as its column sends it to the driver (a date as
  // ISO text...), but for JSON columns, whose value is the JSON itself.
  const fields = columns.map(([property, candidate]) => ({
    property,
    name: candidate.name,
    column: candidate,
    json: candidate.getSQLType() === "json" || candidate.getSQLType() === "jsonb"
  }))
  const asJson = (row: InferSelectModel<T>) => {
    const json: Record<string, unknown> = {}
    for (const field of fields) {
      const value = (row as Record<string, unknown>)[field.property]
      const driverValue =
        value === null || value === undefined || field.json ? value : field.column.mapToDriverValue(value)
      json[field.name] = typeof driverValue === "bigint" ? driverValue.toString() : (driverValue ?? null)
    }
    return json
  }
  const query = <A>(run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => readModelFailure(fold.name, cause) })

  /** A batch's writes: its rows' upsert and delete, as statements (none when it changes nothing). */
  const writesOf = (events: ReadonlyArray<Decoded<E>>, db: ReadModelDatabase | undefined) =>
    Effect.gen(function* () {
      if (db === undefined) {
        return yield* Effect.die(
          new Error(`Projection.rows ${JSON.stringify(fold.name)} needs a SQL store's ReadModel`)
        )
      }
      const keyed = yield* eachOf(events, (decoded, into: Array<Keyed<E, K>>) => {
        const key = fold.key(decoded.event, decoded.recorded)
        if (key !== undefined) into.push({ mapped: mapKey(key), key, event: decoded.event, recorded: decoded.recorded })
      })
      if (keyed.length === 0) return []
      const keys = new Map<unknown, K>()
      for (const { mapped, key } of keyed) keys.set(mapped, key)
      const loaded = yield* query(() =>
        db
          .select()
          .from(fold.table as PgTable)
          .where(keysIn([...keys.values()]))
      )
      const rows = new Map<unknown, InferSelectModel<T> | undefined>()
      for (const row of loaded as Array<InferSelectModel<T>>) {
        rows.set(mapKey((row as Record<string, unknown>)[property]), row)
      }
      const existed = new Set(rows.keys())
      yield* eachOf(keyed, ({ mapped, event, recorded }) => {
        rows.set(mapped, fold.evolve(rows.get(mapped), event, recorded))
      })
      const written: Array<Record<string, unknown>> = []
      const deleted: Array<K> = []
      for (const [mapped, key] of keys) {
        const row = rows.get(mapped)
        if (row !== undefined) written.push(asJson(row))
        else if (existed.has(mapped)) deleted.push(key)
      }
      const writes: Array<SQL> = []
      if (written.length > 0) {
        writes.push(sql`insert into ${fold.table} (${names}) select ${names}
          from json_populate_recordset(null::${fold.table}, ${JSON.stringify(written)}::text::json) ${onConflict}`)
      }
      if (deleted.length > 0) writes.push(sql`delete from ${fold.table} where ${keysIn(deleted)}`)
      return writes
    })

  /** Handles a batch, writing its rows itself (pipelined on PostgreSQL's session). */
  const handleBatch = (events: ReadonlyArray<Decoded<E>>, db: ReadModelDatabase | undefined) =>
    Effect.flatMap(writesOf(events, db), (writes) =>
      Effect.forEach(writes, (write) => query(() => (db as ReadModelDatabase).execute(write)), {
        concurrency: "unbounded",
        discard: true
      })
    )

  /**
   * Handles a batch, leaving its writes for the runner's commit: they go with
   * the checkpoint's compare-and-set and the commit, one round trip per batch
   * less on PostgreSQL.
   */
  const writesAtCommit = (
    events: ReadonlyArray<Decoded<E>>,
    db: ReadModelDatabase | undefined
  ): Effect.Effect<ReadonlyArray<Statement>, StoreError | EventFailure> =>
    Effect.map(writesOf(events, db), (writes) =>
      writes.map((write): Statement => {
        const rendered = dialect.sqlToQuery(write)
        return [rendered.sql, rendered.params]
      })
    )

  const reset = (db: ReadModelDatabase) => query(() => db.delete(fold.table))

  return { handleBatch, writesAtCommit, reset }
}

/** An event with the key of the row it changes, as the application gives it and as a Map key. */
interface Keyed<E, K> extends Decoded<E> {
  readonly mapped: unknown
  readonly key: K
}

/**
 * Runs the application's pure function on each event in turn, in one plain
 * loop (no Effect per event on this path), collecting into an array; a throw
 * is an `EventFailure` of the event it was given.
 */
const eachOf = <D extends Decoded<unknown>, A>(
  events: ReadonlyArray<D>,
  f: (decoded: D, into: Array<A>) => void
): Effect.Effect<Array<A>, EventFailure> =>
  Effect.suspend(() => {
    const into: Array<A> = []
    for (const decoded of events) {
      try {
        f(decoded, into)
      } catch (cause) {
        return Effect.fail(new EventFailure(decoded.recorded, cause))
      }
    }
    return Effect.succeed(into)
  })
