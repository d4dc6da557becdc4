import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { PGlite } from "@electric-sql/pglite"
import { asc, sql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/pglite"
import { Context, Effect, Either, Layer, Schema } from "effect"
import { EventStore, PgliteEventStore, Projection, type RecordedEvent, StreamId, StreamWrites } from "eventcore"
import { runEventStoreContract, testEvents, writesOf } from "eventcore/testing"
import { afterAll, describe, expect, it } from "vitest"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import { storeStatements } from "../src/sql/statements.js"
import { cartLines } from "./fixtures/shop/schema.js"
import { defineEnforcementTests } from "./sql/enforcement.js"
import { defineUpgradeTests } from "./sql/upgrade.js"
import { initialisedDataDir, initialisedDump } from "./support/initialisedPglite.js"
import { shippedMigrations } from "./support/migrations.js"
import { usePgliteTemplate } from "./support/pglite.js"
import { makeRecordingTracer } from "./support/recording.js"
import { defineStoredTypesTests } from "./support/storedTypes.js"

const pglite = usePgliteTemplate()

/** A new in-memory database: the dump of the cluster PGlite's initdb leaves (1 s, where initdb takes 3-6). */
const newDatabase = async () => PGlite.create({ loadDataDir: await initialisedDump() })

runEventStoreContract("PgliteEventStore", () => pglite.layer, {
  propertyRuns: Number(process.env.EVENTCORE_PROPERTY_RUNS ?? 25)
})

describe("PgliteEventStore: upgrading a database of an earlier release", () => {
  defineUpgradeTests(async (migrateAsBefore, body) => {
    const db = await newDatabase()
    try {
      const sql = {
        query: async (text: string, params?: ReadonlyArray<unknown>) =>
          (await db.query(text, params as Array<unknown>)).rows as never
      }
      await migrateAsBefore(sql)
      await body(sql, PgliteEventStore.layerFromClient(db))
    } finally {
      await db.close()
    }
  })
})

describe("PgliteEventStore: the event types it holds", () => {
  defineStoredTypesTests(() => pglite.layer)
})

describe("PgliteEventStore: the database enforces", () => {
  defineEnforcementTests((body) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(pglite.freshSchema, ({ db, schema }) =>
          Effect.promise(() =>
            body({
              query: async (text, params) => (await db.query(text, params as Array<unknown>)).rows as never,
              schema
            })
          )
        )
      )
    )
  )
})

describe("PgliteEventStore.layer", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "eventcore-pglite-"))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it("persists in dataDir: a reopened database keeps its events and applies no migration twice", async () => {
    await initialisedDataDir(dataDir)
    const stream = StreamId.unsafeMake("persisted")
    const write = Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(3) }))
    })
    await Effect.runPromise(Effect.provide(write, PgliteEventStore.layer({ dataDir })))

    const reopened = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          return yield* store.readStream(stream)
        }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
      )
    )
    expect(reopened.version).toBe(3)
    expect(reopened.events.map((e) => e.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }])

    const { PGlite } = await import("@electric-sql/pglite")
    const db = await PGlite.create({ dataDir })
    try {
      const report = await Effect.runPromise(PgliteEventStore.migrate(db))
      expect(report.applied).toEqual([])
      const history = await db.query<{ n: number }>("select count(*)::int as n from eventcore.migrations")
      expect(history.rows[0]?.n).toBe(shippedMigrations.length)
    } finally {
      await db.close()
    }
  })

  it("migrates a new database itself and reports what it applied", async () => {
    const db = await newDatabase()
    try {
      const report = await Effect.runPromise(PgliteEventStore.migrate(db))
      expect(report.applied).toEqual(shippedMigrations)
      const again = await Effect.runPromise(
        Effect.either(
          Effect.gen(function* () {
            const store = yield* EventStore.EventStore
            return yield* store.readStream(StreamId.unsafeMake("nothing"))
          }).pipe(Effect.provide(PgliteEventStore.layerFromClient(db)))
        )
      )
      expect(Either.isLeft(again) && again.left._tag).toBe("StreamNotFound")
    } finally {
      await db.close()
    }
  })
})

describe("PgliteEventStore.layer: the application's own tables", () => {
  /** drizzle-kit's output for ./fixtures/shop/schema.ts: cart_lines, then its unit_cents column. */
  const shopMigrations = fileURLToPath(new URL("./fixtures/shop/drizzle", import.meta.url))
  const scratch = mkdtempSync(join(tmpdir(), "eventcore-app-tables-"))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  /** The folder as an earlier release of the application shipped it: its first migration only. */
  const firstReleaseOf = (folder: string) => {
    const journal = JSON.parse(readFileSync(join(folder, "meta", "_journal.json"), "utf8"))
    const first = journal.entries[0]
    const earlier = join(scratch, "first-release")
    mkdirSync(join(earlier, "meta"), { recursive: true })
    copyFileSync(join(folder, `${first.tag}.sql`), join(earlier, `${first.tag}.sql`))
    writeFileSync(join(earlier, "meta", "_journal.json"), JSON.stringify({ ...journal, entries: [first] }))
    return earlier
  }

  /** Runs `body` with the database of a layer built from `options`. */
  const withDatabase = <A>(options: PgliteEventStore.PgliteOptions, body: (client: PGlite) => Promise<A>) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(Layer.build(PgliteEventStore.layer(options)), (context) =>
          Effect.promise(() => body(Context.get(context, PgliteEventStore.Client)))
        )
      )
    )

  const appliedOf = async (client: PGlite) => {
    const count = async (table: string) =>
      (await client.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0]?.n
    const columns = await client.query<{ name: string }>(
      "select column_name as name from information_schema.columns where table_schema = 'public' and table_name = 'cart_lines' order by ordinal_position"
    )
    return {
      application: await count("drizzle.__drizzle_migrations"),
      eventcore: await count("eventcore.migrations"),
      columns: columns.rows.map((row) => row.name)
    }
  }

  it("applies the application's drizzle-kit migrations after eventcore's, each history apart; a later release's on the next open, once", async () => {
    const dataDir = await initialisedDataDir(join(scratch, "events"))
    await withDatabase({ dataDir, migrationsFolder: firstReleaseOf(shopMigrations) }, async (client) => {
      expect(await appliedOf(client)).toEqual({
        application: 1,
        eventcore: shippedMigrations.length,
        columns: ["cart", "sku", "quantity"]
      })
      await client.query("insert into cart_lines (cart, sku, quantity) values ('c1', 'apple', 2)")
    })
    for (let open = 0; open < 2; open++) {
      await withDatabase({ dataDir, migrationsFolder: shopMigrations }, async (client) => {
        expect(await appliedOf(client)).toEqual({
          application: 2,
          eventcore: shippedMigrations.length,
          columns: ["cart", "sku", "quantity", "unit_cents"]
        })
        expect(await drizzle({ client }).select().from(cartLines)).toEqual([
          { cart: "c1", sku: "apple", quantity: 2, unitCents: 0 }
        ])
      })
    }
  })

  it("a projection writes the application's table through ReadModel, and the application reads it through Client", async () => {
    const ItemAdded = Schema.TaggedStruct("ItemAdded", {
      sku: Schema.String,
      quantity: Schema.Number,
      unitCents: Schema.Number
    })
    const CartLines = Projection.make({
      name: "cart-lines",
      event: Schema.Union(ItemAdded),
      filter: { streamPrefix: "cart-" },
      handle: (event, recorded) =>
        Effect.flatMap(Projection.ReadModel, ({ db }) =>
          Effect.promise(() =>
            db
              .insert(cartLines)
              .values({ cart: recorded.streamId, sku: event.sku, quantity: event.quantity, unitCents: event.unitCents })
              .onConflictDoUpdate({
                target: [cartLines.cart, cartLines.sku],
                set: { quantity: sql`${cartLines.quantity} + ${event.quantity}`, unitCents: event.unitCents }
              })
          )
        )
    })
    const added = (cart: string, sku: string, quantity: number, unitCents: number) => {
      const streamId = StreamId.unsafeMake(cart)
      return Either.getOrThrow(
        Either.flatMap(
          StreamWrites.expect(StreamWrites.empty, streamId, "any"),
          StreamWrites.append({ streamId, eventType: "ItemAdded", data: { sku, quantity, unitCents } })
        )
      )
    }

    const lines = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append(added("cart-1", "apple", 2, 40))
          yield* store.append(added("cart-2", "pear", 1, 55))
          const last = yield* store.append(added("cart-1", "apple", 3, 45))
          yield* Effect.forkScoped(Projection.run(CartLines))
          yield* Projection.waitFor(CartLines, (last.events.at(-1) as RecordedEvent).position)
          const client = yield* PgliteEventStore.Client
          return yield* Effect.promise(() =>
            drizzle({ client }).select().from(cartLines).orderBy(asc(cartLines.cart), asc(cartLines.sku))
          )
        }).pipe(Effect.provide(PgliteEventStore.layer({ migrationsFolder: shopMigrations })))
      )
    )
    expect(lines).toEqual([
      { cart: "cart-1", sku: "apple", quantity: 5, unitCents: 45 },
      { cart: "cart-2", sku: "pear", quantity: 1, unitCents: 55 }
    ])
  })

  it("a folder that holds no drizzle-kit migrations fails the layer with a StoreError naming it", async () => {
    const empty = mkdtempSync(join(scratch, "empty-"))
    const error = await Effect.runPromise(
      Effect.flip(Effect.scoped(Layer.build(PgliteEventStore.layer({ migrationsFolder: empty }))))
    )
    expect(error).toMatchObject({
      _tag: "StoreError",
      operation: "migrate",
      message: `Cannot apply the application's migrations in ${empty}: Can't find meta/_journal.json file`
    })
  })
})

describe("PgliteEventStore failures", () => {
  it("a database that cannot be opened fails the layer with a StoreError naming the directory", async () => {
    const notADirectory = join(mkdtempSync(join(tmpdir(), "eventcore-pglite-")), "a-file")
    writeFileSync(notADirectory, "not a database")
    try {
      const error = await Effect.runPromise(
        Effect.flip(Effect.scoped(Layer.build(PgliteEventStore.layer({ dataDir: notADirectory }))))
      )
      expect(error._tag).toBe("StoreError")
      expect(error.operation).toBe("open")
      expect(error.message).toContain(`Cannot open PGlite in ${notADirectory}: `)
    } finally {
      rmSync(dirname(notADirectory), { recursive: true, force: true })
    }
  })

  it("reads and appends on a closed database fail with a StoreError naming the operation", async () => {
    const db = await newDatabase()
    await Effect.runPromise(PgliteEventStore.migrate(db))
    const store = PgliteEventStore.make(db)
    await db.close()
    const stream = StreamId.unsafeMake("closed")
    const read = await Effect.runPromise(Effect.flip(store.readStream(stream)))
    expect([read._tag, read._tag === "StoreError" && read.operation]).toEqual(["StoreError", "read_stream"])
    const append = await Effect.runPromise(
      Effect.flip(store.append(writesOf({ streamId: stream, expected: "any", events: testEvents(1) })))
    )
    expect([append._tag, append._tag === "StoreError" && append.operation]).toEqual(["StoreError", "append"])
  })

  it("appends and reads run in spans naming the database system", async () => {
    const { spans, layer: tracing } = makeRecordingTracer()
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const stream = StreamId.unsafeMake("traced")
          yield* store.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(1) }))
          yield* store.readStream(stream)
        }).pipe(Effect.provide(Layer.merge(pglite.layer, tracing)))
      )
    )
    const systems = spans
      .filter((span) => span.name.startsWith("eventcore."))
      .map((span) => [span.name, span.attributes.get("db.system")])
    expect(systems).toEqual([
      ["eventcore.append", "postgresql"],
      ["eventcore.read_stream", "postgresql"]
    ])
  })
})

// PGlite has one connection, so no append of its own can race another: these
// raise the driver's serialization failure at the append to reach the path a
// raced write takes on PostgreSQL (test/postgres/store.test.ts races real ones).
describe("SqlEventStore after a raced write", () => {
  const serializationFailure = Object.assign(new Error("could not serialize access"), { code: "40001" })

  const storeRacedAt = (db: PGlite, diagnosis: "answers" | "fails") =>
    SqlEventStore.make({
      schema: "eventcore",
      run: async (statement, params) => {
        if (statement === storeStatements("eventcore").append) throw serializationFailure
        if (diagnosis === "fails") throw Object.assign(new Error("terminating connection"), { code: "57P01" })
        return (await db.query<Array<unknown>>(statement, params as Array<unknown>, { rowMode: "array" })).rows
      }
    })

  it("reports a VersionConflict with the stale participant's current version", async () => {
    const conflict = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* pglite.clone
          const ahead = StreamId.unsafeMake("ahead")
          const fresh = StreamId.unsafeMake("fresh")
          yield* PgliteEventStore.make(db).append(
            writesOf({ streamId: ahead, expected: "no_stream", events: testEvents(2) })
          )
          return yield* Effect.flip(
            storeRacedAt(db, "answers").append(
              writesOf(
                { streamId: fresh, expected: "no_stream", events: testEvents(1) },
                { streamId: ahead, expected: 1, events: testEvents(1) }
              )
            )
          )
        })
      )
    )
    expect(conflict).toMatchObject({ _tag: "VersionConflict", streamId: "ahead", expected: 1, actual: 2 })
  })

  it("a diagnosis that fails too is a StoreError of the append, not of a nameless query", async () => {
    const error = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(pglite.clone, (db) =>
          Effect.flip(
            storeRacedAt(db, "fails").append(
              writesOf({ streamId: StreamId.unsafeMake("s"), expected: "no_stream", events: testEvents(1) })
            )
          )
        )
      )
    )
    expect([error._tag, error._tag === "StoreError" && error.operation]).toEqual(["StoreError", "append"])
    expect(error.message).toContain("Lost the connection to PostgreSQL during append")
  })
})

describe("PgliteEventStore and the event loop", () => {
  it("timers keep firing while fibers keep the database busy", async () => {
    const ticks = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          let ticks = 0
          yield* Effect.forkScoped(
            Effect.forever(
              Effect.zipRight(
                Effect.sleep("2 millis"),
                Effect.sync(() => ticks++)
              )
            )
          )
          // PGlite settles each query in a microtask: without a turn of the
          // event loop between operations, these writers would never let the
          // timer above fire until they are done.
          yield* Effect.forEach(
            Array.from({ length: 4 }, (_, writer) => StreamId.unsafeMake(`busy-${writer}`)),
            (stream) =>
              Effect.forEach(Array.from({ length: 60 }), (_, i) =>
                store.append(writesOf({ streamId: stream, expected: i === 0 ? "no_stream" : i, events: testEvents(1) }))
              ),
            { concurrency: "unbounded" }
          )
          return ticks
        }).pipe(Effect.provide(pglite.layer))
      )
    )
    expect(ticks).toBeGreaterThan(0)
  })
})
