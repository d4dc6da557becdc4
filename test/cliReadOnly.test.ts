/**
 * The command line's read-only commands (streams, read, stats; tail,
 * status and projections too) never change a database: they open read-only sessions, never
 * migrate, and report a database that holds no eventcore schema, or one this
 * release cannot read, in one line.
 */
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { EventStore, PgliteEventStore, PostgresEventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { afterAll, describe, expect, it } from "vitest"
import { connectForReading, type Target } from "../src/cli/connection.js"
import { migrateAsRelease010, writeAsRelease010 } from "./sql/upgrade.js"
import { cli, expectOneLineError, type Run } from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { describeServer, urlOf, usePostgresTemplate } from "./support/postgres.js"

const readOnlyCommands = [["stats"], ["streams"], ["read", "order-1"]] as const
/**
 * The global log's and the projections', spawned only on PostgreSQL (the
 * catalog and SELECT-only tests) to keep the process count down: they open
 * the database with the same code as the three above, and
 * test/cliParse.test.ts runs them in-process on a --data-dir that does not
 * exist.
 */
const logCommands = [["tail"], ["status"], ["projections"]] as const

/** The migrations 0.1.0 did not have: from 0004_own_schema on, as many as this release ships. */
const sinceRelease010 = (() => {
  const { entries } = JSON.parse(
    readFileSync(join(import.meta.dirname, "..", "drizzle", "meta", "_journal.json"), "utf8")
  ) as { readonly entries: ReadonlyArray<{ readonly tag: string }> }
  const tags = entries.map((entry) => entry.tag)
  return tags.slice(tags.indexOf("0004_own_schema"))
})()

const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-ro-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Writing through a read-only connection fails with SQLSTATE 25006 (read_only_sql_transaction). */
const expectReadOnlySession = (target: Target) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { db } = yield* connectForReading(target, "eventcore", "stats")
        const write = yield* Effect.flip(
          Effect.tryPromise(() =>
            db.execute(
              sql`insert into eventcore.projections (name, kind, position, status)
                  values ('x', 'projection', '00000000000000000000-0000000000000000000', 'stopped')`
            )
          )
        )
        const cause = (write.error as { cause?: { code?: string } }).cause
        expect(cause?.code).toBe("25006")
      })
    )
  )

describe("read-only commands on PGlite", () => {
  it("a --data-dir that does not exist is reported and not created, whatever DATABASE_URL says", async () => {
    const missing = join(scratch, "missing", "events")
    for (const args of readOnlyCommands) {
      const run = await cli([...args, "--data-dir", missing], { DATABASE_URL: "postgres://nobody@127.0.0.1:1/x" })
      expectOneLineError(
        run,
        args[0],
        `there is no database at ${missing}: the directory does not exist (create one with \`eventcore migrate --data-dir ${missing}\`)`
      )
      expect(run.stdout).toBe("")
    }
    expect(readdirSync(scratch)).toEqual([])
  }, 60_000)

  it("a directory that holds no PGlite database is reported and left empty", async () => {
    const empty = join(scratch, "empty")
    mkdirSync(empty)
    for (const args of readOnlyCommands) {
      expectOneLineError(
        await cli([...args, "--data-dir", empty]),
        args[0],
        `${empty} is not a PGlite data directory (it has no PG_VERSION)`
      )
    }
    expect(readdirSync(empty)).toEqual([])
  }, 60_000)

  it("a PGlite database without eventcore's schema is reported and gets none; one with it is read in a read-only session", async () => {
    // As PGlite leaves a directory it has just created.
    const dataDir = await initialisedDataDir(join(scratch, "plain"))
    for (const args of readOnlyCommands) {
      expectOneLineError(
        await cli([...args, "--data-dir", dataDir]),
        args[0],
        `PGlite in ${dataDir} is not an eventcore database (no eventcore tables in schema "eventcore"): create them with \`eventcore migrate\` and the same connection options`
      )
    }
    const reopened = await PGlite.create({ dataDir })
    const schemas = await reopened.query("select 1 from pg_namespace where nspname = 'eventcore'")
    await reopened.close()
    expect(schemas.rows).toEqual([])

    await Effect.runPromise(
      Effect.flatMap(EventStore.EventStore, (store) =>
        store.append(
          writesOf({ streamId: StreamId.unsafeMake("order-1"), expected: "no_stream", events: testEvents(2) })
        )
      ).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
    )
    await expectReadOnlySession({ kind: "pglite", dataDir })
    const stats = await cli(["stats", "--data-dir", dataDir])
    expect(stats.stderr).toBe("")
    expect(stats.stdout).toMatch(/^events +2$/m)
  }, 120_000)
})

describeServer("read-only commands on PostgreSQL", () => {
  const server = usePostgresTemplate()

  /** A fresh database migrated by the store, holding stream `order-1` of `count` events. */
  const databaseWithOrder = (count: number) =>
    Effect.tap(server.freshDatabase, ({ url }) =>
      Effect.flatMap(EventStore.EventStore, (store) =>
        store.append(
          writesOf({ streamId: StreamId.unsafeMake("order-1"), expected: "no_stream", events: testEvents(count) })
        )
      ).pipe(Effect.provide(PostgresEventStore.layer({ url })))
    )

  /** `use` on a connection of its own to `url`, closed afterwards. */
  const onConnection = <A>(url: string, use: (client: postgres.Sql) => Promise<A>) =>
    Effect.promise(async () => {
      const client = postgres(url, { max: 1, onnotice: () => {} })
      try {
        return await use(client)
      } finally {
        await client.end()
      }
    })

  /** A fresh empty database (not migrated), dropped afterwards. */
  const withEmptyDatabase = async (body: (url: string) => Promise<void>) => {
    const name = `eventcore_cli_ro_${randomUUID().replaceAll("-", "").slice(0, 12)}`
    await server.adminClient().unsafe(`create database ${name}`)
    try {
      await body(urlOf(name))
    } finally {
      await server.adminClient().unsafe(`drop database if exists ${name} with (force)`)
    }
  }

  /** Every schema, relation, function and type outside the system catalogs. */
  const catalog = async (url: string) => {
    const client = postgres(url, { max: 1, onnotice: () => {} })
    try {
      const rows = await client`
        select 'schema ' || nspname as object from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema'
        union all select 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text from pg_class c
          join pg_namespace n on n.oid = c.relnamespace where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
        union all select 'function ' || p.oid::regprocedure::text from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
        union all select 'type ' || t.oid::regtype::text from pg_type t
          join pg_namespace n on n.oid = t.typnamespace where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
        order by 1`
      return rows.map((row) => row.object as string)
    } finally {
      await client.end()
    }
  }

  it(
    "against an empty database each exits 1 with one line and leaves the catalog as it was",
    () =>
      withEmptyDatabase(async (url) => {
        const before = await catalog(url)
        const commands = [...readOnlyCommands, ...logCommands]
        const runs = await Promise.all(commands.map((args) => cli([...args, "--url", url])))
        for (const [i, args] of commands.entries()) {
          const run = runs[i] as Run
          expectOneLineError(
            run,
            args[0],
            `PostgreSQL at 127.0.0.1:${new URL(url).port || "5432"}${new URL(url).pathname} is not an eventcore database (no eventcore tables in schema "eventcore"): create them with \`eventcore migrate\` and the same connection options`
          )
          expect(run.stdout).toBe("")
        }
        expect(await catalog(url)).toEqual(before)
        expect(before.filter((object) => object.includes("eventcore"))).toEqual([])
      }),
    120_000
  )

  it(
    "a database of 0.1.0 is named behind, with its pending migration, and left as it was",
    () =>
      withEmptyDatabase(async (url) => {
        const client = postgres(url, { max: 1, onnotice: () => {} })
        const raw = {
          query: (text: string, params: ReadonlyArray<unknown> = []) => client.unsafe(text, params as never) as never
        }
        await migrateAsRelease010(raw)
        await writeAsRelease010(raw)
        await client.end()
        const before = await catalog(url)
        const runs = await Promise.all(readOnlyCommands.map((args) => cli([...args, "--url", url])))
        for (const [i, args] of readOnlyCommands.entries()) {
          expectOneLineError(
            runs[i] as Run,
            args[0],
            `PostgreSQL at 127.0.0.1:${new URL(url).port || "5432"}${new URL(url).pathname} has eventcore's schema of an older release: pending migrations ${sinceRelease010.join(", ")}, which this release needs to read it: apply them with \`eventcore migrate\``
          )
        }
        expect(await catalog(url)).toEqual(before)
      }),
    60_000
  )

  it(
    "a schema behind but readable is named with its pending migration, read on where it can be, and not migrated",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url } = yield* databaseWithOrder(3)
            // As if the migrations from 0010 (each event's schema version) on had not been applied (their
            // objects are kept, as they would be).
            const pending = sinceRelease010.slice(sinceRelease010.indexOf("0010_event_schema_versions")).join(", ")
            const historyOf = (client: postgres.Sql) =>
              client<{ n: number }[]>`select count(*)::int as n from eventcore.migrations`.then((rows) => rows[0]?.n)
            const before = yield* onConnection(url, async (client) => {
              await client`delete from eventcore.migrations where id in (
                select id from eventcore.migrations order by created_at desc limit ${pending.split(", ").length})`
              return historyOf(client)
            })
            const run = yield* Effect.promise(() => cli(["stats", "--url", url]))
            expect(run.code).toBe(0)
            expect(run.stderr.trim().split("\n")).toEqual([
              `eventcore stats: PostgreSQL at 127.0.0.1:${new URL(url).port || "5432"}${new URL(url).pathname} has eventcore's schema of an older release: pending migrations ${pending} (apply them with \`eventcore migrate\`); reading it as it is`
            ])
            expect(run.stdout).toMatch(/^events +3$/m)
            // Reading whole events needs each one's schema version (0010), and snapshots their table (0011):
            // read, tail and snapshots say so instead.
            const [read, tail, snapshots] = yield* Effect.promise(() =>
              Promise.all([
                cli(["read", "order-1", "--url", url]),
                cli(["tail", "--url", url]),
                cli(["snapshots", "--url", url])
              ])
            )
            for (const [refused, command] of [
              [read, "read"],
              [tail, "tail"],
              [snapshots, "snapshots"]
            ] as const) {
              expectOneLineError(
                refused as Run,
                command,
                `PostgreSQL at 127.0.0.1:${new URL(url).port || "5432"}${new URL(url).pathname} has eventcore's schema of an older release: pending migrations ${pending}, which this release needs to read it: apply them with \`eventcore migrate\``
              )
            }
            const after = yield* onConnection(url, historyOf)
            expect(after).toBe(before)
          })
        )
      ),
    60_000
  )

  it(
    "a schema newer than the command line is named, and read on",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url } = yield* databaseWithOrder(3)
            yield* onConnection(
              url,
              (client) =>
                client`insert into eventcore.migrations (hash, created_at) values ('from-the-future', 4102444800000)`
            )
            const run = yield* Effect.promise(() => cli(["stats", "--url", url]))
            expect(run.code).toBe(0)
            expect(run.stderr.trim().split("\n")).toEqual([
              `eventcore stats: PostgreSQL at 127.0.0.1:${new URL(url).port || "5432"}${new URL(url).pathname} has eventcore's schema of a newer release (1 migration this command line does not know): this command line is older than the schema; upgrade it`
            ])
            expect(run.stdout).toMatch(/^events +3$/m)
          })
        )
      ),
    60_000
  )

  it(
    "through a role that may only select, every read-only command works, in a read-only session",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url, database } = yield* databaseWithOrder(2)
            const reader = `eventcore_reader_${database.slice(-12)}`
            const admin = server.adminClient()
            yield* Effect.acquireRelease(
              Effect.promise(async () => {
                await admin.unsafe(`create role ${reader} login`)
                const owner = postgres(url, { max: 1, onnotice: () => {} })
                await owner.unsafe(`grant usage on schema eventcore to ${reader};
                grant select on all tables in schema eventcore to ${reader}`)
                await owner.end()
              }),
              () =>
                Effect.promise(async () => {
                  await admin.unsafe(`drop database if exists ${database} with (force)`)
                  await admin.unsafe(`drop role if exists ${reader}`)
                })
            )
            const asReader = new URL(url)
            asReader.username = reader
            const [stats, streams, read, tail, status, projections] = yield* Effect.promise(() =>
              Promise.all(
                [...readOnlyCommands, ...logCommands].map((args) => cli([...args, "--url", asReader.toString()]))
              )
            )
            for (const run of [stats, streams, read, tail, status, projections]) {
              expect(run?.stderr).toBe("")
              expect(run?.code).toBe(0)
            }
            expect(streams?.stdout.trim()).toBe("order-1  2")
            expect(read?.stdout).toContain("order-1: version 2")
            expect(stats?.stdout).toMatch(/^streams +1$/m)
            expect(tail?.stdout).toMatch(/^\d{20}-\d{19} {2}\S+ {2}order-1@1 {2}Tested {2}\{"n":1\}\n\S+ .*order-1@2 /)
            expect(status?.stdout).toMatch(/^held back {4}none: every committed event is readable$/m)
            expect(projections?.stdout).toBe("no projections\n")
            yield* Effect.promise(() => expectReadOnlySession({ kind: "postgres", url }))
          })
        )
      ),
    120_000
  )
})
