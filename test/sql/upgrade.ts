/**
 * Upgrading in place a database migrated by an earlier release: one from
 * before eventcore had a schema of its own (0000-0003 in `public`, history in
 * `drizzle.__eventcore_migrations`), one from just before events recorded
 * their schema version (0010), and one from before snapshots (0011). Every
 * event is still there afterwards, in `eventcore`, the store reads and
 * appends as before, and commands with snapshots write and read them. Shared
 * by the PGlite and PostgreSQL suites.
 */
import { randomUUID } from "node:crypto"
import { readMigrationFiles } from "drizzle-orm/migrator"
import { Effect, Either, type Layer, pipe, Schema } from "effect"
import {
  Command,
  EventStore,
  execute,
  PersonalData,
  Snapshot,
  StreamId,
  StreamLifecycle,
  StreamWrites
} from "eventcore"
import { writesOf } from "eventcore/testing"
import { expect, it } from "vitest"
import { migrationsFolder } from "../../src/sql/migrations.js"
import { shippedMigrations } from "../support/migrations.js"
import type { RawSql } from "./enforcement.js"

/** The migrations of the last release before the own schema, applied the way its migrator applied them. */
export const migrateAsRelease010 = async (sql: RawSql) => {
  const legacy = readMigrationFiles({ migrationsFolder }).slice(0, shippedMigrations.indexOf("0004_own_schema"))
  expect(legacy).toHaveLength(4)
  await sql.query("create schema if not exists drizzle")
  await sql.query(
    "create table if not exists drizzle.__eventcore_migrations (id serial primary key, hash text not null, created_at bigint)"
  )
  for (const migration of legacy) {
    for (const statement of migration.sql) await sql.query(statement)
    await sql.query("insert into drizzle.__eventcore_migrations (hash, created_at) values ($1, $2)", [
      migration.hash,
      migration.folderMillis
    ])
  }
}

/** The migrations before `tag`, applied in `eventcore` as eventcore's migrator applied them then. */
export const migrateUntil =
  (tag: string) =>
  async (sql: RawSql): Promise<void> => {
    const earlier = readMigrationFiles({ migrationsFolder }).slice(0, shippedMigrations.indexOf(tag))
    expect(earlier).toHaveLength(shippedMigrations.indexOf(tag))
    await sql.query("create schema eventcore")
    await sql.query("create table eventcore.migrations (id serial primary key, hash text not null, created_at bigint)")
    await sql.query("set search_path = eventcore")
    for (const migration of earlier) {
      for (const statement of migration.sql) await sql.query(statement)
      await sql.query("insert into migrations (hash, created_at) values ($1, $2)", [
        migration.hash,
        migration.folderMillis
      ])
    }
    await sql.query("reset search_path")
  }

/** Events as the old release wrote them, through its `eventcore_append`. */
export const writeAsRelease010 = async (sql: RawSql) => {
  const request = (streams: ReadonlyArray<{ id: string; expected: unknown }>, events: ReadonlyArray<string>) =>
    JSON.stringify({
      streams,
      events: events.map((stream, i) => ({ stream, id: randomUUID(), type: "Legacy", data: { stream, i } }))
    })
  await sql.query("select eventcore_append($1::text::jsonb)", [
    request([{ id: "order-1", expected: "no_stream" }], ["order-1", "order-1", "order-1"])
  ])
  await sql.query("select eventcore_append($1::text::jsonb)", [
    request(
      [
        { id: "order-2", expected: "no_stream" },
        { id: "customer-9", expected: "no_stream" } // read-only: leaves a row at version 0
      ],
      ["order-2", "order-2"]
    )
  ])
  return sql.query(
    "select e.event_id::text, e.stream_id, e.stream_version, e.global_position::text, e.data from eventcore_events e order by e.global_position"
  )
}

/** Items added to a cart, through `eventcore.append` as releases from 0004 on call it. */
export const addItems = (sql: RawSql, cart: string, count: number) =>
  sql.query("select eventcore.append($1::text::jsonb)", [
    JSON.stringify({
      streams: [{ id: cart, expected: "no_stream" }],
      events: Array.from({ length: count }, (_, i) => ({
        stream: cart,
        id: randomUUID(),
        type: "ItemAdded",
        data: { i: i + 1 }
      }))
    })
  ])

const ItemAdded = Schema.TaggedStruct("ItemAdded", { i: Schema.Int })

/**
 * A command that adds an item to a cart, with a snapshot of the cart's item
 * count after every event it folds: `seen` collects the counts it decided
 * on, `folded` counts the events it folded.
 */
export const addItem = () => {
  const runs = { seen: [] as Array<number>, folded: 0 }
  const command = Command.make({
    name: "AddItem",
    event: ItemAdded,
    streams: (cart: StreamId.StreamId) => [cart],
    initialState: 0,
    apply: (count: number) => {
      runs.folded += 1
      return count + 1
    },
    decide: (count, cart) =>
      Effect.sync(() => {
        runs.seen.push(count)
        return [{ streamId: cart, event: ItemAdded.make({ i: count + 1 }) }]
      }),
    snapshot: Snapshot.make({ state: Schema.Int, version: 1, after: { events: 1 } })
  })
  return { command, runs }
}

/**
 * Runs `AddItem` three times on `cart`, which holds `items` items, each run's
 * snapshot written before the next one reads it; checks that the first run
 * folded the cart and the others only the event after the snapshot, and
 * that the snapshot stored is the last run's.
 */
export const expectSnapshotsUsed = async (
  sql: RawSql,
  store: Layer.Layer<EventStore.EventStore, unknown>,
  cart: string,
  items: number
) => {
  const { command, runs } = addItem()
  await Effect.runPromise(
    Effect.gen(function* () {
      for (let run = 0; run < 3; run++) {
        yield* execute(command, StreamId.unsafeMake(cart))
        yield* Snapshot.awaitWrites
      }
    }).pipe(Effect.provide(store))
  )
  expect(runs.seen).toEqual([items, items + 1, items + 2])
  // Without snapshots: 3 * items + 3.
  expect(runs.folded).toBe(items + 2)
  expect(await sql.query("select state, streams from eventcore.snapshots where command = 'AddItem'")).toEqual([
    { state: items + 2, streams: [[cart, items + 2]] }
  ])
}

/**
 * `withDatabase` runs `migrateAsBefore` on an empty database, then `body` with
 * a store over it that migrates it to the current schema when built.
 */
export const defineUpgradeTests = (
  withDatabase: (
    migrateAsBefore: (sql: RawSql) => Promise<void>,
    body: (sql: RawSql, upgradedStore: Layer.Layer<EventStore.EventStore, unknown>) => Promise<void>
  ) => Promise<void>
) => {
  it("keeps every event of a database migrated before the own schema, and appends on from it", () =>
    withDatabase(migrateAsRelease010, async (sql, upgradedStore) => {
      const before = await writeAsRelease010(sql)
      expect(before).toHaveLength(5)

      const read = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const order1 = yield* store.readStream(StreamId.unsafeMake("order-1"))
          const order2 = yield* store.readStream(StreamId.unsafeMake("order-2"))
          const appended = yield* store.append(
            writesOf(
              {
                streamId: StreamId.unsafeMake("order-1"),
                expected: 3,
                events: [{ eventType: "After", data: {}, schemaVersion: 2 }]
              },
              { streamId: StreamId.unsafeMake("customer-9"), expected: "no_stream" }
            )
          )
          return { order1, order2, appended }
        }).pipe(Effect.provide(upgradedStore))
      )
      const readBack = [...read.order1.events, ...read.order2.events].map((e) => ({
        event_id: e.eventId,
        stream_id: e.streamId,
        stream_version: e.streamVersion,
        global_position: e.globalPosition.toString(),
        data: e.data
      }))
      expect(readBack).toEqual(before)
      // Written before events recorded their schema's version (0010): the first.
      expect([...read.order1.events, ...read.order2.events].map((e) => e.schemaVersion)).toEqual([1, 1, 1, 1, 1])
      expect(read.appended.events[0]?.schemaVersion).toBe(2)
      expect(await sql.query("select schema_version from eventcore.events where event_type = 'After'")).toEqual([
        { schema_version: 2 }
      ])
      expect(read.appended.streamVersions.get(StreamId.unsafeMake("order-1"))).toBe(4)
      expect(read.appended.events[0]?.globalPosition).toBeGreaterThan(BigInt(before.at(-1)?.global_position as string))

      // Nothing of eventcore's is left where the old release put it.
      const leftovers = await sql.query(
        `select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace and c.relname like 'eventcore%'
         union all select p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'eventcore%'
         union all select 'history' where to_regclass('drizzle.__eventcore_migrations') is not null`
      )
      expect(leftovers).toEqual([])
      const history = await sql.query("select count(*)::int as n from eventcore.migrations")
      expect(history[0]?.n).toBe(shippedMigrations.length)
      // Streams are their events now (0008): the stream locked but never written is none.
      const streams = await sql.query("select stream_id, version from eventcore.streams order by stream_id")
      expect(streams).toEqual([
        { stream_id: "order-1", version: 4 },
        { stream_id: "order-2", version: 2 }
      ])
      // The rules still hold on the moved table, for the events written before the upgrade too.
      await expect(sql.query("delete from eventcore.events")).rejects.toMatchObject({ code: "EC002" })
      await expect(
        sql.query(
          "insert into eventcore.events (event_id, stream_id, stream_version, event_type, data) values (gen_random_uuid(), 'order-2', 2, 'Taken', '{}')"
        )
      ).rejects.toMatchObject({ code: "23505" })
    }))
  it("reads the events of a database migrated before schema versions as version 1, without rewriting its events table, and writes the versions given", () =>
    withDatabase(migrateUntil("0010_event_schema_versions"), async (sql, upgradedStore) => {
      const fileOfEvents = "select pg_relation_filenode('eventcore.events') as file"
      const request = JSON.stringify({
        streams: [{ id: "cart-1", expected: "no_stream" }],
        events: [1, 2].map((i) => ({ stream: "cart-1", id: randomUUID(), type: "ItemAdded", data: { i } }))
      })
      await sql.query("select eventcore.append($1::text::jsonb)", [request])
      const fileBefore = await sql.query(fileOfEvents)

      const cart = StreamId.unsafeMake("cart-1")
      const read = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const before = yield* store.readStream(cart)
          const appended = yield* store.append(
            writesOf({
              streamId: cart,
              expected: 2,
              events: [
                { eventType: "ItemAdded", data: { i: 3 }, schemaVersion: 4 },
                { eventType: "ItemAdded", data: { i: 4 } }
              ]
            })
          )
          return { before, appended, after: yield* store.readStream(cart) }
        }).pipe(Effect.provide(upgradedStore))
      )
      expect(read.before.events.map((e) => [e.data, e.schemaVersion])).toEqual([
        [{ i: 1 }, 1],
        [{ i: 2 }, 1]
      ])
      expect(read.appended.events.map((e) => e.schemaVersion)).toEqual([4, 1])
      expect(read.after.events.map((e) => [e.data, e.schemaVersion])).toEqual([
        [{ i: 1 }, 1],
        [{ i: 2 }, 1],
        [{ i: 3 }, 4],
        [{ i: 4 }, 1]
      ])
      expect(await sql.query("select count(*)::int as n from eventcore.migrations")).toEqual([
        { n: shippedMigrations.length }
      ])
      // The column came with its default as metadata: the table's file is the one the events were in.
      expect(await sql.query(fileOfEvents)).toEqual(fileBefore)
      // The database refuses a version below 1, whoever writes it.
      const refused = JSON.stringify({
        streams: [{ id: "cart-1", expected: "any" }],
        events: [{ stream: "cart-1", id: randomUUID(), type: "ItemAdded", data: {}, version: 0 }]
      })
      await expect(sql.query("select eventcore.append($1::text::jsonb)", [refused])).rejects.toMatchObject({
        code: "23514"
      })
    }))
  it("appends on from the events of a database migrated before the one-stream path, without rewriting its events table", () =>
    withDatabase(migrateUntil("0012_one_stream_append"), async (sql, upgradedStore) => {
      const fileOfEvents = "select pg_relation_filenode('eventcore.events') as file"
      await addItems(sql, "cart-1", 2)
      await sql.query("select eventcore.append($1::text::jsonb)", [
        JSON.stringify({
          streams: [
            { id: "cart-2", expected: "no_stream" },
            { id: "cart-1", expected: 2 }
          ],
          events: [
            { stream: "cart-2", id: randomUUID(), type: "ItemAdded", data: { i: 1 } },
            { stream: "cart-1", id: randomUUID(), type: "ItemAdded", data: { i: 3 } }
          ]
        })
      ])
      const fileBefore = await sql.query(fileOfEvents)

      const [one, two] = [StreamId.unsafeMake("cart-1"), StreamId.unsafeMake("cart-2")]
      const read = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          // One stream (the new path), then two (the general one), each from where the old release left it.
          const single = yield* store.append(
            writesOf({ streamId: one, expected: 3, events: [{ eventType: "ItemAdded", data: { i: 4 } }] })
          )
          const conflict = yield* Effect.flip(
            store.append(writesOf({ streamId: one, expected: 3, events: [{ eventType: "ItemAdded", data: { i: 5 } }] }))
          )
          const both = yield* store.append(
            pipe(
              StreamWrites.empty,
              StreamWrites.expect(one, 4),
              Either.flatMap(StreamWrites.expect(two, 1)),
              Either.flatMap(StreamWrites.append({ streamId: two, eventType: "ItemAdded", data: { i: 2 } })),
              Either.getOrThrow
            )
          )
          return { single, conflict, both, one: yield* store.readStream(one), two: yield* store.readStream(two) }
        }).pipe(Effect.provide(upgradedStore))
      )
      expect(read.single.streamVersions.get(one)).toBe(4)
      expect(read.conflict).toMatchObject({ _tag: "VersionConflict", streamId: one, expected: 3, actual: 4 })
      expect([...read.both.streamVersions]).toEqual([
        [one, 4],
        [two, 2]
      ])
      expect(read.one.events.map((e) => [e.streamVersion, e.data])).toEqual([
        [1, { i: 1 }],
        [2, { i: 2 }],
        [3, { i: 3 }],
        [4, { i: 4 }]
      ])
      expect(read.two.events.map((e) => e.streamVersion)).toEqual([1, 2])
      expect(await sql.query("select count(*)::int as n from eventcore.migrations")).toEqual([
        { n: shippedMigrations.length }
      ])
      // The column went as metadata, and with it the foreign key: the table's file is the one the events were in.
      expect(await sql.query(fileOfEvents)).toEqual(fileBefore)
      expect(
        await sql.query(
          "select count(*)::int as n from pg_attribute where attrelid = 'eventcore.events'::regclass and attname = 'previous_version' and not attisdropped"
        )
      ).toEqual([{ n: 0 }])
    }))
  it("archives, truncates and writes personal data on a database migrated before them, once upgraded, reading its events", () =>
    withDatabase(migrateUntil("0013_personal_data"), async (sql, upgradedStore) => {
      await addItems(sql, "cart-5", 3)
      await addItems(sql, "cart-6", 1)
      const [five, six, person] = ["cart-5", "cart-6", "person-1"].map(StreamId.unsafeMake) as [
        StreamId.StreamId,
        StreamId.StreamId,
        StreamId.StreamId
      ]
      const outcome = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* StreamLifecycle.truncate(five, { before: 3 })
          yield* StreamLifecycle.archive(six)
          yield* store.append(
            writesOf({
              streamId: person,
              expected: "no_stream",
              events: [{ eventType: "Named", data: { name: PersonalData.value("p-1", "Orla Feng-Haas") } }]
            })
          )
          return {
            five: yield* store.readStream(five),
            six: yield* Effect.flip(store.readStream(six)),
            person: (yield* store.readStream(person)).events[0]?.data
          }
        }).pipe(Effect.provide(upgradedStore))
      )
      expect([outcome.five.version, outcome.five.events.map((e) => e.data)]).toEqual([3, [{ i: 3 }]])
      expect(outcome.six).toMatchObject({ _tag: "StreamArchived", streamId: six })
      expect(outcome.person).toEqual({ name: "Orla Feng-Haas" })
      expect(await sql.query("select count(*)::int as n from eventcore.migrations")).toEqual([
        { n: shippedMigrations.length }
      ])
    }))

  it("runs commands with snapshots on a database migrated before snapshots, once upgraded, reading its events", () =>
    withDatabase(migrateUntil("0011_snapshots"), async (sql, upgradedStore) => {
      await addItems(sql, "cart-9", 3)
      expect(await sql.query("select to_regclass('eventcore.snapshots') is null as absent")).toEqual([{ absent: true }])
      await expectSnapshotsUsed(sql, upgradedStore, "cart-9", 3)
      expect(await sql.query("select count(*)::int as n from eventcore.migrations")).toEqual([
        { n: shippedMigrations.length }
      ])
    }))
}
