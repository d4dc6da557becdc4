/**
 * `eventcore snapshots` and `eventcore snapshots clear`, spawned as a user
 * runs them: the listing per command, clearing one command's or every
 * command's snapshots (a cache: commands fold on to the same results), a
 * schema from before snapshots named as such, and on PostgreSQL a role that
 * may only select listing them but not clearing them.
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { Effect, type Layer, Schema } from "effect"
import { Command, type EventStore, execute, PgliteEventStore, PostgresEventStore, Snapshot, StreamId } from "eventcore"
import postgres from "postgres"
import { afterAll, describe, expect, it } from "vitest"
import { migrateUntil } from "./sql/upgrade.js"
import { cli, expectOneLineError, linesOf, type Run } from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { describeServer, usePostgresTemplate } from "./support/postgres.js"

const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-snapshots-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const Added = Schema.TaggedStruct("Added", { n: Schema.Int })

/** A counter per stream that snapshots its state after every event folded; `seen` collects the states it decided on. */
const counter = (name: string) => {
  const seen: Array<number> = []
  const command = Command.make({
    name,
    event: Added,
    streams: (input: { readonly id: string }) => [StreamId.unsafeMake(input.id)],
    initialState: 0,
    apply: (count: number, event) => count + event.n,
    decide: (count, input) =>
      Effect.sync(() => {
        seen.push(count)
        return [{ streamId: StreamId.unsafeMake(input.id), event: Added.make({ n: 1 }) }]
      }),
    snapshot: Snapshot.make({ state: Schema.Int, version: 2, after: { events: 1 } })
  })
  return { command, seen }
}

const Tally = counter("Tally")
const Count = counter("Count")

/** Three runs each of Tally on a-1 and a-2 and of Count on b-1: snapshots of Tally on two streams, of Count on one. */
const seed = (layer: Layer.Layer<EventStore.EventStore, unknown>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      for (let i = 0; i < 3; i++) {
        yield* execute(Tally.command, { id: "a-1" })
        yield* execute(Tally.command, { id: "a-2" })
        yield* execute(Count.command, { id: "b-1" })
      }
      yield* Snapshot.awaitWrites
    }).pipe(Effect.provide(layer))
  )

const header = "COMMAND  STATE VERSION  SNAPSHOTS  UPDATED                   EVENT VERSIONS"
const timestamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z"

/** One line of `snapshots`: state version 2, of the event schema `Added@1`. */
const row = (command: string, count: number) => new RegExp(`^${command} {16}2 {10}${count} {2}${timestamp} {2}Added@1$`)

/** Checks what `snapshots` printed for the seeded store (Count's one snapshot, then Tally's two); its lines. */
const expectSeededListing = (stdout: string) => {
  const lines = linesOf(stdout)
  expect(lines).toHaveLength(3)
  expect(lines[0]).toBe(header)
  expect(lines[1]).toMatch(row("Count", 1))
  expect(lines[2]).toMatch(row("Tally", 2))
  return lines
}

const expectDone = (run: Run) => {
  expect(run.stderr).toBe("")
  expect(run.code).toBe(0)
}

describe("eventcore snapshots on PGlite", () => {
  it("lists each command's snapshots, clears one command's then every one's; commands fold on to the same results", async () => {
    const dataDir = await initialisedDataDir(join(scratch, "store"))
    const where = ["--data-dir", dataDir]
    const started = new Date()
    await seed(PgliteEventStore.layer({ dataDir }))

    // One process at a time: a PGlite data directory has one owner.
    const listed = await cli(["snapshots", ...where])
    const json = await cli(["snapshots", "--json", ...where])
    const tally = await cli(["snapshots", "--command", "Tally", ...where])
    for (const run of [listed, json, tally]) expectDone(run)
    const lines = expectSeededListing(listed.stdout)
    const parsed = JSON.parse(json.stdout) as ReadonlyArray<Record<string, unknown>>
    expect(parsed.map(({ updatedAt: _, ...rest }) => rest)).toEqual([
      { command: "Count", stateVersion: 2, eventVersions: "Added@1", count: 1 },
      { command: "Tally", stateVersion: 2, eventVersions: "Added@1", count: 2 }
    ])
    for (const { updatedAt } of parsed) {
      expect(new Date(updatedAt as string).getTime()).toBeGreaterThanOrEqual(started.getTime() - 1000)
    }
    expect(linesOf(tally.stdout)).toEqual([header, lines[2]])

    const clearTally = await cli(["snapshots", "clear", "--command", "Tally", ...where])
    expectDone(clearTally)
    expect(clearTally.stdout).toBe('removed 2 snapshots of "Tally"\n')
    expect(linesOf((await cli(["snapshots", ...where])).stdout)).toEqual([header, lines[1]])

    const clearAll = await cli(["snapshots", "clear", ...where])
    expectDone(clearAll)
    expect(clearAll.stdout).toBe("removed 1 snapshot\n")
    const again = await cli(["snapshots", "clear", ...where])
    const none = await cli(["snapshots", ...where])
    const noneJson = await cli(["snapshots", "--json", ...where])
    expect(again.stdout).toBe("removed 0 snapshots\n")
    expect(none.stdout).toBe("no snapshots\n")
    expect(noneJson.stdout).toBe("[]\n")

    // Without their snapshots, commands fold their streams in full: the same states, and snapshots again.
    Tally.seen.length = 0
    Count.seen.length = 0
    await Effect.runPromise(
      Effect.gen(function* () {
        yield* execute(Tally.command, { id: "a-1" })
        yield* execute(Count.command, { id: "b-1" })
        yield* Snapshot.awaitWrites
      }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
    )
    expect([Tally.seen, Count.seen]).toEqual([[3], [3]])
    const rewritten = linesOf((await cli(["snapshots", ...where])).stdout)
    expect(rewritten).toHaveLength(3)
    expect(rewritten[1]).toMatch(row("Count", 1))
    expect(rewritten[2]).toMatch(row("Tally", 1))
  }, 120_000)

  it("a schema from before snapshots (0011) is named, with the migration to apply, and left as it was", async () => {
    const dataDir = await initialisedDataDir(join(scratch, "before-0011"))
    const inspect = async (body?: (db: PGlite) => Promise<void>) => {
      const db = await PGlite.create({ dataDir })
      try {
        await body?.(db)
        const [row] = (
          await db.query<{ applied: number; table: string | null }>(
            "select (select count(*)::int from eventcore.migrations) as applied, to_regclass('eventcore.snapshots')::text as table"
          )
        ).rows
        return row
      } finally {
        await db.close()
      }
    }
    const before = await inspect((db) =>
      migrateUntil("0011_snapshots")({
        query: async (text, params) => (await db.query(text, params as Array<unknown>)).rows as never
      })
    )
    expect(before).toEqual({ applied: 11, table: null })
    const runs = [
      await cli(["snapshots", "--data-dir", dataDir]),
      await cli(["snapshots", "clear", "--data-dir", dataDir])
    ]
    for (const [run, command] of [
      [runs[0], "snapshots"],
      [runs[1], "snapshots clear"]
    ] as const) {
      expectOneLineError(
        run as Run,
        command,
        `PGlite in ${dataDir} has eventcore's schema of an older release: pending migrations 0011_snapshots, 0012_one_stream_append, 0013_personal_data, 0014_stream_lifecycle, which this release needs to read it: apply them with \`eventcore migrate\``
      )
      expect(run?.stdout).toBe("")
    }
    expect(await inspect()).toEqual(before)
  }, 120_000)
})

describeServer("eventcore snapshots on PostgreSQL", () => {
  const server = usePostgresTemplate()

  it(
    "a role that may only select lists them and is refused clearing them, which changes nothing; the owner clears them",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url, database } = yield* server.freshDatabase
            yield* Effect.promise(() => seed(PostgresEventStore.layer({ url, maxConnections: 2 })))
            // As docs/security.md grants a read-only role.
            const reader = `eventcore_reader_${randomUUID().replaceAll("-", "").slice(0, 12)}`
            const owner = postgres(url, { max: 1, onnotice: () => {} })
            yield* Effect.acquireRelease(
              Effect.promise(() =>
                owner.unsafe(`create role ${reader} login;
                grant usage on schema eventcore to ${reader};
                grant select on all tables in schema eventcore to ${reader}`)
              ),
              () =>
                Effect.promise(async () => {
                  await owner.end()
                  await server.adminClient().unsafe(`drop database if exists ${database} with (force)`)
                  await server.adminClient().unsafe(`drop role if exists ${reader}`)
                })
            )
            const asReader = new URL(url)
            asReader.username = reader
            const [listed, refused] = yield* Effect.promise(() =>
              Promise.all([
                cli(["snapshots", "--url", asReader.toString()]),
                cli(["snapshots", "clear", "--command", "Tally", "--url", asReader.toString()])
              ])
            )
            expectDone(listed)
            expectSeededListing(listed.stdout)
            expectOneLineError(
              refused,
              "snapshots clear",
              "this role may not remove snapshots (permission denied for table snapshots): clearing them needs DELETE on the snapshots table, which only the owner of eventcore's schema has (docs/security.md); run it as the owner"
            )
            const count = () =>
              Effect.promise(() =>
                owner<{ n: number }[]>`select count(*)::int as n from eventcore.snapshots`.then((rows) => rows[0]?.n)
              )
            expect(yield* count()).toBe(3)

            const cleared = yield* Effect.promise(() => cli(["snapshots", "clear", "--url", url]))
            expectDone(cleared)
            expect(cleared.stdout).toBe("removed 3 snapshots\n")
            expect(yield* count()).toBe(0)
          })
        )
      ),
    120_000
  )
})
