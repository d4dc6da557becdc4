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
import { defaultDemoOptions } from "../examples/bank/demo.js"
import { type CommandLine, type CommandSpec, parseCommand, parseCommandLine } from "../src/cli/args.js"
import { failureLine, program, type Run } from "../src/cli/program.js"
import { literal } from "./support/cli.js"

const summaries = {
  migrate: "create or upgrade eventcore's schema (the migrations in drizzle/) and say what was applied",
  streams: "list streams with their versions",
  read: "print a stream's events (readable, or JSON lines with --json)",
  stats: "event count, stream count, events per type, database size",
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
      [["demo", "--accounts", "many"], '--accounts expects an integer, got "many"', "demo"]
    ]
    for (const [argv, message, command] of cases) expectArgumentError(argv, message, command)
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
    for (const command of [["migrate"], ["streams"], ["read", "order-1"], ["stats"]]) {
      expect(await failure(command, { DATABASE_URL: undefined })).toBe(
        "eventcore: no database: pass --data-dir DIR or --url URL, or set DATABASE_URL\n"
      )
    }
  })

  it("both --url and --data-dir, on every command; the directory is not created", async () => {
    const dir = join(scratch, "never")
    for (const command of [["migrate"], ["streams"], ["read", "order-1"], ["stats"], ["demo"]]) {
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
      [["streams", "--limit", "0"], "--limit must be at least 1"]
    ]
    for (const [argv, message] of cases) expect(await failure(argv)).toBe(`eventcore: ${message}\n`)
  })

  it("a bad stream id and a bad schema name", async () => {
    expect(await failure(["read", "   "])).toBe(
      'eventcore: Invalid stream id "   ": must not be empty or only whitespace\n'
    )
    for (const command of [["migrate"], ["streams"], ["read", "order-1"], ["stats"], ["demo"]]) {
      expect(await failure([...command, "--schema", "public"])).toBe(
        'eventcore: Invalid schema name "public": use a lower-case identifier of at most 63 characters (letters, digits, _), not "public" nor one starting with "pg_".\n'
      )
    }
  })
})
