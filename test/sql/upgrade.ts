/**
 * Upgrading in place a database migrated by a release before eventcore had a
 * schema of its own (0000-0003 in `public`, history in
 * `drizzle.__eventcore_migrations`): every event is still there afterwards,
 * in `eventcore`, and the store reads and appends as before. Shared by the
 * PGlite and PostgreSQL suites.
 */
import { randomUUID } from "node:crypto"
import { readMigrationFiles } from "drizzle-orm/migrator"
import { Effect, type Layer } from "effect"
import { EventStore, StreamId } from "eventcore"
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

export const defineUpgradeTests = (
  withLegacyDatabase: (
    body: (sql: RawSql, upgradedStore: Layer.Layer<EventStore.EventStore, unknown>) => Promise<void>
  ) => Promise<void>
) => {
  it("keeps every event of a database migrated before the own schema, and appends on from it", () =>
    withLegacyDatabase(async (sql, upgradedStore) => {
      const before = await writeAsRelease010(sql)
      expect(before).toHaveLength(5)

      const read = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const order1 = yield* store.readStream(StreamId.unsafeMake("order-1"))
          const order2 = yield* store.readStream(StreamId.unsafeMake("order-2"))
          const appended = yield* store.append(
            writesOf(
              { streamId: StreamId.unsafeMake("order-1"), expected: 3, events: [{ eventType: "After", data: {} }] },
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
          "insert into eventcore.events (event_id, stream_id, stream_version, event_type, data) values (gen_random_uuid(), 'order-2', 4, 'Gap', '{}')"
        )
      ).rejects.toMatchObject({ code: "23503" })
    }))
}
