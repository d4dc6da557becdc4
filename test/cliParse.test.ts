/**
 * The `eventcore` command line in-process: what `main.ts` prints for each
 * argument list (help, --version, argument errors, the usage errors a command
 * finds before it opens anything) comes from parseCommandLine over the
 * program, a pure function; what a failed command prints comes from running
 * its Effect. test/cliExitCodes.test.ts holds the exit codes, test/cli.test.ts
 * spawns the real process for the wiring and for everything that needs a
 * database.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Logger, LogLevel } from "effect"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { type CommandLine, type CommandSpec, parseCommand, parseCommandLine } from "../src/cli/args.js"
import { CommandFailed, failureLine } from "../src/cli/failures.js"
import { program, type Run, tailLines, warningLogger } from "../src/cli/program.js"
import { formatProjections, projectionsJson } from "../src/cli/projections.js"
import { clearedLine, formatSnapshots, snapshotsJson } from "../src/cli/snapshots.js"
import { defaultDemoOptions } from "../src/demo/demo.js"
import type { RecordedEvent } from "../src/Event.js"
import { StoreError, StreamNotFound } from "../src/errors.js"
import * as LogPosition from "../src/LogPosition.js"
import type { ProjectionStatus } from "../src/Projection.js"
import { lockDataDir } from "../src/pglite/dataDirLock.js"
import * as StreamId from "../src/StreamId.js"
import { storeError } from "../src/sql/errors.js"
import { literal } from "./support/cli.js"

const summaries = {
  migrate: "create or upgrade eventcore's schema (the migrations in drizzle/) and say what was applied",
  streams: "list streams with their versions",
  read: "print a stream's events (readable, or JSON lines with --json)",
  tail: "print the global log in log order, or follow it live with --follow",
  stats: "event and stream counts, archived and truncated streams, erased subjects, events per type, database size",
  status: "the global log's head, what readers can read, and what holds them back",
  projections: "every projection and reactor: status, position, lag, owner, last update and error",
  snapshots: "snapshots of command state, per command: state version, event versions, how many, last written",
  erase: "erase a data subject's personal data for good: its key destroyed, the erasure recorded (needs --yes)",
  archive: "archive a stream: its reads and appends refused from then on, its events kept in the log (needs --yes)",
  truncate: "hide a stream's events before a version from reads and commands (needs --yes; purge removes them)",
  purge: "remove for good the events truncations hid, from the global log too, and say how many (needs --yes)",
  demo: "run the bank demo: concurrent multi-stream transfers, then an invariant check"
}

const clearSummary = "remove stored snapshots of command state (a cache: commands then fold in full and write new ones)"

const commandLine = (argv: ReadonlyArray<string>): CommandLine<Run> => parseCommandLine(program, argv)

type Printed = Extract<CommandLine<Run>, { readonly _tag: "Print" }>

/** What the process would print, and where, and its exit code; fails if the line runs a command. */
const printed = (argv: ReadonlyArray<string>): Printed => {
  const line = commandLine(argv)
  if (line._tag !== "Print") throw new Error(`${JSON.stringify(argv)} runs a command instead of printing`)
  return line
}

/** Something wrong with the arguments: one line on stderr naming the command and the help to read, exit code 2. */
const expectArgumentError = (argv: ReadonlyArray<string>, message: string, command?: string) => {
  const who = command === undefined ? "eventcore" : `eventcore ${command}`
  expect(printed(argv)).toEqual({
    _tag: "Print",
    to: "stderr",
    text: `${who}: ${message} (see ${who} --help)\n`,
    exitCode: 2
  })
}

/** A help text on stdout with exit code 0. */
const help = (argv: ReadonlyArray<string>) => {
  const line = printed(argv)
  expect(line.to).toBe("stdout")
  expect(line.exitCode).toBe(0)
  return line.text
}

const spec = (name: keyof typeof summaries): CommandSpec => {
  const found = program.commands.find((c) => c.spec.name === name)
  if (found === undefined) throw new Error(`no command ${name}`)
  return found.spec
}

describe("eventcore CLI arguments: errors", () => {
  it("a wrong command, option, value or argument is one line naming the help to read, and exit code 2", () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string, string?]> = [
      [["frob"], 'unknown command "frob"'],
      [["stat"], 'unknown command "stat"; did you mean stats?'],
      [["tai"], 'unknown command "tai"; did you mean tail?'],
      [["tail", "--folow"], "unknown option --folow; did you mean --follow?", "tail"],
      [["help", "frob"], 'unknown command "frob"'],
      [["--verbose"], "unknown option --verbose"],
      [["--data-dir", "x", "stats"], "--data-dir goes after the command"],
      [["streams", "--bogus"], "unknown option --bogus", "streams"],
      [["streams", "--limt", "5"], "unknown option --limt; did you mean --limit?", "streams"],
      [["stats", "-x"], "unknown option -x", "stats"],
      [["demo", "--version"], "unknown option --version", "demo"],
      [["streams", "--limit"], "--limit needs a value", "streams"],
      [["read", "s", "--from", "--json"], "--from needs a value", "read"],
      [["read", "s", "--limit", "1.5"], '--limit expects an integer, got "1.5"', "read"],
      [["streams", "--limit=1e3"], '--limit expects an integer, got "1e3"', "streams"],
      [["demo", "--transfers", ""], '--transfers expects an integer, got ""', "demo"],
      [["read", "s", "--json=yes"], "--json takes no value", "read"],
      [["streams", "--limit", "1", "--limit", "2"], "--limit is given more than once", "streams"],
      [["stats", "extra"], 'unexpected argument "extra"', "stats"],
      [["read", "a", "b"], 'unexpected argument "b"', "read"],
      [["read"], "missing argument <streamId>", "read"],
      [["demo", "--accounts", "many"], '--accounts expects an integer, got "many"', "demo"],
      [["tail", "--type"], "--type needs a value", "tail"],
      [["tail", "--type", "--json"], "--type needs a value", "tail"],
      [["tail", "--follow=yes"], "--follow takes no value", "tail"],
      [["tail", "--limit", "all"], '--limit expects an integer, got "all"', "tail"],
      [["tail", "extra"], 'unexpected argument "extra"', "tail"],
      [["tail", "--prefix", "a", "--prefix", "b"], "--prefix is given more than once", "tail"],
      [["status", "--json", "extra"], 'unexpected argument "extra"', "status"],
      [["projections", "extra"], 'unexpected argument "extra"', "projections"],
      [["projections", "--json=yes"], "--json takes no value", "projections"],
      [["projection"], 'unknown command "projection"; did you mean projections?'],
      [["--type", "A", "tail"], "--type goes after the command"],
      [["snapshot"], 'unknown command "snapshot"; did you mean snapshots?'],
      // A word after a command with subcommands is one of them.
      [["snapshots", "purge"], 'unknown command "purge"', "snapshots"],
      [["snapshots", "cleer"], 'unknown command "cleer"; did you mean clear?', "snapshots"],
      [["snapshots", "--json", "clear"], 'unexpected argument "clear"', "snapshots"],
      [["snapshots", "--command"], "--command needs a value", "snapshots"],
      [["snapshots", "clear", "extra"], 'unexpected argument "extra"', "snapshots clear"],
      [["snapshots", "clear", "--json"], "unknown option --json", "snapshots clear"],
      [["snapshots", "clear", "--comand", "X"], "unknown option --comand; did you mean --command?", "snapshots clear"],
      [["help", "snapshots", "purge"], 'unknown command "purge"'],
      [["help", "snapshots", "clear", "extra"], 'unexpected argument "extra"'],
      // What erase, archive, truncate and purge cannot run without, found before --yes is asked for.
      [["erase", "--by", "dpo", "--yes"], "missing option --subject", "erase"],
      [["erase", "--subject", "c-1", "--yes"], "missing option --by", "erase"],
      [["erase", "--subject=", "--by", "dpo"], '--subject needs a subject\'s id, got ""', "erase"],
      [["erase", "--subject", "c-1", "--by="], '--by needs a name, got ""', "erase"],
      [["erase", "c-1"], 'unexpected argument "c-1"', "erase"],
      [["erase", "--yes=no"], "--yes takes no value", "erase"],
      [["archive", "--yes"], "missing argument <streamId>", "archive"],
      [["archive", " ", "--yes"], 'invalid stream id " ": must not be empty or only whitespace', "archive"],
      [["truncate", "order-1", "--yes"], "missing option --before", "truncate"],
      [["truncate", "order-1", "--before", "0"], "--before must be at least 1, got 0", "truncate"],
      [["truncate", "order-1", "--before", "v3"], '--before expects an integer, got "v3"', "truncate"],
      [["truncate", "--before", "3"], "missing argument <streamId>", "truncate"],
      [["purge", "extra"], 'unexpected argument "extra"', "purge"],
      [["purg"], 'unknown command "purg"; did you mean purge?']
    ]
    for (const [argv, message, command] of cases) expectArgumentError(argv, message, command)
  })
})

describe("eventcore CLI arguments: tail --after", () => {
  const after = (value: string) =>
    `--after expects a log position (20 digits, "-", 19 digits, as tail prints them), got ${JSON.stringify(value)}`

  it("a value that is not a log position is an argument error, found before any database is opened", () => {
    for (const value of [
      "12",
      "",
      "0000000000000000075-0000000000000000004",
      "00000000000000000754-0000000000000000004 ",
      "00000000000000000754_0000000000000000004",
      // 2^64 is past the largest transaction id, 2^63 past the largest position.
      "18446744073709551616-0000000000000000001",
      "00000000000000000754-9223372036854775808"
    ]) {
      // DATABASE_URL does not matter: nothing is opened to find this out.
      expectArgumentError(
        ["tail", `--after=${value}`, "--url", "postgres://nobody@127.0.0.1:1/x"],
        after(value),
        "tail"
      )
    }
  })

  it("a log position, the start and the largest one included, is accepted", () => {
    for (const value of [
      "00000000000000000754-0000000000000000004",
      "00000000000000000000-0000000000000000000",
      "18446744073709551615-9223372036854775807"
    ]) {
      expect(commandLine(["tail", "--after", value, "--data-dir", "/d"])._tag).toBe("Run")
    }
  })
})

describe("eventcore CLI arguments: help and version", () => {
  it("no command prints the help on stderr and exits 2", () => {
    const line = printed([])
    expect(line.to).toBe("stderr")
    expect(line.exitCode).toBe(2)
    expect(line.text).toContain("Usage: eventcore <command> [options]")
    for (const [name, summary] of Object.entries(summaries)) {
      expect(line.text).toMatch(new RegExp(`^ {2}${name} +${literal(summary)}$`, "m"))
    }
  })

  it("--help works on every command, before any other argument is checked", () => {
    for (const command of Object.keys(summaries) as Array<keyof typeof summaries>) {
      const text = help([command, "--bogus", "--help"])
      const takesStream = command === "read" || command === "archive" || command === "truncate"
      expect(text).toContain(`Usage: eventcore ${command}${takesStream ? " <streamId>" : ""} [options]`)
      expect(text).toContain(`${summaries[command].replace(/^./, (c) => c.toUpperCase())}.`)
      expect(text).toMatch(/^ {2}--data-dir DIR +a PGlite data directory/m)
      expect(text).toMatch(/^ {2}--url URL +a PostgreSQL URL \(default: the DATABASE_URL environment variable\)$/m)
    }
  })

  it("--help, -h and help list the commands on stdout", () => {
    const texts = [help(["--help"]), help(["-h"]), help(["help"])]
    for (const text of texts) {
      expect(text).toBe(texts[0])
      expect(text).toContain("Usage: eventcore <command> [options]")
      for (const [name, summary] of Object.entries(summaries)) {
        expect(text).toMatch(new RegExp(`^ {2}${name} +${literal(summary)}$`, "m"))
      }
      expect(text).toMatch(/^ {2}--version +print the version$/m)
    }
    // The same text as with no command, there on stderr.
    expect(printed([]).text).toBe(texts[0])
  })

  it("a command's help lists its options with their descriptions and defaults", () => {
    const streams = help(["streams", "--help"])
    const read = help(["read", "-h"])
    const demo = help(["demo", "--help"])
    expect(help(["help", "streams"])).toBe(streams)
    expect(streams).toMatch(/^ {2}--prefix TEXT +only streams whose id starts with this$/m)
    expect(streams).toMatch(/^ {2}--limit N +list at most this many streams \(default: 100\)$/m)
    expect(read).toMatch(/^Arguments:\n {2}<streamId> +the stream to read$/m)
    expect(read).toMatch(/^ {2}--from N +first version to show \(default: 1\)$/m)
    expect(read).toMatch(/^ {2}--limit N +show at most this many events \(default: all\)$/m)
    expect(read).toMatch(/^ {2}--json +one JSON object per line$/m)
    expect(demo).toMatch(new RegExp(`^ {2}--accounts N .*\\(default: ${defaultDemoOptions.accounts}\\)$`, "m"))
    expect(demo).toMatch(new RegExp(`^ {2}--transfers N .*\\(default: ${defaultDemoOptions.transfers}\\)$`, "m"))
    expect(demo).toMatch(new RegExp(`^ {2}--concurrency N .*\\(default: ${defaultDemoOptions.concurrency}\\)$`, "m"))
    expect(demo).toMatch(/^ {2}--data-dir DIR +a PGlite data directory \(default: a fresh temporary directory\)$/m)
    const tail = help(["tail", "--help"])
    expect(tail).toMatch(
      /^ {2}--after POS +print the events after this log position \(default: from the start of the log\)$/m
    )
    expect(tail).toMatch(/^ {2}--type TYPE +only events of this type \(repeatable: --type A --type B\)$/m)
    expect(tail).toMatch(/^ {2}--prefix TEXT +only events of streams whose id starts with this$/m)
    expect(tail).toMatch(/^ {2}--follow +keep printing events as they are committed, until Ctrl-C$/m)
    expect(tail).toMatch(/^ {2}--limit N +stop after this many events \(default: all\)$/m)
    expect(help(["status", "--help"])).toMatch(/^ {2}--json +one JSON object$/m)
    expect(help(["projections", "--help"])).toMatch(/^ {2}--json +one JSON array$/m)
    const erase = help(["erase", "--help"])
    expect(erase).toMatch(/^ {2}--subject ID +the data subject to erase, as events name it$/m)
    expect(erase).toMatch(/^ {2}--by NAME +who erases it, for the audit of erasures /m)
    expect(erase).toMatch(/^ {2}--yes +erase it \(without --yes the command only says what erasing does\)$/m)
    expect(help(["truncate", "--help"])).toMatch(
      /^ {2}--before VERSION +the version its reads start at, from 1 to its version \(its last event is kept\)$/m
    )
    expect(help(["archive", "--help"])).toMatch(/^Arguments:\n {2}<streamId> +the stream to archive$/m)
    expect(help(["purge", "--help"])).toMatch(/^ {2}--yes +remove them /m)
  })

  it("a subcommand is listed with its command and has a help of its own", () => {
    expect(help(["--help"])).toMatch(new RegExp(`^ {2}snapshots clear +${literal(clearSummary)}$`, "m"))
    const snapshots = help(["snapshots", "--help"])
    expect(snapshots).toMatch(/^ {2}--command NAME +only this command's snapshots$/m)
    expect(snapshots).toMatch(/^ {2}--json +one JSON array$/m)
    expect(snapshots).toMatch(new RegExp(`^Commands:\n {2}clear +${literal(clearSummary)}$`, "m"))
    expect(snapshots).toContain("Run 'eventcore snapshots <command> --help' for a command's options.")
    const clear = help(["snapshots", "clear", "--help"])
    for (const same of [
      ["help", "snapshots", "clear"],
      ["snapshots", "clear", "-h"],
      ["snapshots", "clear", "--bogus", "--help"]
    ]) {
      expect(help(same)).toBe(clear)
    }
    expect(clear).toContain("Usage: eventcore snapshots clear [options]")
    expect(clear).toContain(`${clearSummary.replace(/^./, (c) => c.toUpperCase())}.`)
    expect(clear).toMatch(/^ {2}--command NAME +only this command's snapshots \(default: every command's\)$/m)
    expect(clear).not.toContain("--json")
    expect(clear).not.toContain("Commands:")
    expect(commandLine(["snapshots", "clear", "--data-dir", "/d"])).toMatchObject({
      _tag: "Run",
      command: "snapshots clear"
    })
    expect(commandLine(["snapshots", "--data-dir", "/d"])).toMatchObject({ _tag: "Run", command: "snapshots" })
  })

  it("--version prints the version in package.json", () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as {
      version: string
    }
    expect(printed(["--version"])).toEqual({ _tag: "Print", to: "stdout", text: `${version}\n`, exitCode: 0 })
  })
})

describe("eventcore CLI arguments: forms", () => {
  it("options take --name=value and may come before the argument; after -- everything is an argument", () => {
    expect(parseCommand(spec("streams"), ["--prefix=account-demo-", "--limit=1", "--data-dir=/d"])).toEqual({
      options: { prefix: "account-demo-", limit: 1, "data-dir": "/d", url: undefined, schema: undefined },
      args: {}
    })
    expect(parseCommand(spec("read"), ["--from=2", "--limit", "1", "order-1", "--data-dir", "/d"])).toEqual({
      options: { from: 2, limit: 1, json: false, "data-dir": "/d", url: undefined, schema: undefined },
      args: { streamId: "order-1" }
    })
    // "--help" after "--" is the stream to read, not a request for help.
    expect(commandLine(["read", "--data-dir", "/d", "--", "--help"])._tag).toBe("Run")
    expect(parseCommand(spec("read"), ["--data-dir", "/d", "--", "--help"]).args).toEqual({ streamId: "--help" })
  })

  it("a repeatable option gives every value in order, in either form; absent, none", () => {
    const connection = { "data-dir": undefined, url: undefined, schema: undefined }
    expect(
      parseCommand(spec("tail"), [
        "--type",
        "Placed",
        "--prefix",
        "order-",
        "--type=Shipped",
        "--follow",
        "--type",
        "Placed"
      ])
    ).toEqual({
      options: {
        after: undefined,
        type: ["Placed", "Shipped", "Placed"],
        prefix: "order-",
        follow: true,
        limit: undefined,
        json: false,
        ...connection
      },
      args: {}
    })
    expect(parseCommand(spec("tail"), ["--json", "--limit=3"]).options).toEqual({
      after: undefined,
      type: [],
      prefix: undefined,
      follow: false,
      limit: 3,
      json: true,
      ...connection
    })
  })
})

describe("eventcore CLI: usage errors a command finds before it opens anything", () => {
  const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-parse-"))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  afterEach(() => vi.unstubAllEnvs())
  /** DATABASE_URL names a server that refuses connections: a command that got as far as connecting would run. */
  const refused = "postgres://nobody@127.0.0.1:1/refused"
  const everyCommand = [
    ["migrate"],
    ["streams"],
    ["read", "order-1"],
    ["tail"],
    ["stats"],
    ["status"],
    ["projections"],
    ["snapshots"],
    ["snapshots", "clear"],
    ["erase", "--subject", "c-1", "--by", "dpo"],
    ["archive", "order-1"],
    ["truncate", "order-1", "--before", "2"],
    ["purge"],
    ["demo"]
  ] as const
  const nameOf = (command: ReadonlyArray<string>) =>
    command[0] === "snapshots" && command[1] === "clear" ? "snapshots clear" : (command[0] as string)

  it("no database anywhere, on every command but the demo (which makes a fresh directory)", () => {
    vi.stubEnv("DATABASE_URL", undefined)
    for (const command of everyCommand.filter((command) => command[0] !== "demo")) {
      expectArgumentError(
        command,
        "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL",
        nameOf(command)
      )
    }
    vi.stubEnv("DATABASE_URL", "")
    expectArgumentError(["stats"], "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL", "stats")
    expect(commandLine(["demo"])._tag).toBe("Run")
  })

  it("both --url and --data-dir, or an empty --data-dir, on every command; nothing is created", () => {
    vi.stubEnv("DATABASE_URL", refused)
    const dir = join(scratch, "never")
    for (const command of everyCommand) {
      expectArgumentError(
        [...command, "--url", "postgres://nobody@127.0.0.1:1/x", "--data-dir", dir],
        "pass either --url or --data-dir, not both",
        nameOf(command)
      )
      expectArgumentError([...command, "--data-dir="], '--data-dir needs a directory, got ""', nameOf(command))
    }
    expect(existsSync(dir)).toBe(false)
  })

  it("a URL that is not PostgreSQL's, from --url or DATABASE_URL, is refused as such, never shown (it may hold a password)", () => {
    const accepted = "only postgres:// or postgresql:// URLs are accepted"
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["mysql://app:hunter2@localhost/x", `is not a PostgreSQL URL (it starts with mysql:); ${accepted}`],
      ["http://app:hunter2@localhost:5432/x", `is not a PostgreSQL URL (it starts with http:); ${accepted}`],
      ["HTTPS://localhost/x", `is not a PostgreSQL URL (it starts with https:); ${accepted}`],
      ["localhost:5432/x", `is not a PostgreSQL URL (it starts with localhost:); ${accepted}`],
      ["/var/run/postgresql", `is not a PostgreSQL URL (it has no scheme); ${accepted}`],
      ["", `is not a PostgreSQL URL (it has no scheme); ${accepted}`],
      ["postgres://app:hunter2@localhost:port/x", "is not a valid PostgreSQL URL (Invalid URL)"]
    ]
    for (const [url, problem] of cases) {
      vi.stubEnv("DATABASE_URL", refused)
      for (const command of everyCommand)
        expectArgumentError([...command, `--url=${url}`], `--url ${problem}`, nameOf(command))
      if (url === "") continue
      vi.stubEnv("DATABASE_URL", url)
      for (const command of everyCommand) expectArgumentError(command, `DATABASE_URL ${problem}`, nameOf(command))
    }
    // What the user typed wins over the environment, and both schemes are accepted, in any case.
    vi.stubEnv("DATABASE_URL", "mysql://localhost/x")
    for (const url of ["postgres://localhost/x", "postgresql://u:p@h:5433/x", "POSTGRES://h/x", "postgres://h1,h2/x"]) {
      expect(commandLine(["stats", "--url", url])._tag).toBe("Run")
    }
    expect(commandLine(["stats", "--data-dir", join(scratch, "never")])._tag).toBe("Run")
  })

  it("counts below their minimum, on the command line or with =", () => {
    vi.stubEnv("DATABASE_URL", refused)
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["demo", "--accounts", "1"], "--accounts must be at least 2, got 1"],
      [["demo", "--accounts", "0"], "--accounts must be at least 2, got 0"],
      [["demo", "--transfers", "0"], "--transfers must be at least 1, got 0"],
      [["demo", "--concurrency", "-1"], "--concurrency must be at least 1, got -1"],
      [["streams", "--limit", "0"], "--limit must be at least 1, got 0"],
      [["streams", "--limit", "-1"], "--limit must be at least 1, got -1"],
      [["read", "order-1", "--from", "0"], "--from must be at least 1, got 0"],
      [["read", "order-1", "--from=-2"], "--from must be at least 1, got -2"],
      [["read", "order-1", "--limit", "0"], "--limit must be at least 1, got 0"],
      [["tail", "--limit", "0"], "--limit must be at least 1, got 0"],
      [["tail", "--follow", "--limit", "-3"], "--limit must be at least 1, got -3"]
    ]
    for (const [argv, message] of cases) expectArgumentError(argv, message, nameOf(argv))
  })

  it("erase, archive, truncate and purge without --yes say what they would do, and open nothing", () => {
    vi.stubEnv("DATABASE_URL", refused)
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [
        ["erase", "--subject", "c-1", "--by", "dpo"],
        'erasing subject "c-1" destroys its key: its personal data become unreadable for good, in every event and every copy of the log, and every snapshot is removed; add --yes to erase it'
      ],
      [
        ["archive", "order-1"],
        'archiving stream "order-1" is for good: its reads and appends are refused from then on (its events stay in the global log); add --yes to archive it'
      ],
      [
        ["truncate", "order-1", "--before", "3"],
        'truncating stream "order-1" before version 3 hides its events before it from reads and commands for good (`eventcore purge` then removes them); add --yes to truncate it'
      ],
      [
        ["purge"],
        "purging removes the events truncations hid for good, from the global log too (projections rebuilt later never see them); add --yes to purge them"
      ]
    ]
    for (const [argv, message] of cases) {
      expectArgumentError(argv, message, nameOf(argv))
      expect(commandLine([...argv, "--yes"])._tag).toBe("Run")
    }
  })

  it("an empty command name for snapshots", () => {
    vi.stubEnv("DATABASE_URL", refused)
    for (const command of [["snapshots"], ["snapshots", "clear"]]) {
      expectArgumentError([...command, "--command="], '--command needs a command\'s name, got ""', nameOf(command))
    }
  })

  it("a bad stream id and a bad schema name", () => {
    vi.stubEnv("DATABASE_URL", refused)
    expectArgumentError(["read", "   "], 'invalid stream id "   ": must not be empty or only whitespace', "read")
    expectArgumentError(["read", ""], 'invalid stream id "": must not be empty or only whitespace', "read")
    for (const command of everyCommand) {
      expectArgumentError(
        [...command, "--schema", "public"],
        'invalid schema name "public": use a lower-case identifier of at most 63 characters (letters, digits, _), not "public" nor one starting with "pg_"',
        nameOf(command)
      )
    }
  })
})

describe("eventcore CLI: failures at run time", () => {
  const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-parse-"))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  afterEach(() => vi.restoreAllMocks())

  /**
   * Runs the command as run.ts does, but without its printing, and gives the
   * line it would print on stderr. The command must print nothing else.
   */
  const failure = async (argv: ReadonlyArray<string>) => {
    const line = commandLine(argv)
    if (line._tag !== "Run") throw new Error(`${JSON.stringify(argv)} prints instead of running: ${line.text}`)
    const output = [
      vi.spyOn(console, "log"),
      vi.spyOn(console, "error"),
      vi.spyOn(console, "warn"),
      vi.spyOn(console, "info"),
      vi.spyOn(process.stdout, "write"),
      vi.spyOn(process.stderr, "write")
    ]
    const exit = await Effect.runPromiseExit(line.run.pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
    for (const spy of output) expect(spy).not.toHaveBeenCalled()
    vi.restoreAllMocks()
    if (Exit.isSuccess(exit)) throw new Error(`${JSON.stringify(argv)} succeeded`)
    return failureLine(line.command, exit.cause)
  }

  it("tail, status, projections, snapshots and the changes on a --data-dir that does not exist say so, and do not create it", async () => {
    // (streams, read and stats are spawned for this in test/cliReadOnly.test.ts.)
    const missing = join(scratch, "missing", "events")
    for (const command of [
      ["tail"],
      ["tail", "--follow"],
      ["status"],
      ["projections"],
      ["projections", "--json"],
      ["snapshots"],
      ["snapshots", "clear"],
      ["erase", "--subject", "c-1", "--by", "dpo", "--yes"],
      ["archive", "order-1", "--yes"],
      ["truncate", "order-1", "--before", "2", "--yes"],
      ["purge", "--yes"]
    ]) {
      const name = command[1] === "clear" ? command.join(" ") : command[0]
      expect(await failure([...command, "--data-dir", missing])).toBe(
        `eventcore ${name}: there is no database at ${missing}: the directory does not exist (create one with \`eventcore migrate --data-dir ${missing}\`)\n`
      )
    }
    expect(existsSync(join(scratch, "missing"))).toBe(false)
  })

  it("a directory another process (here this one) is using is reported as in use, whatever its files are yet", async () => {
    // The holder has taken the lock but not written PG_VERSION yet: the lock is asked first.
    const dir = join(scratch, "held")
    mkdirSync(dir)
    const lines = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(lockDataDir(dir), () =>
          Effect.promise(async () => [
            await failure(["stats", "--data-dir", dir]),
            await failure(["migrate", "--data-dir", dir])
          ])
        )
      )
    )
    for (const [line, command] of [
      [lines[0], "stats"],
      [lines[1], "migrate"]
    ] as const) {
      expect(line).toMatch(
        new RegExp(
          `^eventcore ${command}: the PGlite data directory ${literal(dir)} is in use by process ${process.pid} \\(this process: another store still has it open\\), since \\S+\\. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory\\n$`
        )
      )
    }
    expect(readdirSync(dir)).toEqual([])
  })
})

describe("eventcore CLI: failures in the command line's words", () => {
  const connectionLost = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
  const cases: ReadonlyArray<readonly [unknown, string]> = [
    [new StreamNotFound({ streamId: StreamId.unsafeMake("cart-nope") }), 'stream "cart-nope" not found'],
    [
      storeError("stats", connectionLost),
      "cannot reach PostgreSQL (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1): check the URL and that the server is running"
    ],
    [
      storeError("read_stream", Object.assign(new Error('database "x" does not exist'), { code: "3D000" })),
      'PostgreSQL refused the connection (3D000: database "x" does not exist): check the database, user and password in the URL'
    ],
    [
      storeError(
        "read_stream",
        Object.assign(new Error('password authentication failed for user "app"'), { code: "28P01" })
      ),
      'PostgreSQL refused the connection (28P01: password authentication failed for user "app"): check the database, user and password in the URL'
    ],
    [
      storeError("stats", Object.assign(new Error('relation "eventcore.events" does not exist'), { code: "42P01" })),
      'eventcore\'s tables are missing (relation "eventcore.events" does not exist): create them with `eventcore migrate`'
    ],
    [
      storeError("stats", Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" })),
      "PostgreSQL cancelled the query (canceling statement due to statement timeout): a statement timeout or an administrator cancelled it"
    ],
    [
      storeError("stats", Object.assign(new Error("permission denied for table events"), { code: "42501" })),
      "permission denied for table events (SQLSTATE 42501)"
    ],
    // Written for the occasion: kept, as a clause.
    [
      new StoreError({
        operation: "open",
        message: "Cannot lock the PGlite data directory /d: EACCES",
        cause: new Error("EACCES")
      }),
      "cannot lock the PGlite data directory /d: EACCES"
    ],
    [new StoreError({ operation: "open", message: "PGlite said no." }), "PGlite said no"],
    [new CommandFailed({ message: "the invariant check failed" }), "the invariant check failed"]
  ]

  it("each on one line after the command's name, with no advice meant for the library's users", () => {
    for (const [error, message] of cases) {
      const line = failureLine("stats", Cause.fail(error))
      expect(line).toBe(`eventcore stats: ${message}\n`)
      expect(line).not.toMatch(/next operation|autoMigrate|PostgresEventStore|layer/)
    }
    expect(failureLine("read", Cause.die(new Error("first line\n  at somewhere")))).toBe("eventcore read: first line\n")
  })
})

describe("eventcore CLI: what tail --follow says while it follows", () => {
  afterEach(() => vi.restoreAllMocks())

  /** What the logger writes on stderr for `log`. */
  const written = (log: Effect.Effect<void>) => {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true)
    Effect.runSync(
      log.pipe(
        Logger.withMinimumLogLevel(LogLevel.All),
        Effect.provide(Logger.replace(Logger.defaultLogger, warningLogger("tail")))
      )
    )
    const lines = stderr.mock.calls.map(([text]) => String(text))
    stderr.mockRestore()
    return lines
  }

  it("a warning from the store is one line on stderr with its details; anything less is not printed", () => {
    const lines = written(
      Effect.logWarning(
        "eventcore: a transaction still running holds the global log back; readers wait for it to end (they never skip past it)"
      ).pipe(Effect.annotateLogs({ pid: 4242, database: "app", heldForSeconds: 12 }))
    )
    expect(lines).toEqual([
      "eventcore tail: a transaction still running holds the global log back; readers wait for it to end (they never skip past it) (database=app, heldForSeconds=12, pid=4242)\n"
    ])
    expect(
      written(Effect.logWarning("eventcore: failed").pipe(Effect.annotateLogs({ error: "line one\nline two" })))
    ).toEqual(["eventcore tail: failed (error=line one line two)\n"])
    expect(written(Effect.logInfo("eventcore: the global log is no longer held back"))).toEqual([])
  })
})

describe("eventcore CLI: what projections prints", () => {
  const at = (iso: string) => new Date(iso)
  const statuses: ReadonlyArray<ProjectionStatus> = [
    {
      name: "bank-balances",
      kind: "projection",
      status: "running",
      position: "00000000000000000754-0000000000000000004" as ProjectionStatus["position"],
      lag: 0,
      owner: "host/4242/a1b2c3",
      updatedAt: at("2026-12-01T10:00:00.000Z")
    },
    {
      name: "mailer",
      kind: "reactor",
      status: "failed",
      position: "00000000000000000700-0000000000000000001" as ProjectionStatus["position"],
      lag: 1234,
      updatedAt: at("2026-12-01T09:59:58.500Z"),
      error: "SmtpError: refused\n  by the server"
    }
  ]

  it("an aligned table under a header, the number of events behind right-aligned, the error on one line, last", () => {
    expect(formatProjections(statuses)).toEqual([
      "NAME           KIND        STATUS   POSITION                                   LAG  OWNER             UPDATED                   ERROR",
      "bank-balances  projection  running  00000000000000000754-0000000000000000004     0  host/4242/a1b2c3  2026-12-01T10:00:00.000Z  -",
      "mailer         reactor     failed   00000000000000000700-0000000000000000001  1234  -                 2026-12-01T09:59:58.500Z  SmtpError: refused by the server"
    ])
  })

  it("none: one line saying so; --json: an empty array", () => {
    expect(formatProjections([])).toEqual(["no projections"])
    expect(projectionsJson([])).toBe("[]")
  })

  it("--json: one array, every field present, null when there is none", () => {
    expect(JSON.parse(projectionsJson(statuses))).toEqual([
      {
        name: "bank-balances",
        kind: "projection",
        status: "running",
        position: "00000000000000000754-0000000000000000004",
        lag: 0,
        owner: "host/4242/a1b2c3",
        updatedAt: "2026-12-01T10:00:00.000Z",
        error: null
      },
      {
        name: "mailer",
        kind: "reactor",
        status: "failed",
        position: "00000000000000000700-0000000000000000001",
        lag: 1234,
        owner: null,
        updatedAt: "2026-12-01T09:59:58.500Z",
        error: "SmtpError: refused\n  by the server"
      }
    ])
    expect(projectionsJson(statuses).split("\n")).toHaveLength(1)
  })
})

describe("eventcore CLI: what snapshots prints", () => {
  const summaries = [
    {
      command: "Transfer",
      stateVersion: 12,
      eventVersions: "MoneyDeposited@2 TransferReceived@1 TransferSent@1",
      count: 1500,
      updatedAt: new Date("2026-12-01T10:00:00.000Z")
    },
    {
      command: "Open",
      stateVersion: 1,
      eventVersions: "Opened@1",
      count: 3,
      updatedAt: new Date("2026-12-01T09:00:00.5Z")
    }
  ]

  it("an aligned table under a header, the numbers right-aligned, the event versions last", () => {
    expect(formatSnapshots(summaries)).toEqual([
      "COMMAND   STATE VERSION  SNAPSHOTS  UPDATED                   EVENT VERSIONS",
      "Transfer             12       1500  2026-12-01T10:00:00.000Z  MoneyDeposited@2 TransferReceived@1 TransferSent@1",
      "Open                  1          3  2026-12-01T09:00:00.500Z  Opened@1"
    ])
  })

  it("none: one line saying so; --json: an array, or an empty one", () => {
    expect(formatSnapshots([])).toEqual(["no snapshots"])
    expect(snapshotsJson([])).toBe("[]")
    expect(JSON.parse(snapshotsJson(summaries))).toEqual([
      {
        command: "Transfer",
        stateVersion: 12,
        eventVersions: "MoneyDeposited@2 TransferReceived@1 TransferSent@1",
        count: 1500,
        updatedAt: "2026-12-01T10:00:00.000Z"
      },
      { command: "Open", stateVersion: 1, eventVersions: "Opened@1", count: 3, updatedAt: "2026-12-01T09:00:00.500Z" }
    ])
  })

  it("clear says how many it removed, and of which command", () => {
    expect(clearedLine(0, undefined)).toBe("removed 0 snapshots")
    expect(clearedLine(1, undefined)).toBe("removed 1 snapshot")
    expect(clearedLine(2, 'Say "hi"')).toBe('removed 2 snapshots of "Say \\"hi\\""')
  })
})

describe("eventcore CLI: what tail prints", () => {
  const event = (position: bigint, streamId: string, streamVersion: number, eventType: string): RecordedEvent => ({
    eventId: "00000000-0000-4000-8000-000000000000",
    streamId: StreamId.unsafeMake(streamId),
    streamVersion,
    globalPosition: position,
    position: LogPosition.make(754n, position),
    eventType,
    schemaVersion: 1,
    data: { n: Number(position) },
    metadata: {},
    recordedAt: new Date("2026-12-01T10:00:00.000Z")
  })

  it("columns aligned within a page and with the pages before it; a wider value widens them from its page on", () => {
    const lines = tailLines()
    expect(lines([event(1n, "cart-1", 1, "ItemAdded"), event(2n, "order-12", 10, "Placed")])).toEqual([
      '00000000000000000754-0000000000000000001  2026-12-01T10:00:00.000Z  cart-1@1     ItemAdded  {"n":1}',
      '00000000000000000754-0000000000000000002  2026-12-01T10:00:00.000Z  order-12@10  Placed     {"n":2}'
    ])
    expect(lines([event(3n, "c@1", 2, "X")])).toEqual([
      '00000000000000000754-0000000000000000003  2026-12-01T10:00:00.000Z  c@1@2        X          {"n":3}'
    ])
    expect(lines([event(4n, "cart-1", 2, "ItemQuantityChanged"), event(5n, "cart-1", 3, "ItemAdded")])).toEqual([
      '00000000000000000754-0000000000000000004  2026-12-01T10:00:00.000Z  cart-1@2     ItemQuantityChanged  {"n":4}',
      '00000000000000000754-0000000000000000005  2026-12-01T10:00:00.000Z  cart-1@3     ItemAdded            {"n":5}'
    ])
    expect(lines([])).toEqual([])
  })
})
