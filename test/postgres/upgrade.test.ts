/**
 * Upgrading in place, on a server: a database migrated by the release before
 * eventcore's own schema keeps its events, and an application role granted as
 * that release's docs said keeps reading and appending after the owner
 * migrates; one granted as the docs said before snapshots (0011) runs commands
 * with snapshots, and from 0013 writes personal data, once the owner migrates.
 */
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { EventStore, PersonalData, PostgresEventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { expect, it } from "vitest"
import {
  addItems,
  defineUpgradeTests,
  expectSnapshotsUsed,
  migrateAsRelease010,
  migrateUntil,
  writeAsRelease010
} from "../sql/upgrade.js"
import { shippedMigrations } from "../support/migrations.js"
import { databaseUrl, describeServer, urlOf } from "../support/postgres.js"

/** A fresh empty database for `body`, dropped afterwards (with the roles it created). */
const withDatabase = async (body: (admin: postgres.Sql, database: string) => Promise<void>) => {
  const admin = postgres(databaseUrl as string, { max: 1, onnotice: () => {} })
  const database = `eventcore_upgrade_${randomUUID().replaceAll("-", "").slice(0, 12)}`
  await admin.unsafe(`create database ${database}`)
  try {
    await body(admin, database)
  } finally {
    await admin.unsafe(`drop database if exists ${database} with (force)`)
    await admin.end()
  }
}

/**
 * A fresh database owned by a new owner role, with a new application role,
 * for `body`; both roles dropped afterwards. `urlAs(role)` connects as one.
 */
const withRoles = (
  body: (roles: {
    readonly owner: string
    readonly app: string
    readonly urlAs: (role: string) => string
    readonly asOwner: postgres.Sql
  }) => Promise<void>
) =>
  withDatabase(async (admin, database) => {
    const suffix = database.slice(-12)
    const owner = `eventcore_owner_${suffix}`
    const app = `eventcore_app_${suffix}`
    const urlAs = (role: string) => {
      const url = new URL(urlOf(database))
      url.username = role
      return url.toString()
    }
    await admin.unsafe(`create role ${owner} login; create role ${app} login`)
    await admin.unsafe(`alter database ${database} owner to ${owner}`)
    const asOwner = postgres(urlAs(owner), { max: 1, onnotice: () => {} })
    try {
      await body({ owner, app, urlAs, asOwner })
    } finally {
      await asOwner.end()
      await admin.unsafe(`drop database if exists ${database} with (force)`)
      await admin.unsafe(`drop role if exists ${app}; drop role if exists ${owner}`)
    }
  })

const rawSql = (client: postgres.Sql) => ({
  query: (text: string, params: ReadonlyArray<unknown> = []) =>
    client.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>) as never
})

describeServer("PostgresEventStore: upgrading a database of an earlier release", () => {
  defineUpgradeTests((migrateAsBefore, body) =>
    withDatabase(async (_, database) => {
      const client = postgres(urlOf(database), { max: 1, onnotice: () => {} })
      try {
        await migrateAsBefore(rawSql(client))
        await body(rawSql(client), PostgresEventStore.layer({ url: urlOf(database), autoMigrate: true }))
      } finally {
        await client.end()
      }
    })
  )

  it("an application role granted as that release's docs said keeps working once the owner migrates", () =>
    withRoles(async ({ owner, app, urlAs, asOwner }) => {
      await asOwner.unsafe("grant create on schema public to current_user")
      await migrateAsRelease010(rawSql(asOwner))
      await asOwner.unsafe(`
          grant select on eventcore_events, eventcore_streams to ${app};
          grant insert on eventcore_events to ${app};
          grant usage on sequence eventcore_events_global_position_seq to ${app};
          grant execute on function eventcore_append(jsonb) to ${app};`)
      const before = await writeAsRelease010(rawSql(asOwner))

      const report = await Effect.runPromise(PostgresEventStore.migrate({ url: urlAs(owner) }))
      expect(report.applied).toEqual(shippedMigrations.slice(shippedMigrations.indexOf("0004_own_schema")))

      const stream = StreamId.unsafeMake("order-1")
      const result = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const appended = yield* store.append(writesOf({ streamId: stream, expected: 3, events: testEvents(2) }))
          const read = yield* store.readStream(stream)
          return { appended, read }
        }).pipe(Effect.provide(PostgresEventStore.layer({ url: urlAs(app), maxConnections: 2 })))
      )
      expect(result.appended.streamVersions.get(stream)).toBe(5)
      expect(result.read.events.slice(0, 3).map((e) => e.eventId)).toEqual(
        before.filter((row) => row.stream_id === "order-1").map((row) => row.event_id)
      )
      // Still least privilege: the application role cannot rewrite history, nor (since 0008, which
      // revoked the INSERT that release's docs granted) insert past the append's locks; it reads the
      // streams view that replaced the streams table.
      const asApp = postgres(urlAs(app), { max: 1, onnotice: () => {} })
      try {
        await expect(asApp`update eventcore.events set event_type = 'Forged'`).rejects.toMatchObject({
          code: "42501"
        })
        await expect(
          asApp`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
              values (gen_random_uuid(), 'forged', 1, 'Forged', '{}')`
        ).rejects.toMatchObject({ code: "42501" })
        expect(await asApp`select stream_id, version from eventcore.streams where stream_id = 'order-1'`).toEqual([
          { stream_id: "order-1", version: 5 }
        ])
      } finally {
        await asApp.end()
      }
    }))

  it("an application role granted as the docs said before snapshots runs commands with snapshots once the owner migrates", () =>
    withRoles(async ({ owner, app, urlAs, asOwner }) => {
      await migrateUntil("0011_snapshots")(rawSql(asOwner))
      // docs/security.md's grants up to 0010.
      await asOwner.unsafe(`
          grant usage on schema eventcore to ${app};
          grant select on eventcore.events, eventcore.streams to ${app};
          grant execute on function eventcore.append(jsonb) to ${app};`)
      await addItems(rawSql(asOwner), "cart-7", 4)

      const report = await Effect.runPromise(PostgresEventStore.migrate({ url: urlAs(owner) }))
      expect(report.applied).toEqual([
        "0011_snapshots",
        "0012_one_stream_append",
        "0013_personal_data",
        "0014_stream_lifecycle"
      ])
      // What 0011 gave the role: enough to run commands with snapshots, not to clear them.
      const privileges = await asOwner.unsafe(
        `select p as privilege, has_table_privilege($1, 'eventcore.snapshots', p) as held
           from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p`,
        [app]
      )
      expect(privileges.map((row) => [row.privilege, row.held])).toEqual([
        ["SELECT", true],
        ["INSERT", true],
        ["UPDATE", true],
        ["DELETE", false],
        ["TRUNCATE", false]
      ])
      // Granted to the role holding EXECUTE on the append, and to no one else (PUBLIC included).
      const grantees = await asOwner.unsafe(
        `select distinct coalesce(r.rolname, 'PUBLIC') as grantee
           from pg_class c cross join lateral aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
           where c.oid = 'eventcore.snapshots'::regclass and a.grantee <> c.relowner`
      )
      expect(grantees.map((row) => row.grantee)).toEqual([app])

      await expectSnapshotsUsed(
        rawSql(asOwner),
        PostgresEventStore.layer({ url: urlAs(app), maxConnections: 2 }),
        "cart-7",
        4
      )

      // What 0013 gave the role: it writes personal data (making the subject's key) and reads it back.
      const stream = StreamId.unsafeMake("person-1")
      const read = await Effect.runPromise(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append(
            writesOf({
              streamId: stream,
              expected: "no_stream",
              events: [{ eventType: "Named", data: { name: PersonalData.value("p-1", "Ines Varga-Oort") } }]
            })
          )
          return (yield* store.readStream(stream)).events[0]?.data
        }).pipe(Effect.provide(PostgresEventStore.layer({ url: urlAs(app), maxConnections: 2 })))
      )
      expect(read).toEqual({ name: "Ines Varga-Oort" })
    }))
})
