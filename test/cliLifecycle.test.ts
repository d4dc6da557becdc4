/**
 * `eventcore erase`, `archive`, `truncate` and `purge`, spawned as a user
 * runs them: each says in one line what it did (or that it had been done),
 * reads follow, and `stats` counts archived and truncated streams, the
 * events truncations hide and erased subjects. A schema from before 0013 or
 * 0014 keeps its `stats` as it was and names the migration a change needs.
 * On PostgreSQL a role the functions were not granted to is refused in one
 * line naming it and the grant, and nothing changes; a role granted one
 * runs it. (Without --yes each is a usage error: test/cliParse.test.ts.)
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { Effect, type Layer, Schema } from "effect"
import {
  Command,
  EventStore,
  execute,
  PersonalData,
  PgliteEventStore,
  PostgresEventStore,
  Snapshot,
  StreamId
} from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { afterAll, describe, expect, it } from "vitest"
import { addItems, migrateUntil } from "./sql/upgrade.js"
import { cli, expectOneLineError, linesOf, type Run } from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { describeServer, usePostgresTemplate } from "./support/postgres.js"

const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-lifecycle-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const Added = Schema.TaggedStruct("Added", { n: Schema.Int })

/** A counter that snapshots its state after every event: what an erasure removes. */
const Tally = Command.make({
  name: "Tally",
  event: Added,
  streams: (input: { readonly id: string }) => [StreamId.unsafeMake(input.id)],
  initialState: 0,
  apply: (count: number, event) => count + event.n,
  decide: (_count, input) => Effect.succeed([{ streamId: StreamId.unsafeMake(input.id), event: Added.make({ n: 1 }) }]),
  snapshot: Snapshot.make({ state: Schema.Int, version: 1, after: { events: 1 } })
})

/**
 * account-a1 (its holder's name personal data of subject holder-a1),
 * order-1 (5 events), order-2 (2 events), and tally-1 (2 events, one
 * snapshot): 10 events in 4 streams.
 */
const seed = (layer: Layer.Layer<EventStore.EventStore, unknown>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append(
        writesOf({
          streamId: StreamId.unsafeMake("account-a1"),
          expected: "no_stream",
          events: [
            { eventType: "AccountOpened", data: { holder: PersonalData.value("holder-a1", "Ada Zelinski-4471") } }
          ]
        })
      )
      yield* store.append(
        writesOf({ streamId: StreamId.unsafeMake("order-1"), expected: "no_stream", events: testEvents(5) })
      )
      yield* store.append(
        writesOf({ streamId: StreamId.unsafeMake("order-2"), expected: "no_stream", events: testEvents(2) })
      )
      yield* execute(Tally, { id: "tally-1" })
      yield* execute(Tally, { id: "tally-1" })
      yield* Snapshot.awaitWrites
    }).pipe(Effect.provide(layer))
  )

const timestamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z"
const position = "\\d{20}-\\d{19}"

const expectDone = (run: Run) => {
  expect(run.stderr).toBe("")
  expect(run.code).toBe(0)
}

/** The lines `stats` prints between `streams` and `database`. */
const countedLines = (stdout: string) => {
  const lines = linesOf(stdout)
  return lines.slice(
    lines.findIndex((line) => line.startsWith("streams ")) + 1,
    lines.findIndex((line) => line.startsWith("database "))
  )
}

/** What `erase` prints for holder-a1, erased by dpo: when, and where SubjectErased stands in the log. */
const erasedLine = new RegExp(
  `^erased subject "holder-a1" \\(by dpo at (${timestamp})\\): its personal data unreadable from now on, 1 snapshot removed, SubjectErased at (${position}) in eventcore-erasures\\n$`
)

/** Each change with --yes, and the line a role it was not granted to gets. */
const changes = [
  {
    argv: ["erase", "--subject", "holder-a1", "--by", "dpo", "--yes"],
    refused: "erase subjects: it needs EXECUTE on eventcore.erase_subject"
  },
  { argv: ["archive", "order-2", "--yes"], refused: "archive streams: it needs EXECUTE on eventcore.archive_stream" },
  {
    argv: ["truncate", "order-1", "--before", "3", "--yes"],
    refused: "truncate streams: it needs EXECUTE on eventcore.truncate_stream"
  },
  { argv: ["purge", "--yes"], refused: "purge truncated events: it needs EXECUTE on eventcore.purge_truncated" }
] as const

describe("eventcore erase, archive, truncate and purge on PGlite", () => {
  it("each says what it did, or that it was done already; reads follow; stats counts them", async () => {
    const dataDir = await initialisedDataDir(join(scratch, "store"))
    const where = ["--data-dir", dataDir]
    await seed(PgliteEventStore.layer({ dataDir }))
    // One process at a time: a PGlite data directory has one owner.
    const run = (argv: ReadonlyArray<string>) => cli([...argv, ...where])

    const before = await run(["stats"])
    expectDone(before)
    expect(before.stdout).toMatch(/^events {7}10\nstreams {6}4\n/)
    expect(countedLines(before.stdout)).toEqual([
      "archived     0 streams",
      "truncated    0 streams",
      "subjects     0 erased, 1 with a key"
    ])

    const erased = await run(["erase", "--subject", "holder-a1", "--by", "dpo", "--yes"])
    expectDone(erased)
    expect(erased.stdout).toMatch(erasedLine)
    const [, erasedAt, erasedPosition] = erasedLine.exec(erased.stdout) ?? []
    const again = await run(["erase", "--subject", "holder-a1", "--by", "someone else", "--yes"])
    expectDone(again)
    expect(again.stdout).toBe(`subject "holder-a1" was already erased by dpo at ${erasedAt}: nothing changed\n`)
    const account = await run(["read", "account-a1", "--json"])
    expect(JSON.parse(account.stdout)).toMatchObject({ data: { holder: { $erased: { subject: "holder-a1" } } } })
    const log = await run(["tail", "--json", "--type", "SubjectErased"])
    expect(JSON.parse(log.stdout)).toMatchObject({
      position: erasedPosition,
      streamId: "eventcore-erasures",
      data: { subject: "holder-a1" }
    })

    const archived = await run(["archive", "order-2", "--yes"])
    expectDone(archived)
    expect(archived.stdout).toBe(
      'archived stream "order-2" at version 2: its reads and appends are refused from now on; its events stay in the global log\n'
    )
    expect((await run(["archive", "order-2", "--yes"])).stdout).toMatch(
      new RegExp(`^stream "order-2" was already archived at ${timestamp} \\(version 2\\): nothing changed\\n$`)
    )
    expectOneLineError(
      await run(["read", "order-2"]),
      "read",
      'stream "order-2" is archived: it is no longer read or appended to'
    )
    expectOneLineError(await run(["archive", "order-9", "--yes"]), "archive", 'stream "order-9" not found')

    const truncated = await run(["truncate", "order-1", "--before", "3", "--yes"])
    expectDone(truncated)
    expect(truncated.stdout).toBe(
      'truncated stream "order-1" before version 3 (of 5): reads and commands start there; the events before it stay in the global log until `eventcore purge`\n'
    )
    expect((await run(["truncate", "order-1", "--before", "2", "--yes"])).stdout).toBe(
      'stream "order-1" is already truncated before version 3 (of 5): a truncation point never moves back; nothing changed\n'
    )
    expectOneLineError(
      await run(["truncate", "order-1", "--before", "6", "--yes"]),
      "truncate",
      'cannot truncate stream "order-1" before version 6: its version is 5, so truncate before 1 to 5 (its last event is always kept)'
    )
    expect(linesOf((await run(["read", "order-1"])).stdout).map((line) => line.split("  ")[0])).toEqual([
      "3",
      "4",
      "5",
      "order-1: version 5"
    ])

    const hidden = await run(["stats"])
    expectDone(hidden)
    // SubjectErased is one event more, in a stream of its own.
    expect(hidden.stdout).toMatch(/^events {7}11\nstreams {6}5\n/)
    expect(countedLines(hidden.stdout)).toEqual([
      "archived     1 stream",
      "truncated    1 stream, 2 events hidden until `eventcore purge` removes them",
      "subjects     1 erased, 0 with a key"
    ])

    const purged = await run(["purge", "--yes"])
    expectDone(purged)
    expect(purged.stdout).toBe("purged 2 events that truncations hid: removed for good, from the global log too\n")
    expect((await run(["purge", "--yes"])).stdout).toBe(
      "purged 0 events that truncations hid: removed for good, from the global log too\n"
    )
    const after = await run(["stats"])
    expectDone(after)
    // The events the purge removed are no longer counted, though order-1's version still is 5.
    expect(after.stdout).toMatch(/^events {7}9\n/)
    expect(after.stdout).toMatch(/^ {2}Tested {9}5$/m)
    expect(countedLines(after.stdout)).toEqual([
      "archived     1 stream",
      "truncated    1 stream, 0 events hidden",
      "subjects     1 erased, 0 with a key"
    ])
  }, 180_000)

  it("a schema from before 0013 or 0014: stats as before, and each change (and a stream's read) names the migrations it needs", async () => {
    const schemaBefore = async (tag: string) => {
      const dataDir = await initialisedDataDir(join(scratch, `before-${tag}`))
      const db = await PGlite.create({ dataDir })
      const raw = {
        query: async (text: string, params?: ReadonlyArray<unknown>) =>
          (await db.query(text, params as Array<unknown>)).rows as never
      }
      await migrateUntil(tag)(raw)
      await addItems(raw, "cart-1", 3)
      await db.close()
      return dataDir
    }
    for (const [tag, pending, counted] of [
      ["0013_personal_data", "0013_personal_data, 0014_stream_lifecycle", []],
      ["0014_stream_lifecycle", "0014_stream_lifecycle", ["subjects     0 erased, 0 with a key"]]
    ] as const) {
      const dataDir = await schemaBefore(tag)
      const behind = `PGlite in ${dataDir} has eventcore's schema of an older release: pending migrations ${pending}`
      const stats = await cli(["stats", "--data-dir", dataDir])
      expect(stats.code).toBe(0)
      expect(stats.stderr).toBe(
        `eventcore stats: ${behind} (apply them with \`eventcore migrate\`); reading it as it is\n`
      )
      expect(linesOf(stats.stdout).slice(0, 2)).toEqual(["events       3", "streams      1"])
      expect(countedLines(stats.stdout)).toEqual(counted)
      const refusals = [
        ...(tag === "0013_personal_data" ? [[changes[0].argv, "erase subjects"] as const] : []),
        [changes[1].argv, "archive streams"] as const,
        [changes[3].argv, "purge truncated events"] as const
      ]
      for (const [argv, does] of refusals) {
        expectOneLineError(
          await cli([...argv, "--data-dir", dataDir]),
          argv[0],
          `${behind}, which this release needs to ${does}: apply them with \`eventcore migrate\``
        )
      }
      // Reading a stream reads its state too (0014).
      expectOneLineError(
        await cli(["read", "cart-1", "--data-dir", dataDir]),
        "read",
        `${behind}, which this release needs to read it: apply them with \`eventcore migrate\``
      )
      const db = await PGlite.create({ dataDir })
      const { rows } = await db.query<{ n: number }>("select count(*)::int as n from eventcore.migrations")
      await db.close()
      expect(rows[0]?.n).toBe(tag === "0013_personal_data" ? 13 : 14)
    }
  }, 180_000)
})

describeServer("eventcore erase, archive, truncate and purge on PostgreSQL", () => {
  const server = usePostgresTemplate()

  it(
    "roles without the grants are refused in one line naming the role and the grant, changing nothing; a granted role and the owner run them",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url, database } = yield* server.freshDatabase
            yield* Effect.promise(() => seed(PostgresEventStore.layer({ url, maxConnections: 2 })))
            const suffix = randomUUID().replaceAll("-", "").slice(0, 12)
            const roleOf = (name: string) => `eventcore_${name}_${suffix}`
            const reader = roleOf("reader")
            const app = roleOf("app")
            const dpo = roleOf("dpo")
            const early = roleOf("early")
            const stranger = roleOf("stranger")
            const owner = postgres(url, { max: 1, onnotice: () => {} })
            yield* Effect.acquireRelease(
              Effect.promise(() =>
                owner.unsafe(`create role ${reader} login; create role ${app} login; create role ${dpo} login;
                create role ${early} login; create role ${stranger} login;
                grant usage on schema eventcore to ${reader}, ${app}, ${dpo}, ${early};
                -- A reader as docs/security.md grants it; one granted the schema's tables before 0013 made its own.
                grant select on all tables in schema eventcore to ${reader}, ${early};
                revoke select on eventcore.erasures, eventcore.subject_keys from ${early};
                -- The application role as docs/security.md grants it.
                grant select on eventcore.events, eventcore.streams to ${app};
                grant execute on function eventcore.append(jsonb) to ${app};
                grant select, insert, update on eventcore.snapshots to ${app};
                grant select, insert on eventcore.subject_keys to ${app};
                grant select on eventcore.erasures to ${app};
                -- Who erases, and only that.
                grant execute on function eventcore.erase_subject(text, text) to ${dpo}`)
              ),
              () =>
                Effect.promise(async () => {
                  await owner.end()
                  await server.adminClient().unsafe(`drop database if exists ${database} with (force)`)
                  await server
                    .adminClient()
                    .unsafe(`drop role if exists ${reader}, ${app}, ${dpo}, ${early}, ${stranger}`)
                })
            )
            const as = (role: string) => {
              const asRole = new URL(url)
              asRole.username = role
              return asRole.toString()
            }
            const state = () =>
              Effect.promise(() =>
                owner`select (select count(*)::int from eventcore.events) as events,
                             (select count(*)::int from eventcore.erasures) as erasures,
                             (select count(*)::int from eventcore.subject_keys) as keys,
                             (select count(*)::int from eventcore.stream_states) as states,
                             (select count(*)::int from eventcore.snapshots) as snapshots`.then((rows) => rows[0])
              )
            const seeded = yield* state()
            expect(seeded).toEqual({ events: 10, erasures: 0, keys: 1, states: 0, snapshots: 1 })

            const refusedRoles = [reader, app] as const
            const runs = yield* Effect.promise(() =>
              Promise.all(
                refusedRoles.flatMap((role) => changes.map((change) => cli([...change.argv, "--url", as(role)])))
              )
            )
            for (const [i, role] of refusedRoles.entries()) {
              for (const [j, change] of changes.entries()) {
                const run = runs[i * changes.length + j] as Run
                expectOneLineError(run, change.argv[0], `the role ${role} may not ${change.refused} (docs/erasure.md)`)
                expect(run.stdout).toBe("")
              }
            }
            // A role granted nothing is told it lacks the schema too.
            expectOneLineError(
              yield* Effect.promise(() => cli([...changes[3].argv, "--url", as(stranger)])),
              "purge",
              `the role ${stranger} may not purge truncated events: it needs USAGE on schema eventcore and EXECUTE on eventcore.purge_truncated (docs/erasure.md)`
            )
            expect(yield* state()).toEqual(seeded)

            // What a reader sees of erasures; the one from before 0013 is told what it lacks.
            const [asReader, asEarly] = yield* Effect.promise(() =>
              Promise.all([cli(["stats", "--url", as(reader)]), cli(["stats", "--url", as(early)])])
            )
            for (const run of [asReader, asEarly]) expectDone(run)
            expect(countedLines(asReader.stdout)).toEqual([
              "archived     0 streams",
              "truncated    0 streams",
              "subjects     0 erased, 1 with a key"
            ])
            expect(countedLines(asEarly.stdout)).toEqual([
              "archived     0 streams",
              "truncated    0 streams",
              "subjects     not visible to this role (it needs SELECT on eventcore.erasures and eventcore.subject_keys)"
            ])

            // Granted the function, not yet the history the command line checks the schema with.
            const [erase] = changes
            expectOneLineError(
              yield* Effect.promise(() => cli([...erase.argv, "--url", as(dpo)])),
              "erase",
              "this role may not read eventcore's migration history (permission denied for table migrations): the command line needs USAGE on schema eventcore and SELECT on eventcore.migrations (docs/security.md)"
            )
            yield* Effect.promise(() => owner.unsafe(`grant select on eventcore.migrations to ${dpo}`))
            const erased = yield* Effect.promise(() => cli([...erase.argv, "--url", as(dpo)]))
            expectDone(erased)
            expect(erased.stdout).toMatch(erasedLine)

            // The owner, one at a time: truncate, then purge what it hid.
            const owned = []
            for (const change of changes.slice(1)) {
              owned.push(yield* Effect.promise(() => cli([...change.argv, "--url", url])))
            }
            for (const run of owned) expectDone(run)
            expect(owned.map((run) => run.stdout)).toEqual([
              'archived stream "order-2" at version 2: its reads and appends are refused from now on; its events stay in the global log\n',
              'truncated stream "order-1" before version 3 (of 5): reads and commands start there; the events before it stay in the global log until `eventcore purge`\n',
              "purged 2 events that truncations hid: removed for good, from the global log too\n"
            ])
            expect(yield* state()).toEqual({ events: 9, erasures: 1, keys: 0, states: 2, snapshots: 0 })
            const stats = yield* Effect.promise(() => cli(["stats", "--url", url]))
            expectDone(stats)
            expect(stats.stdout).toMatch(/^events {7}9\n/)
            expect(countedLines(stats.stdout)).toEqual([
              "archived     1 stream",
              "truncated    1 stream, 0 events hidden",
              "subjects     1 erased, 0 with a key"
            ])
          })
        )
      ),
    180_000
  )
})
