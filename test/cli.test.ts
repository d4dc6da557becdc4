/**
 * The real `eventcore` command line, spawned as a user would run it.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { Effect } from "effect"
import { EventStore, PgliteEventStore, StreamId } from "eventcore"
import { writesOf } from "eventcore/testing"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { programHelp } from "../src/cli/args.js"
import { program } from "../src/cli/program.js"
import { lockDataDir } from "../src/pglite/dataDirLock.js"
import { bundle } from "./support/bundle.js"
import {
  cli,
  expectArgumentError,
  expectOneLineError,
  linesOf,
  type Run,
  start,
  type TailedEvent,
  waitForOutput
} from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { snapshot, startWriter } from "./support/writerProcess.js"

/** The cluster state in global/pg_control (after the 64-bit system id and two 32-bit versions): 1 is "shut down". */
const clusterState = (dataDir: string) => readFileSync(join(dataDir, "global", "pg_control")).readUInt32LE(16)
const shutDown = 1

/** The lines `tail` prints for events it read in one page: columns padded to the widest value. */
const humanLines = (events: ReadonlyArray<TailedEvent>) => {
  const where = events.map((event) => `${event.streamId}@${event.streamVersion}`)
  const whereWidth = Math.max(...where.map((text) => text.length))
  const typeWidth = Math.max(...events.map((event) => event.eventType.length))
  return events.map(
    (event, i) =>
      `${event.position}  ${event.recordedAt}  ${where[i]?.padEnd(whereWidth)}  ${event.eventType.padEnd(typeWidth)}  ${JSON.stringify(event.data)}`
  )
}

describe("eventcore CLI on PGlite", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "eventcore-cli-"))
  let demo: Run
  beforeAll(async () => {
    demo = await cli(["demo", "--accounts", "3", "--transfers", "40", "--concurrency", "4", "--data-dir", dataDir])
  }, 120_000)
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
  /** The whole log, as `tail --json` printed it. */
  let logged: ReadonlyArray<TailedEvent> = []

  it("the demo runs transfers, prints the summary and passes its invariant check", () => {
    expect(demo.stderr).toBe("")
    expect(demo.code).toBe(0)
    expect(demo.stdout).toContain(`eventcore bank demo on PGlite in ${dataDir}`)
    expect(demo.stdout).toMatch(/progress: \d+\/40 commands, .*, projection lag \d+ events\n/)
    expect(demo.stdout).toMatch(/commands succeeded\s+\d+/)
    expect(demo.stdout).toMatch(/projection lag, most seen\s+\d+ events/)
    for (const check of [
      "total money unchanged",
      "no negative balance",
      "versions gap-free",
      "every event decodes",
      "read model equals balances"
    ]) {
      expect(demo.stdout).toMatch(new RegExp(`ok\\s+${check}`))
    }
    expect(demo.stdout).toMatch(
      /ok {4}read model equals balances +3 rows, caught up \d+\.\d s after the last transfer\n/
    )
    expect(demo.stdout).toContain("all invariants hold")
  })

  it("streams and read print what the demo wrote", async () => {
    const streams = await cli(["streams", "--prefix", "account-demo-", "--data-dir", dataDir])
    expect(streams.code).toBe(0)
    const rows = streams.stdout
      .trim()
      .split("\n")
      .map((line) => line.split(/\s+/))
    expect(rows).toHaveLength(3)
    const [streamId, version] = rows[0] as [string, string]
    expect(Number(version)).toBeGreaterThanOrEqual(2)

    const json = await cli(["read", streamId, "--json", "--data-dir", dataDir])
    expect(json.code).toBe(0)
    const events = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line))
    expect(events.map((e) => e.streamVersion)).toEqual(Array.from({ length: Number(version) }, (_, i) => i + 1))
    expect(events[0]).toMatchObject({ streamId, eventType: "AccountOpened" })
    expect(events[1]).toMatchObject({ eventType: "MoneyDeposited", data: { amount: 100_000 } })

    // Options as --name=value and before the argument, as well as after it.
    const readable = await cli(["read", "--from=2", "--limit", "1", streamId, "--data-dir", dataDir])
    expect(readable.code).toBe(0)
    expect(readable.stdout).toMatch(/^2 {2}\S+ {2}#\d+ {2}MoneyDeposited {2}\{"amount":100000\}\n/)
    expect(readable.stdout).toContain(`${streamId}: version ${version}`)
    expect(readable.stdout.trim().split("\n")).toHaveLength(2)

    const first = await cli(["streams", "--prefix=account-demo-", "--limit=1", `--data-dir=${dataDir}`])
    expect(first.code).toBe(0)
    expect(first.stdout.trim().split("\n")).toEqual([streams.stdout.trim().split("\n")[0]])

    const stats = await cli(["stats", "--data-dir", dataDir])
    expect(stats.code).toBe(0)
    expect(stats.stdout).toMatch(/streams\s+3\n/)
    expect(stats.stdout).toMatch(/AccountOpened\s+3\n/)

    const migrate = await cli(["migrate", "--data-dir", dataDir])
    expect(migrate.stdout).toContain("up to date, no migration applied")
  }, 120_000)

  it("tail prints the global log in log order, filtered, after a position, up to a limit; status names its head", async () => {
    const all = await cli(["tail", "--json", "--data-dir", dataDir])
    expect(all.stderr).toBe("")
    expect(all.code).toBe(0)
    const events = linesOf(all.stdout).map((line) => JSON.parse(line) as TailedEvent)
    logged = events
    expect(events.length).toBeGreaterThan(6)
    // Log order: strictly increasing positions, and each stream's versions 1, 2, 3... in turn.
    const positions = events.map((event) => event.position)
    expect(positions).toEqual([...new Set(positions)].sort())
    const versions = new Map<string, Array<number>>()
    for (const event of events)
      versions.set(event.streamId, [...(versions.get(event.streamId) ?? []), event.streamVersion])
    expect(versions.size).toBe(3)
    for (const seen of versions.values()) expect(seen).toEqual(seen.map((_, i) => i + 1))
    expect(events[0]).toMatchObject({
      eventType: "AccountOpened",
      streamVersion: 1,
      globalPosition: expect.any(String)
    })

    // Two types of one account's stream (a literal prefix), after the third event, at most two.
    const after = (events[2] as TailedEvent).position
    const types = ["MoneyDeposited", "TransferReceived"]
    const prefix = (events[2] as TailedEvent).streamId
    const matching = events.filter(
      (event) => event.position > after && types.includes(event.eventType) && event.streamId.startsWith(prefix)
    )
    expect(matching.length).toBeGreaterThan(2)
    const tail = await cli([
      "tail",
      ...["--after", after, "--type", types[0] as string, `--type=${types[1]}`, "--prefix", prefix, "--limit", "2"],
      ...["--data-dir", dataDir]
    ])
    expect(tail.stderr).toBe("")
    expect(tail.code).toBe(0)
    expect(linesOf(tail.stdout)).toEqual(humanLines(matching.slice(0, 2)))

    const status = await cli(["status", "--data-dir", dataDir])
    expect(status.stderr).toBe("")
    expect(status.code).toBe(0)
    const last = positions.at(-1) as string
    expect(status.stdout).toContain(`database     PGlite in ${dataDir}\n`)
    expect(status.stdout).toMatch(/^schema {7}eventcore: \d+ migrations applied, none pending$/m)
    expect(status.stdout).toContain(`log head     ${last} (the last committed event)\n`)
    expect(status.stdout).toContain(`readable     ${last} (the last event readers can read now)\n`)
    expect(status.stdout).toContain("held back    none: every committed event is readable\n")
  }, 120_000)

  it("projections lists the demo's read model, stopped with the demo, caught up; --json parses", async () => {
    const human = await cli(["projections", "--data-dir", dataDir])
    expect(human.stderr).toBe("")
    expect(human.code).toBe(0)
    const [header, row, ...more] = linesOf(human.stdout)
    expect(more).toEqual([])
    expect(header).toMatch(/^NAME +KIND +STATUS +POSITION +LAG +OWNER +UPDATED +ERROR$/)
    expect(row).toMatch(/^bank-balances +projection +stopped +\d{20}-\d{19} +0 +- +\S+Z +-$/)

    const json = await cli(["projections", "--json", "--data-dir", dataDir])
    expect(json.stderr).toBe("")
    expect(json.code).toBe(0)
    expect(linesOf(json.stdout)).toHaveLength(1)
    const [projection, ...others] = JSON.parse(json.stdout) as ReadonlyArray<{
      readonly position: string
      readonly updatedAt: string
    }>
    expect(others).toEqual([])
    expect(projection).toEqual({
      name: "bank-balances",
      kind: "projection",
      status: "stopped",
      position: expect.stringMatching(/^\d{20}-\d{19}$/),
      lag: 0,
      owner: null,
      updatedAt: expect.any(String),
      error: null
    })
    // The same position as the table's, at or past the last event of the log (as tail printed it).
    expect(row).toContain(projection?.position)
    expect(logged.length).toBeGreaterThan(0)
    expect((projection?.position ?? "") >= (logged.at(-1) as TailedEvent).position).toBe(true)
    expect(Number.isNaN(Date.parse(projection?.updatedAt ?? ""))).toBe(false)
  }, 120_000)

  it("tail --follow on PGlite prints the log, then waits; SIGTERM closes the database and exits 143", async () => {
    // The whole log, as the test above read it.
    expect(logged.length).toBeGreaterThan(0)
    const following = start(["tail", "--follow", "--data-dir", dataDir])
    // Only the command line holds the directory, so nothing new comes: following one live needs the owning application.
    await waitForOutput(following, (stdout) => stdout.includes((logged.at(-1) as TailedEvent).position))
    expect(clusterState(dataDir)).not.toBe(shutDown)
    following.child.kill("SIGTERM")
    const run = await following.done
    expect(run.stderr).toBe("")
    expect(run).toMatchObject({ code: 143, signal: null })
    // Fewer events than a page: read, and aligned, as one.
    expect(logged.length).toBeLessThan(EventStore.defaultPageSize)
    expect(linesOf(run.stdout)).toEqual(humanLines(logged))
    // PGlite was closed, not abandoned: it wrote a shutdown checkpoint.
    expect(clusterState(dataDir)).toBe(shutDown)
  }, 120_000)

  it("a missing stream is a one-line error; after -- everything is an argument, --help too", async () => {
    // (A bad stream id, refused before the database is opened, is in test/cliParse.test.ts.)
    expectOneLineError(await cli(["read", "--data-dir", dataDir, "--", "--help"]), "read", 'stream "--help" not found')
  }, 120_000)
})

describe("eventcore CLI on a data directory another process owns", () => {
  it("says so in one line naming the holder's pid, exits 1, and changes nothing", async () => {
    const parent = mkdtempSync(join(tmpdir(), "eventcore-cli-held-"))
    onTestFinished(() => rmSync(parent, { recursive: true, force: true }))
    const dataDir = await initialisedDataDir(join(parent, "events"))
    const holder = startWriter(dataDir, 3, "hold")
    try {
      await holder.printed("ready")
      const pid = Number(/^open (\d+)$/m.exec(holder.stdout())?.[1])
      const before = snapshot(dataDir)
      const commands = [["stats"], ["streams"], ["read", "writer"], ["migrate"], ["demo", "--transfers", "2"]]
      const runs = await Promise.all(commands.map((args) => cli([...args, "--data-dir", dataDir])))
      for (const [i, args] of commands.entries()) {
        const run = runs[i] as Run
        expectOneLineError(
          run,
          args[0] as string,
          `the PGlite data directory ${dataDir} is in use by process ${pid}, since ${/^.* since (\S+)\. /.exec(run.stderr)?.[1]}. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory`
        )
        expect(run.stdout).toBe(args[0] === "demo" ? `eventcore bank demo on PGlite in ${dataDir}\n` : "")
      }
      expect(snapshot(dataDir)).toEqual(before)
    } finally {
      holder.child.stdin.end()
      await holder.exited
    }
  }, 120_000)
})

describe("eventcore CLI on a data directory whose holder has not written it yet", () => {
  it("says it is in use, naming the holder, not that it is no PGlite directory; creates nothing", async () => {
    // This process holds the lock, as a store does from before PGlite writes its first file.
    const parent = mkdtempSync(join(tmpdir(), "eventcore-cli-held-"))
    onTestFinished(() => rmSync(parent, { recursive: true, force: true }))
    const dataDir = join(parent, "events")
    const runs = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(lockDataDir(dataDir), () =>
          Effect.promise(async () => {
            mkdirSync(dataDir)
            return Promise.all([cli(["stats", "--data-dir", dataDir]), cli(["migrate", "--data-dir", dataDir])])
          })
        )
      )
    )
    for (const [run, command] of [
      [runs[0], "stats"],
      [runs[1], "migrate"]
    ] as const) {
      expectOneLineError(
        run as Run,
        command,
        `the PGlite data directory ${dataDir} is in use by process ${process.pid}, since ${/^.* since (\S+)\. /.exec(run?.stderr ?? "")?.[1]}. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory`
      )
    }
    expect(readdirSync(dataDir)).toEqual([])
  }, 60_000)
})

describe("eventcore CLI: Ctrl-C and SIGTERM", () => {
  it.concurrent.each(["SIGINT", "SIGTERM"] as const)(
    "%s interrupts the demo, closes the database and exits with 128 + the signal's number",
    async (signal) => {
      const dataDir = await initialisedDataDir(mkdtempSync(join(tmpdir(), "eventcore-cli-signal-")))
      try {
        const run = start(["demo", "--accounts", "3", "--transfers", "1000000", "--data-dir", dataDir])
        // The demo prints its progress once a second once the transfers have begun.
        await waitForOutput(run, (stdout) => stdout.includes("progress:"), 110_000)
        expect(clusterState(dataDir)).not.toBe(shutDown)
        run.child.kill(signal)
        const result = await run.done
        expect(result.stderr).toBe("")
        expect(result).toMatchObject({ code: signal === "SIGINT" ? 130 : 143, signal: null })
        expect(result.stdout).not.toContain("invariants")
        // PGlite was closed, not abandoned: it wrote a shutdown checkpoint.
        expect(clusterState(dataDir)).toBe(shutDown)
      } finally {
        rmSync(dataDir, { recursive: true, force: true })
      }
    },
    120_000
  )
})

describe("eventcore CLI: the process's output and exit codes", () => {
  // Every argument error, help text and usage error is checked in-process in
  // test/cliParse.test.ts; these prove that main.ts prints them where they belong.
  it("an argument error is one line on stderr naming the help to read, nothing on stdout, and exit code 2", async () => {
    expectArgumentError(
      await cli(["streams", "--limt", "5"]),
      "unknown option --limt; did you mean --limit?",
      "streams"
    )
  }, 60_000)

  it("no command prints the help on stderr and exits 2", async () => {
    const run = await cli([])
    expect(run.code).toBe(2)
    expect(run.stdout).toBe("")
    expect(run.stderr).toBe(programHelp(program))
    expect(run.stderr).toContain("Usage: eventcore <command> [options]")
  }, 60_000)

  it("--help prints the help on stdout and exits 0", async () => {
    const run = await cli(["--help"])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toBe(programHelp(program))
  }, 60_000)

  it("--version prints the version in package.json", async () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as {
      version: string
    }
    const run = await cli(["--version"])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toBe(`${version}\n`)
  }, 60_000)

  it("an unreachable database is a one-line error that hides the password", async () => {
    const run = await cli(["streams", "--url", "postgres://app:hunter2@127.0.0.1:1/db"])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(
      /^eventcore streams: cannot reach PostgreSQL \(ECONNREFUSED: [^\n]*\): check the URL and that the server is running\n$/
    )
    expect(run.stderr.trim().split("\n")).toHaveLength(1)
    expect(run.stderr).not.toContain("hunter2")
  }, 60_000)
})

describe("eventcore CLI: check", () => {
  const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-check-"))
  const dataDir = join(scratch, "events")
  /** test/fixtures/check/cartEvents.ts as JavaScript, from the directory the command line runs in. */
  let module = ""
  beforeAll(async () => {
    const [bundled] = await Promise.all([
      bundle(join("test", "fixtures", "check", "cartEvents.ts"), "cartEvents"),
      // The cart's events as three releases stored them: ItemAdded first named ProductAdded, then at versions 1 and 2.
      Effect.runPromise(
        Effect.flatMap(EventStore.EventStore, (events) =>
          events.append(
            writesOf({
              streamId: StreamId.unsafeMake("cart-1"),
              expected: "no_stream",
              events: [
                { eventType: "ProductAdded", data: { sku: "A-1" } },
                { eventType: "ItemAdded", schemaVersion: 1, data: { sku: "B-2" } },
                { eventType: "ItemAdded", schemaVersion: 2, data: { sku: "C-3", quantity: 2 } }
              ]
            })
          )
        ).pipe(Effect.provide(PgliteEventStore.layer({ dataDir: await initialisedDataDir(dataDir) })))
      )
    ])
    module = relative(join(import.meta.dirname, ".."), bundled)
  }, 120_000)
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it("every stored event type and version decodes with the module's event schemas: one line each, exit 0", async () => {
    const run = await cli(["check", module, "--data-dir", dataDir])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(linesOf(run.stdout)).toEqual([
      "TYPE          VERSION  EVENTS  OUTCOME  ERROR",
      "ItemAdded           1       1  decoded  -",
      "ItemAdded           2       1  decoded  -",
      "ProductAdded        1       1  decoded  -",
      "3 stored (event type, schema version) pairs checked with CartEvent: none would stop a reader"
    ])
  }, 60_000)

  it("a stored type the schemas named by --export do not read: exit 1, naming it", async () => {
    const run = await cli(["check", module, "--export", "beforeTheRename", "--json", "--data-dir", dataDir])
    expectOneLineError(
      run,
      "check",
      "1 of 3 stored (event type, schema version) pairs would stop a reader: ProductAdded version 1 (unknown)"
    )
    expect(JSON.parse(run.stdout)).toMatchObject({
      database: `PGlite in ${dataDir}`,
      schemas: ["beforeTheRename[0]"],
      types: [
        { eventType: "ItemAdded", schemaVersion: 1, count: 1, outcome: "decoded", readBy: ["beforeTheRename[0]"] },
        { eventType: "ItemAdded", schemaVersion: 2, count: 1, outcome: "decoded", error: null },
        { eventType: "ProductAdded", schemaVersion: 1, count: 1, outcome: "unknown", readBy: [] }
      ],
      failures: 1
    })
  }, 60_000)
})
