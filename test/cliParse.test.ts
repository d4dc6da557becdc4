/**
 * The `eventcore` command line in-process: what `main.ts` prints for each
 * argument list (help, --version, argument errors) comes from
 * parseCommandLine over the program, a pure function, and the usage errors a
 * command raises before it opens a database come from running its Effect.
 * test/cli.test.ts spawns the real process for the wiring (stdout or stderr,
 * exit codes 0, 1 and 2) and for everything that needs a database.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Logger, LogLevel } from "effect"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { type CommandLine, type CommandSpec, parseCommand, parseCommandLine } from "../src/cli/args.js"
import { failureLine, program, type Run, warningLogger } from "../src/cli/program.js"
import { formatProjections, projectionsJson } from "../src/cli/projections.js"
import { defaultDemoOptions } from "../src/demo/demo.js"
import type { ProjectionStatus } from "../src/Projection.js"
import { literal } from "./support/cli.js"

const summaries = {
  migrate: "create or upgrade eventcore's schema (the migrations in drizzle/) and say what was applied",
  streams: "list streams with their versions",
  read: "print a stream's events (readable, or JSON lines with --json)",
  tail: "print the global log in log order, or follow it live with --follow",
  stats: "event count, stream count, events per type, database size",
  status: "the global log's head, what readers can read, and what holds them back",
  projections: "every projection and reactor: status, position, lag, owner, last update and error",
  demo: "run the bank demo: concurrent multi-stream transfers, then an invariant check"
}

const commandLine = (argv: ReadonlyArray<string>): CommandLine<Run> => parseCommandLine(program, argv)

type Printed = Extract<CommandLine<Run>, { readonly _tag: "Print" }>

/** What the process would print, and where, and its exit code; fails if the line runs a command. */
const printed = (argv: ReadonlyArray<string>): Printed => {
  const line = commandLine(argv)
  if (line._tag !== "Print") throw new Error(`${JSON.stringify(argv)} runs a command instead of printing`)
  return line
}

/** Something wrong with the arguments: one line on stderr naming the help to read, exit code 2. */
const expectArgumentError = (argv: ReadonlyArray<string>, message: string, command?: string) => {
  expect(printed(argv)).toEqual({
    _tag: "Print",
    to: "stderr",
    text: `eventcore: ${message} (see eventcore ${command ? `${command} ` : ""}--help)\n`,
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
      [["--type", "A", "tail"], "--type goes after the command"]
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
      expect(commandLine(["tail", "--after", value])._tag).toBe("Run")
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
      expect(text).toContain(`Usage: eventcore ${command}${command === "read" ? " <streamId>" : ""} [options]`)
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

describe("eventcore CLI: usage errors a command raises before it opens a database", () => {
  const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-parse-"))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  afterEach(() => {
    vi.unstubAllEnvs()
    vi.restoreAllMocks()
  })

  /**
   * Runs the command as main.ts does, but in this process, and gives the line
   * it would print on stderr before exiting 1. The command must print nothing
   * else. DATABASE_URL names a server that refuses connections, so a command
   * that got as far as connecting would fail differently.
   */
  const failure = async (argv: ReadonlyArray<string>, env: { readonly DATABASE_URL?: string | undefined } = {}) => {
    vi.stubEnv("DATABASE_URL", "DATABASE_URL" in env ? env.DATABASE_URL : "postgres://nobody@127.0.0.1:1/refused")
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
    return failureLine(exit.cause)
  }

  it("no database anywhere", async () => {
    for (const command of [
      ["migrate"],
      ["streams"],
      ["read", "order-1"],
      ["tail"],
      ["stats"],
      ["status"],
      ["projections"]
    ]) {
      expect(await failure(command, { DATABASE_URL: undefined })).toBe(
        "eventcore: no database: pass --data-dir DIR or --url URL, or set DATABASE_URL\n"
      )
    }
  })

  it("both --url and --data-dir, on every command; the directory is not created", async () => {
    const dir = join(scratch, "never")
    for (const command of [
      ["migrate"],
      ["streams"],
      ["read", "order-1"],
      ["tail"],
      ["stats"],
      ["status"],
      ["projections"],
      ["demo"]
    ]) {
      expect(await failure([...command, "--url", "postgres://nobody@127.0.0.1:1/x", "--data-dir", dir])).toBe(
        "eventcore: pass either --url or --data-dir, not both\n"
      )
    }
    expect(existsSync(dir)).toBe(false)
  })

  it("counts below their minimum", async () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["demo", "--accounts", "1"], "--accounts must be at least 2: a transfer needs two accounts"],
      [["demo", "--accounts", "0"], "--accounts must be at least 1"],
      [["demo", "--transfers", "0"], "--transfers must be at least 1"],
      [["demo", "--concurrency", "-1"], "--concurrency must be at least 1"],
      [["streams", "--limit", "0"], "--limit must be at least 1"],
      [["tail", "--limit", "0"], "--limit must be at least 1"],
      [["tail", "--follow", "--limit", "-3"], "--limit must be at least 1"]
    ]
    for (const [argv, message] of cases) expect(await failure(argv)).toBe(`eventcore: ${message}\n`)
  })

  it("a bad stream id and a bad schema name", async () => {
    expect(await failure(["read", "   "])).toBe(
      'eventcore: Invalid stream id "   ": must not be empty or only whitespace\n'
    )
    for (const command of [
      ["migrate"],
      ["streams"],
      ["read", "order-1"],
      ["tail"],
      ["stats"],
      ["status"],
      ["projections"],
      ["demo"]
    ]) {
      expect(await failure([...command, "--schema", "public"])).toBe(
        'eventcore: Invalid schema name "public": use a lower-case identifier of at most 63 characters (letters, digits, _), not "public" nor one starting with "pg_".\n'
      )
    }
  })

  it("tail, status and projections on a --data-dir that does not exist say so, and do not create it", async () => {
    // (streams, read and stats are spawned for this in test/cliReadOnly.test.ts.)
    const missing = join(scratch, "missing", "events")
    for (const command of [["tail"], ["tail", "--follow"], ["status"], ["projections"], ["projections", "--json"]]) {
      expect(await failure([...command, "--data-dir", missing])).toBe(
        `eventcore: there is no database at ${missing}: the directory does not exist (create one with \`eventcore migrate --data-dir ${missing}\`)\n`
      )
    }
    expect(existsSync(join(scratch, "missing"))).toBe(false)
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
        Effect.provide(Logger.replace(Logger.defaultLogger, warningLogger))
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
      "eventcore: a transaction still running holds the global log back; readers wait for it to end (they never skip past it) (database=app, heldForSeconds=12, pid=4242)\n"
    ])
    expect(
      written(Effect.logWarning("eventcore: failed").pipe(Effect.annotateLogs({ error: "line one\nline two" })))
    ).toEqual(["eventcore: failed (error=line one line two)\n"])
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
