/**
 * The real `eventcore` command line, spawned as a user would run it.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { databaseUrl, describeServer, usePostgresTemplate } from "./support/postgres.js"

const root = join(import.meta.dirname, "..")

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const { DATABASE_URL: _, ...inherited } = process.env
    const child = spawn(join(root, "node_modules", ".bin", "tsx"), [join(root, "src", "cli", "main.ts"), ...args], {
      cwd: root,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

/** A failure the user can read: one line on stderr, no stack trace, a non-zero exit. */
const expectOneLineError = (run: Run, message: string, code = 1) => {
  expect(run.code).toBe(code)
  expect(run.stderr.trim().split("\n")).toEqual([`eventcore: ${message}`])
  expect(run.stderr).not.toMatch(/\n\s+at /)
}

describe("eventcore CLI on PGlite", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "eventcore-cli-"))
  let demo: Run
  beforeAll(async () => {
    demo = await cli(["demo", "--accounts", "3", "--transfers", "40", "--concurrency", "4", "--data-dir", dataDir])
  }, 120_000)
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it("the demo runs transfers, prints the summary and passes its invariant check", () => {
    expect(demo.stderr).toBe("")
    expect(demo.code).toBe(0)
    expect(demo.stdout).toContain(`eventcore bank demo on PGlite in ${dataDir}`)
    expect(demo.stdout).toMatch(/progress: \d+\/40 commands/)
    expect(demo.stdout).toMatch(/commands succeeded\s+\d+/)
    for (const check of ["total money unchanged", "no negative balance", "versions gap-free", "every event decodes"]) {
      expect(demo.stdout).toMatch(new RegExp(`ok\\s+${check}`))
    }
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

    const readable = await cli(["read", streamId, "--from", "2", "--limit", "1", "--data-dir", dataDir])
    expect(readable.code).toBe(0)
    expect(readable.stdout).toMatch(/^\s+2 {2}\S+ {2}#\d+ {2}MoneyDeposited {2}\{"amount":100000\}\n/)
    expect(readable.stdout).toContain(`${streamId}: version ${version}`)

    const stats = await cli(["stats", "--data-dir", dataDir])
    expect(stats.code).toBe(0)
    expect(stats.stdout).toMatch(/streams\s+3\n/)
    expect(stats.stdout).toMatch(/AccountOpened\s+3\n/)

    const migrate = await cli(["migrate", "--data-dir", dataDir])
    expect(migrate.stdout).toContain("up to date, no migration applied")
  }, 120_000)

  it("a missing stream and a bad stream id are one-line errors", async () => {
    expectOneLineError(
      await cli(["read", "no-such-stream", "--data-dir", dataDir]),
      'Stream "no-such-stream" not found'
    )
    expectOneLineError(
      await cli(["read", "   ", "--data-dir", dataDir]),
      'Invalid stream id "   ": must not be empty or only whitespace'
    )
  }, 120_000)
})

describe("eventcore CLI: bad arguments", () => {
  it("refuses them with one line and a non-zero exit, before touching a database", async () => {
    expectOneLineError(await cli(["streams"]), "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL")
    expectOneLineError(
      await cli(["demo", "--accounts", "1"]),
      "--accounts must be at least 2: a transfer needs two accounts"
    )
    expectOneLineError(await cli(["demo", "--transfers", "0"]), "--transfers must be at least 1")
    const missing = await cli(["read"])
    expect(missing.code).toBe(2)
    expect(missing.stderr.trim()).toBe("Missing argument <streamId>")
    const notANumber = await cli(["demo", "--accounts", "many"])
    expect(notANumber.code).toBe(2)
    expect(notANumber.stderr).not.toMatch(/\n\s+at /)
  }, 60_000)

  it("an unreachable database is a one-line error that hides the password", async () => {
    const run = await cli(["streams", "--url", "postgres://app:hunter2@127.0.0.1:1/db"])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^eventcore: Cannot reach PostgreSQL during migrate \(ECONNREFUSED/)
    expect(run.stderr.trim().split("\n")).toHaveLength(1)
    expect(run.stderr).not.toContain("hunter2")
  }, 60_000)

  it("--help works on every command", async () => {
    const commands = ["migrate", "streams", "read", "stats", "demo"]
    const runs = await Promise.all(commands.map((command) => cli([command, "--help"])))
    runs.forEach((run, i) => {
      expect(run.code).toBe(0)
      expect(run.stdout).toContain(commands[i])
    })
  }, 60_000)
})

describeServer("eventcore CLI on PostgreSQL", () => {
  const server = usePostgresTemplate()
  let url: string
  const name = `eventcore_cli_${Date.now()}`
  afterAll(() => server.adminClient().unsafe(`drop database if exists "${name}" with (force)`))
  beforeAll(async () => {
    await server.adminClient().unsafe(`create database "${name}"`)
    const target = new URL(databaseUrl as string)
    target.pathname = `/${name}`
    url = target.toString()
  })

  it("the demo passes its invariant check on a server reached through DATABASE_URL", async () => {
    const run = await cli(["demo", "--accounts", "4", "--transfers", "60", "--concurrency", "6"], { DATABASE_URL: url })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("eventcore bank demo on PostgreSQL at 127.0.0.1")
    expect(run.stdout).toContain("all invariants hold")
    const streams = await cli(["streams", "--url", url])
    expect(streams.stdout.trim().split("\n")).toHaveLength(4)
  }, 120_000)
})
