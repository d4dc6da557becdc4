/**
 * Every exit code the README's command-line section documents, each way of
 * reaching it one row of a table: 0 done, 2 a usage error (found before
 * anything is opened), 1 a failure at run time, 130 and 143 a command
 * interrupted by SIGINT and SIGTERM. The rows run in this process through
 * runCommandLine, which main.ts runs with the process's arguments and signals
 * (test/cli.test.ts spawns the process for that wiring).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { EventStore, PgliteEventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { runCommandLine } from "../src/cli/run.js"
import { lockDataDir } from "../src/pglite/dataDirLock.js"
import { literal } from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { databaseUrl, urlOf } from "./support/postgres.js"

const scratch = mkdtempSync(join(tmpdir(), "eventcore-cli-exit-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
/** A migrated PGlite directory holding the stream cart-1 (two events). */
const store = join(scratch, "store")
/** A directory that is no PGlite data directory. */
const plain = join(scratch, "plain")
/** A directory this process holds the lock of (as a store does before PGlite writes its files). */
const held = join(scratch, "held")
const refused = "postgres://app:hunter2@127.0.0.1:1/x"

interface Row {
  readonly argv: ReadonlyArray<string>
  /** DATABASE_URL: unset unless given. */
  readonly env?: string
  /** Sent once the command has printed a line (see {@link outcome}). */
  readonly signal?: "SIGINT" | "SIGTERM"
  readonly code: number
  /** What it prints on stderr, all of it. */
  readonly stderr: string | RegExp
}

/** What a usage error prints: one line naming the command and its help. */
const usage = (command: string | undefined, message: string) => {
  const who = command === undefined ? "eventcore" : `eventcore ${command}`
  return `${who}: ${message} (see ${who} --help)\n`
}

const accepted = "only postgres:// or postgresql:// URLs are accepted"

const rows: ReadonlyArray<Row> = [
  // 0: done.
  { argv: ["--help"], code: 0, stderr: "" },
  { argv: ["--version"], code: 0, stderr: "" },
  { argv: ["help", "read"], code: 0, stderr: "" },
  { argv: ["stats", "--bogus", "--help"], code: 0, stderr: "" },
  // (Each command's success is in test/cli.test.ts.)
  { argv: ["read", "cart-1", "--from", "2", "--data-dir", store], code: 0, stderr: "" },
  // Parents created, as the help says.
  { argv: ["migrate", "--data-dir", join(scratch, "a", "b")], code: 0, stderr: "" },
  // Nothing truncated, so nothing to purge: the store stays as the other rows read it.
  { argv: ["purge", "--yes", "--data-dir", store], code: 0, stderr: "" },

  // 2: a usage error.
  { argv: [], code: 2, stderr: /^eventcore: inspect and exercise an eventcore store\n/ },
  { argv: ["frob"], code: 2, stderr: usage(undefined, 'unknown command "frob"') },
  { argv: ["--data-dir", store, "stats"], code: 2, stderr: usage(undefined, "--data-dir goes after the command") },
  { argv: ["stats", "--bogus"], code: 2, stderr: usage("stats", "unknown option --bogus") },
  { argv: ["stats", "extra"], code: 2, stderr: usage("stats", 'unexpected argument "extra"') },
  { argv: ["read"], code: 2, stderr: usage("read", "missing argument <streamId>") },
  { argv: ["streams", "--limit"], code: 2, stderr: usage("streams", "--limit needs a value") },
  { argv: ["streams", "--limit", "abc"], code: 2, stderr: usage("streams", '--limit expects an integer, got "abc"') },
  { argv: ["streams", "--limit", "-1"], code: 2, stderr: usage("streams", "--limit must be at least 1, got -1") },
  { argv: ["read", "cart-1", "--from", "0"], code: 2, stderr: usage("read", "--from must be at least 1, got 0") },
  { argv: ["tail", "--limit", "0"], code: 2, stderr: usage("tail", "--limit must be at least 1, got 0") },
  { argv: ["demo", "--accounts", "1"], code: 2, stderr: usage("demo", "--accounts must be at least 2, got 1") },
  {
    argv: ["read", ""],
    env: refused,
    code: 2,
    stderr: usage("read", 'invalid stream id "": must not be empty or only whitespace')
  },
  {
    argv: ["archive", "cart-1", "--data-dir", store],
    code: 2,
    stderr: usage(
      "archive",
      'archiving stream "cart-1" is for good: its reads and appends are refused from then on (its events stay in the global log); add --yes to archive it'
    )
  },
  { argv: ["truncate", "cart-1", "--yes"], code: 2, stderr: usage("truncate", "missing option --before") },
  {
    argv: ["truncate", "cart-1", "--before", "0", "--yes"],
    code: 2,
    stderr: usage("truncate", "--before must be at least 1, got 0")
  },
  { argv: ["erase", "--subject", "c-1", "--yes"], code: 2, stderr: usage("erase", "missing option --by") },
  {
    argv: ["tail", "--after", "12", "--data-dir", store],
    code: 2,
    stderr: usage("tail", '--after expects a log position (20 digits, "-", 19 digits, as tail prints them), got "12"')
  },
  {
    argv: ["stats"],
    code: 2,
    stderr: usage("stats", "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL")
  },
  {
    argv: ["stats", "--url", refused, "--data-dir", store],
    code: 2,
    stderr: usage("stats", "pass either --url or --data-dir, not both")
  },
  {
    argv: ["stats", "--url", "mysql://localhost/x"],
    code: 2,
    stderr: usage("stats", `--url is not a PostgreSQL URL (it starts with mysql:); ${accepted}`)
  },
  {
    argv: ["stats", "--url", "http://app:hunter2@localhost/x"],
    code: 2,
    stderr: usage("stats", `--url is not a PostgreSQL URL (it starts with http:); ${accepted}`)
  },
  {
    argv: ["stats"],
    env: "mysql://localhost/x",
    code: 2,
    stderr: usage("stats", `DATABASE_URL is not a PostgreSQL URL (it starts with mysql:); ${accepted}`)
  },
  {
    argv: ["stats", "--schema", "public", "--data-dir", store],
    code: 2,
    stderr: usage(
      "stats",
      'invalid schema name "public": use a lower-case identifier of at most 63 characters (letters, digits, _), not "public" nor one starting with "pg_"'
    )
  },

  // 1: a failure at run time.
  {
    argv: ["read", "cart-nope", "--data-dir", store],
    code: 1,
    stderr: 'eventcore read: stream "cart-nope" not found\n'
  },
  {
    argv: ["archive", "cart-nope", "--yes", "--data-dir", store],
    code: 1,
    stderr: 'eventcore archive: stream "cart-nope" not found\n'
  },
  {
    argv: ["truncate", "cart-1", "--before", "3", "--yes", "--data-dir", store],
    code: 1,
    stderr:
      'eventcore truncate: cannot truncate stream "cart-1" before version 3: its version is 2, so truncate before 1 to 2 (its last event is always kept)\n'
  },
  {
    argv: ["streams"],
    env: refused,
    code: 1,
    stderr:
      /^eventcore streams: cannot reach PostgreSQL \(ECONNREFUSED: [^\n]*\): check the URL and that the server is running\n$/
  },
  {
    argv: ["stats", "--data-dir", join(scratch, "missing")],
    code: 1,
    stderr: `eventcore stats: there is no database at ${join(scratch, "missing")}: the directory does not exist (create one with \`eventcore migrate --data-dir ${join(scratch, "missing")}\`)\n`
  },
  {
    argv: ["stats", "--data-dir", plain],
    code: 1,
    stderr: `eventcore stats: ${plain} is not a PGlite data directory (it has no PG_VERSION)\n`
  },
  {
    argv: ["tail", "--schema", "elsewhere", "--data-dir", store],
    code: 1,
    stderr: `eventcore tail: PGlite in ${store} is not an eventcore database (no eventcore tables in schema "elsewhere"): create them with \`eventcore migrate\` and the same connection options\n`
  },
  {
    argv: ["stats", "--data-dir", held],
    code: 1,
    stderr: new RegExp(
      `^eventcore stats: the PGlite data directory ${literal(held)} is in use by process ${process.pid} \\(this process: another store still has it open\\), since \\S+\\. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory\\n$`
    )
  },
  ...(databaseUrl === undefined
    ? []
    : [
        {
          argv: ["stats", "--url", urlOf("eventcore_no_such_database")],
          code: 1,
          stderr:
            'eventcore stats: PostgreSQL refused the connection (3D000: database "eventcore_no_such_database" does not exist): check the database, user and password in the URL\n'
        }
      ]),

  // 128 + the signal's number: interrupted, after closing the database.
  { argv: ["tail", "--follow", "--data-dir", store], signal: "SIGINT", code: 130, stderr: "" },
  { argv: ["tail", "--follow", "--data-dir", store], signal: "SIGTERM", code: 143, stderr: "" }
]

/**
 * Runs a row as main.ts does: its exit code and what it printed on stdout and
 * stderr (kept from the terminal). A row with a signal gets it once the
 * command has printed a line.
 */
const outcome = async (row: Row) => {
  vi.stubEnv("DATABASE_URL", row.env)
  let stdout = ""
  let stderr = ""
  const capture = (append: (text: string) => void) => (text: unknown) => {
    append(typeof text === "string" ? text : String(text))
    return true
  }
  const toStdout = capture((text) => {
    stdout += text
  })
  const toStderr = capture((text) => {
    stderr += text
  })
  vi.spyOn(process.stdout, "write").mockImplementation(toStdout)
  vi.spyOn(process.stderr, "write").mockImplementation(toStderr)
  vi.spyOn(console, "log").mockImplementation((text) => toStdout(`${text}\n`))
  vi.spyOn(console, "error").mockImplementation((text) => toStderr(`${text}\n`))
  const interrupt = new AbortController()
  const running = runCommandLine(row.argv, interrupt.signal)
  if (row.signal !== undefined) {
    let ended = false
    void running.finally(() => {
      ended = true
    })
    while (stdout === "" && !ended) await new Promise((resolve) => setTimeout(resolve, 20))
    interrupt.abort(row.signal)
  }
  const code = await running
  vi.restoreAllMocks()
  return { code, stdout, stderr }
}

describe("eventcore CLI exit codes, as the README documents them", () => {
  beforeAll(async () => {
    // A directory PGlite created already: what the rows check is how the commands end, not how one comes to be.
    await initialisedDataDir(store)
    await Effect.runPromise(
      Effect.flatMap(EventStore.EventStore, (events) =>
        events.append(
          writesOf({ streamId: StreamId.unsafeMake("cart-1"), expected: "no_stream", events: testEvents(2) })
        )
      ).pipe(Effect.provide(PgliteEventStore.layer({ dataDir: store })))
    )
    mkdirSync(plain)
    mkdirSync(held)
  }, 120_000)
  afterEach(() => {
    vi.restoreAllMocks()
    vi.unstubAllEnvs()
  })

  it("every row exits with its code and prints its line on stderr", async () => {
    const seen = new Set<number>()
    await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(lockDataDir(held), () =>
          Effect.promise(async () => {
            for (const row of rows) {
              const result = await outcome(row)
              expect({ argv: row.argv, code: result.code }).toEqual({ argv: row.argv, code: row.code })
              if (typeof row.stderr === "string") expect(result.stderr).toBe(row.stderr)
              else expect(result.stderr).toMatch(row.stderr)
              expect(result.stderr).not.toContain("hunter2")
              // A usage error prints nothing else; an interrupted command printed what it had read.
              if (row.code === 2) expect(result.stdout).toBe("")
              if (row.signal !== undefined) expect(result.stdout).toMatch(/ cart-1@1 /)
              seen.add(result.code)
            }
          })
        )
      )
    )
    expect([...seen].sort((a, b) => a - b)).toEqual([0, 1, 2, 130, 143])
  }, 240_000)
})
