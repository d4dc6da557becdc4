/**
 * Given / then for an application's projections: given events in the log,
 * the projection runs (`Projection.run`, as in production) until it handled
 * them, then its read model's rows are what the spec says, and a rebuild (the
 * same events replayed from the start) gives the same rows.
 *
 * ```ts
 * const layer = TestStore.pglite({ setup: (db) => db.execute(createBalances) })
 *
 * it.effect("a balance per account", () =>
 *   ProjectionSpec.make(Balances, { layer })
 *     .given({ "account-alice": [AccountOpened.make({ owner: "Alice" }), MoneyDeposited.make({ amount: 50_00 })] })
 *     .thenRows(balances, [{ account: "alice", cents: 50_00 }]))
 * ```
 */
import { getTableColumns } from "drizzle-orm"
import { getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core"
import { drizzle } from "drizzle-orm/pglite"
import { type Duration, Effect, type Layer, Option } from "effect"
import * as fc from "fast-check"
import { expect } from "vitest"
import type * as EventStore from "../EventStore.js"
import * as InMemoryEventStore from "../InMemoryEventStore.js"
import type { ReadModelDatabase } from "../internal/storeContract.js"
import * as PgliteEventStore from "../PgliteEventStore.js"
import * as Projection from "../Projection.js"
import type { ReadModel, ReadModelStore } from "../ReadModel.js"
import { handledUpTo, runOptions } from "./follow.js"
import {
  atCallSite,
  callSite,
  describeError,
  type EventsSchema,
  type Given,
  headOf,
  onLiveClock,
  type StoredEvent,
  type Streams,
  storeGiven
} from "./given.js"
import { Database } from "./TestStore.js"

export interface Options<Store> {
  /**
   * The store, built afresh for each run of the spec. A projection that
   * writes through `ReadModel` needs a SQL store: `TestStore.pglite()` or
   * `TestStore.postgres(url)`, with the application's tables. Others run in
   * memory by default.
   */
  readonly layer?: Layer.Layer<EventStore.EventStore | Store, unknown>
  /** How long to wait for the projection to handle the given events (default 10 seconds). */
  readonly timeout?: Duration.DurationInput
  /**
   * How the projection runs (`Projection.run`'s options). By default a failing event is
   * tried twice more at once, not five times over 3 seconds as in production:
   * the spec reports a failing handler at once.
   */
  readonly run?: Projection.RunOptions
}

export interface ProjectionSpec<E, R> {
  /** Events on named streams, encoded as `execute` encodes them, appended in one append per call, in order. */
  readonly given: (streams: Streams<E>) => ProjectionSpec<E, R>
  /** Events as the store keeps them (type, schema version, JSON), as an older release wrote them. */
  readonly givenStored: (streams: Streams<StoredEvent>) => ProjectionSpec<E, R>
  /**
   * Runs the projection until it handled the given events, then compares the
   * rows of `table` (in any order) with `rows`; rebuilds it, waits again, and
   * requires the same rows: a projection must make its rows of the events alone.
   */
  readonly thenRows: <T extends PgTable>(
    table: T,
    rows: ReadonlyArray<T["$inferSelect"]>
  ) => Effect.Effect<void, never, R>
  /**
   * Runs the projection until it handled the given events, then `check`
   * (with the spec's `EventStore`), then rebuilds it, waits again and runs
   * `check` again. Returns what the second check returned.
   */
  readonly thenExpect: <A, X, R2>(
    check: Effect.Effect<A, X, R2>
  ) => Effect.Effect<A, never, R | Exclude<R2, EventStore.EventStore | Database>>
}

type Needs<R> = [Extract<R, ReadModel>] extends [never]
  ? [options?: Options<never>]
  : [options: Options<ReadModelStore>]

/** A spec of `projection`, on a store of its own for each run. */
export const make = <E extends { readonly _tag: string }, I, Err, R>(
  projection: Projection.Projection<E, I, Err, R>,
  ...[options = {}]: Needs<R>
): ProjectionSpec<E, Exclude<R, ReadModel | EventStore.EventStore>> => {
  const layer = (options.layer ?? InMemoryEventStore.layer) as Layer.Layer<EventStore.EventStore, unknown>
  const timeout = options.timeout ?? "10 seconds"
  const label = `the projection ${projection.name}`

  /** Runs the projection over the given events, `check` once it handled them, and again after a rebuild. */
  const settled = <A, X, R2>(givens: ReadonlyArray<Given>, check: (replayed: boolean) => Effect.Effect<A, X, R2>) =>
    onLiveClock(
      Effect.scoped(
        Effect.gen(function* () {
          const runner = yield* Effect.forkScoped(
            Projection.run(projection, runOptions(options.run)) as Effect.Effect<never, unknown, Exclude<R, ReadModel>>
          )
          const head = headOf(yield* storeGiven(label, givens))
          yield* handledUpTo(projection, head, runner, timeout)
          yield* check(false)
          yield* Projection.rebuild(projection).pipe(
            Effect.orDieWith((error) => new Error(`${label} could not be rebuilt: ${describeError(error)}`))
          ) as Effect.Effect<void, never, Exclude<R, ReadModel>>
          yield* handledUpTo(projection, head, runner, timeout)
          return yield* check(true)
        })
      ).pipe(
        Effect.provide(layer),
        Effect.orDieWith((error) => new Error(`${label}: ${describeError(error)}`))
      )
    ) as Effect.Effect<
      A,
      never,
      Exclude<R, ReadModel | EventStore.EventStore> | Exclude<R2, EventStore.EventStore | Database>
    >

  const spec = (givens: ReadonlyArray<Given>): ProjectionSpec<E, Exclude<R, ReadModel | EventStore.EventStore>> => ({
    given: (streams) =>
      spec([...givens, { _tag: "Events", schema: projection.event as unknown as EventsSchema, streams }]),
    givenStored: (streams) => spec([...givens, { _tag: "Stored", streams }]),
    thenRows: (table, rows) => {
      const site = callSite()
      return Effect.suspend(() => {
        // The rows of this run before the rebuild, for the rows after it.
        let first: ReadonlyArray<unknown> = []
        return settled(givens, (replayed) =>
          Effect.flatMap(rowsOf(table), (actual) =>
            Effect.sync(() =>
              atCallSite(site, () => {
                if (replayed) {
                  expect(
                    actual,
                    `${label} made other rows of the same events when it replayed them (a rebuild): its rows must follow from the events alone`
                  ).toEqual(first)
                } else {
                  first = actual
                  expect(actual, `${label} made other rows of the given events than expected`).toEqual(
                    sortedByKey(table, rows)
                  )
                }
              })
            )
          )
        )
      })
    },
    thenExpect: (check) =>
      settled(givens, () => check as Effect.Effect<unknown, unknown, unknown>) as Effect.Effect<never, never, never>
  })
  return spec([])
}

/** The spec store's database: `TestStore`'s, or a PGlite store's own client. */
const databaseOf: Effect.Effect<ReadModelDatabase> = Effect.gen(function* () {
  const database = yield* Effect.serviceOption(Database)
  if (Option.isSome(database)) return database.value.db
  const client = yield* Effect.serviceOption(PgliteEventStore.Client)
  if (Option.isSome(client)) return drizzle({ client: client.value })
  return yield* Effect.die(
    new Error(
      "thenRows reads the application's table through the store's database: run the spec on TestStore.pglite(), TestStore.postgres(url) or PgliteEventStore.layer()"
    )
  )
})

/** Every row of `table`, ordered by its primary key. */
const rowsOf = (table: PgTable) =>
  Effect.flatMap(databaseOf, (db) =>
    Effect.map(
      Effect.tryPromise({
        try: () => db.select().from(table),
        catch: (cause) => cause
      }).pipe(
        Effect.orDieWith(
          (cause) => new Error(`cannot read the rows of ${getTableConfig(table).name}: ${describeError(cause)}`)
        )
      ),
      (rows) => sortedByKey(table, rows)
    )
  )

/** Rows in the order of their primary key's values (of all their values, for a table without one). */
const sortedByKey = <Row>(table: PgTable, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  const config = getTableConfig(table)
  const keyColumns = new Set<PgColumn>([
    ...config.columns.filter((column) => column.primary),
    ...config.primaryKeys.flatMap((key) => key.columns)
  ])
  const keyProperties = Object.entries(getTableColumns(table))
    .filter(([, column]) => keyColumns.has(column as PgColumn))
    .map(([property]) => property)
  const keyOf = (row: Row) =>
    fc.stringify(
      keyProperties.length === 0 ? row : keyProperties.map((property) => (row as Record<string, unknown>)[property])
    )
  return [...rows].sort((a, b) => {
    const [ka, kb] = [keyOf(a), keyOf(b)]
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
}
