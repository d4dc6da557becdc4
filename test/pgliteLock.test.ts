/**
 * One process owns a PGlite data directory: real processes open, hold, race
 * for and die holding a directory, and no acknowledged event is ever lost or
 * written twice.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { NodeFS } from "@electric-sql/pglite/nodefs"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { EventStore, PgliteEventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { afterAll, describe, expect, it } from "vitest"
import type { StoreError } from "../src/errors.js"
import { lockDataDir, lockFileOf } from "../src/pglite/dataDirLock.js"
import { cli, literal } from "./support/cli.js"
import { initialisedDataDir } from "./support/initialisedPglite.js"
import { snapshot, startLockHolder, startWriter, type Writer } from "./support/writerProcess.js"

const scratch = mkdtempSync(join(tmpdir(), "eventcore-lock-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
let dirs = 0
const freshDir = () => join(scratch, `data-${++dirs}`)
/** A directory PGlite has created already (see ./support/initialisedPglite.ts), for tests about holding one, not creating it. */
const initialisedDir = () => initialisedDataDir(freshDir())

/** The writer stream's events in the directory, opened in this process. */
const readWriterStream = (dataDir: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const read = yield* store.readStream(StreamId.unsafeMake("writer"))
      return read.events.map((e) => ({ version: e.streamVersion, ...(e.data as { pid: number; n: number }) }))
    }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
  )

const expectGapFree = (events: ReadonlyArray<{ readonly version: number }>) =>
  expect(events.map((e) => e.version)).toEqual(events.map((_, i) => i + 1))

const inUseMessage = (dataDir: string, pid: number) =>
  new RegExp(`^The PGlite data directory ${literal(dataDir)} is in use by process ${pid}, since \\d{4}-`)

/** How taking `dataDir`'s lock in this process ends: undefined if it was free, else the error's message. */
const lockRefusal = (dataDir: string) =>
  Effect.scoped(lockDataDir(dataDir)).pipe(
    Effect.match({ onFailure: (error: StoreError) => error.message, onSuccess: () => undefined })
  )

const heldByThisProcess = (dataDir: string) =>
  `The PGlite data directory ${dataDir} is in use by process ${process.pid} (this process: another store still has it open)`

describe("one process per PGlite data directory", () => {
  it("a second process on a held directory fails at once, naming the holder, and leaves the directory byte-for-byte unchanged; after the holder exits the next opener finds every event", async () => {
    const dataDir = await initialisedDir()
    const holder = startWriter(dataDir, 5, "hold")
    await holder.printed("ready")
    const before = snapshot(dataDir)

    const second = startWriter(dataDir, 5, "exit")
    const { code } = await second.exited
    expect(code).toBe(3)
    expect(second.stderr().trim()).toMatch(inUseMessage(dataDir, holder.child.pid as number))
    expect(second.stdout()).toBe("")
    // It waited for nothing: the holder holds on until told to let go, below.
    expect(holder.child.exitCode).toBeNull()
    expect(snapshot(dataDir)).toEqual(before)

    holder.child.stdin.end()
    expect((await holder.exited).code).toBe(0)
    const events = await readWriterStream(dataDir)
    expect(events.map((e) => e.n)).toEqual([1, 2, 3, 4, 5])
    expectGapFree(events)
  }, 120_000)

  it("after the holder is killed with SIGKILL, the next opener gets the directory and every acknowledged event", async () => {
    const dataDir = await initialisedDir()
    const holder = startWriter(dataDir, 400, "hold")
    await holder.printed("acked 60")
    holder.child.kill("SIGKILL")
    const { signal } = await holder.exited
    expect(signal).toBe("SIGKILL")
    const acked = holder.acked()

    const events = await readWriterStream(dataDir)
    expect(events.length).toBeGreaterThanOrEqual(acked)
    expect(events.map((e) => e.n)).toEqual(events.map((_, i) => i + 1))
    expectGapFree(events)
  }, 120_000)

  it("two processes racing to open one fresh directory: exactly one wins, the other is refused", async () => {
    const dataDir = freshDir()
    // The winner holds the directory until told to let go, so the other finds it held however
    // fast the winner writes (exiting when done, a fast winner could be gone before the other opens).
    const writers = [startWriter(dataDir, 20, "hold"), startWriter(dataDir, 20, "hold")]
    const loser = await Promise.race(writers.map((w) => w.exited.then(() => w)))
    const winner = writers.find((w) => w !== loser) as Writer
    expect((await loser.exited).code).toBe(3)
    await winner.printed("ready")
    winner.child.stdin.end()
    expect((await winner.exited).code).toBe(0)
    expect(loser.stderr().trim()).toMatch(inUseMessage(dataDir, winner.child.pid as number))
    const events = await readWriterStream(dataDir)
    expect(events.map((e) => e.pid)).toEqual(Array(20).fill(winner.child.pid))
    expectGapFree(events)
  }, 120_000)

  it("the corruption reproduction: a writer run, then two at once, then one more: 600 acknowledged events, each once, versions gap-free", async () => {
    const dataDir = await initialisedDir()
    const runs: Array<Writer> = []
    const run = async (writers: ReadonlyArray<Writer>) => {
      runs.push(...writers)
      await Promise.all(writers.map((w) => w.exited))
    }
    await run([startWriter(dataDir, 200, "exit")])
    // Two at once: the winner holds on until the other has been refused, however fast it writes.
    const pair = [startWriter(dataDir, 200, "hold"), startWriter(dataDir, 200, "hold")]
    const refusedFirst = await Promise.race(pair.map((w) => w.exited.then(() => w)))
    const pairWinner = pair.find((w) => w !== refusedFirst) as Writer
    await pairWinner.printed("ready")
    pairWinner.child.stdin.end()
    await run(pair)
    await run([startWriter(dataDir, 200, "exit")])

    const refused = runs.filter((w) => w.stderr().includes("is in use by process"))
    expect(refused).toHaveLength(1)
    expect(refused[0]?.stdout()).toBe("")
    const acknowledged = runs.reduce((sum, w) => sum + w.acked(), 0)
    expect(acknowledged).toBe(600)

    const events = await readWriterStream(dataDir)
    expect(events).toHaveLength(600)
    expectGapFree(events)
    const keys = new Set(events.map((e) => `${e.pid}:${e.n}`))
    expect(keys.size).toBe(600)
  }, 180_000)

  it("in one process: a second store on an open directory fails naming this process; closing and reopening works", async () => {
    const dataDir = await initialisedDir()
    const stream = StreamId.unsafeMake("reopened")
    const versionThrough = (dataDir: string) =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        return yield* store.readStream(stream).pipe(
          Effect.map((read) => read.version),
          Effect.catchTag("StreamNotFound", () => Effect.succeed(0))
        )
      }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))

    const nested = await Effect.runPromiseExit(
      Effect.gen(function* () {
        yield* EventStore.EventStore
        return yield* versionThrough(dataDir)
      }).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))
    )
    expect(Exit.isFailure(nested)).toBe(true)
    if (Exit.isFailure(nested)) {
      const error = nested.cause._tag === "Fail" ? nested.cause.error : undefined
      expect(error?._tag).toBe("StoreError")
      expect(error?.message).toContain(
        `is in use by process ${process.pid} (this process: another store still has it open)`
      )
    }
    for (let i = 0; i < 3; i++) expect(await Effect.runPromise(versionThrough(dataDir))).toBe(0)
  }, 120_000)
})

describe("a client the application opened itself, given to layerFromClient", () => {
  it("an application appending through layerFromClient holds its directory: the command line and the store's layer are refused naming it, every event is there afterwards, and the directory opens again", async () => {
    const dataDir = await initialisedDir()
    const app = startWriter(dataDir, 1_000_000, "keep", "client")
    await app.printed("acked 5")
    const pid = app.child.pid as number
    const runs = await Promise.all([["stats"], ["read", "writer"]].map((args) => cli([...args, "--data-dir", dataDir])))
    for (const run of runs) {
      expect(run.code).toBe(1)
      expect(run.stdout).toBe("")
      expect(run.stderr.trim().split("\n")).toHaveLength(1)
      expect(run.stderr).toMatch(
        new RegExp(
          `^eventcore\\b[^\\n]*: [Tt]he PGlite data directory ${literal(dataDir)} is in use by process ${pid}, since \\d{4}-`
        )
      )
    }
    const refused = await Effect.runPromise(
      Effect.flip(Effect.scoped(Layer.build(PgliteEventStore.layer({ dataDir }))))
    )
    expect(refused.message).toMatch(inUseMessage(dataDir, pid))
    // The application appends on after the refusals.
    await app.printed(`acked ${app.acked() + 5}`)
    app.child.stdin.end()
    expect(await app.exited).toEqual({ code: 0, signal: null })
    expect(app.stderr()).toBe("")

    const acked = app.acked()
    const events = await readWriterStream(dataDir)
    expect(events.map((e) => e.n)).toEqual(Array.from({ length: acked }, (_, i) => i + 1))
    expect(new Set(events.map((e) => e.pid))).toEqual(new Set([pid]))
    expectGapFree(events)
    const client = await PGlite.create({ dataDir })
    try {
      const { rows } = await client.query<{ n: number }>("select count(*)::int as n from eventcore.events")
      expect(rows[0]?.n).toBe(acked)
    } finally {
      await client.close()
    }
  }, 180_000)

  it("on a directory another process holds, the layer fails at once naming that process, and migrates nothing", async () => {
    const dataDir = await initialisedDir()
    const holder = await startLockHolder(dataDir)
    await holder.printed("held")
    const client = await PGlite.create({ dataDir })
    try {
      const error = await Effect.runPromise(
        Effect.flip(Effect.scoped(Layer.build(PgliteEventStore.layerFromClient(client))))
      )
      expect(error).toMatchObject({ _tag: "StoreError", operation: "open" })
      expect(error.message).toMatch(inUseMessage(dataDir, holder.child.pid as number))
      const { rows } = await client.query<{ absent: boolean }>("select to_regnamespace('eventcore') is null as absent")
      expect(rows[0]?.absent).toBe(true)
    } finally {
      await client.close()
      holder.child.stdin.end()
      await holder.exited
    }
  }, 120_000)

  it("locks the directory of a client opened with a path, a file:// path or a NodeFS of its own while the layer lives; memory:// is no directory", async () => {
    const dataDir = await initialisedDir()
    const openers = [
      () => PGlite.create({ dataDir }),
      () => PGlite.create({ dataDir: `file://${dataDir}` }),
      () => PGlite.create({ fs: new NodeFS(dataDir) })
    ]
    for (const open of openers) {
      const client = await open()
      try {
        await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              yield* Layer.build(PgliteEventStore.layerFromClient(client))
              expect(yield* lockRefusal(dataDir)).toContain(heldByThisProcess(dataDir))
            })
          )
        )
        expect(await Effect.runPromise(lockRefusal(dataDir))).toBeUndefined()
      } finally {
        await client.close()
      }
    }

    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const own = yield* Layer.build(PgliteEventStore.layer({ dataDir: "memory://events" }))
          yield* Layer.build(PgliteEventStore.layerFromClient(Context.get(own, PgliteEventStore.Client)))
          // Had "memory://events" been taken for a path, it would be locked now, and created.
          expect(yield* lockRefusal("memory://events")).toBeUndefined()
        })
      )
    )
    expect(existsSync("memory:")).toBe(false)
  }, 180_000)

  it("layers over one client (stores in several schemas) share its lock, which the last one releases; the layer's own Client shares the layer's", async () => {
    const dataDir = await initialisedDir()
    const client = await PGlite.create({ dataDir })
    try {
      await Effect.runPromise(
        Effect.gen(function* () {
          const first = yield* Scope.make()
          const second = yield* Scope.make()
          yield* Scope.extend(Layer.build(PgliteEventStore.layerFromClient(client)), first)
          yield* Scope.extend(Layer.build(PgliteEventStore.layerFromClient(client, { schema: "billing" })), second)
          yield* Scope.close(first, Exit.void)
          expect(yield* lockRefusal(dataDir)).toContain(heldByThisProcess(dataDir))
          yield* Scope.close(second, Exit.void)
          expect(yield* lockRefusal(dataDir)).toBeUndefined()
        })
      )
    } finally {
      await client.close()
    }

    const stream = StreamId.unsafeMake("billed")
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const own = yield* Layer.build(PgliteEventStore.layer({ dataDir }))
          const billing = yield* Layer.build(
            PgliteEventStore.layerFromClient(Context.get(own, PgliteEventStore.Client), { schema: "billing" })
          )
          yield* Context.get(billing, EventStore.EventStore).append(
            writesOf({ streamId: stream, expected: "no_stream", events: testEvents(1) })
          )
        })
      )
    )
    expect(await Effect.runPromise(lockRefusal(dataDir))).toBeUndefined()
  }, 120_000)
})

describe("a data directory whose parents are missing", () => {
  it("is created with them, under the lock named after its real path", async () => {
    const real = join(scratch, "real")
    mkdirSync(real)
    const link = join(scratch, "link")
    symlinkSync(real, link)
    const dataDir = join(link, "data", "events")
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(PgliteEventStore.layer({ dataDir }))
          expect(yield* lockRefusal(join(real, "data", "events"))).toContain(`is in use by process ${process.pid}`)
        })
      )
    )
    expect(existsSync(join(real, "data", "events", "PG_VERSION"))).toBe(true)
  }, 120_000)
})

describe("the lock file, where the kernel offers no lock names (macOS, the BSDs)", () => {
  const holdFile = (dataDir: string) => Effect.runPromiseExit(Effect.scoped(lockDataDir(dataDir, "file")))

  it("refuses a second holder, names it, and is released with its scope", async () => {
    const dataDir = freshDir()
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          yield* lockDataDir(dataDir, "file")
          const second = yield* Effect.exit(Effect.scoped(lockDataDir(dataDir, "file")))
          expect(Exit.isFailure(second)).toBe(true)
          if (Exit.isFailure(second) && second.cause._tag === "Fail") {
            expect(second.cause.error.message).toContain(`is in use by process ${process.pid}`)
          }
        })
      )
    )
    expect(existsSync(dataDir)).toBe(false)
    expect(Exit.isSuccess(await holdFile(dataDir))).toBe(true)
  })

  it("takes over a lock whose process is gone, never one whose process is alive", async () => {
    const dead = spawn(process.execPath, ["-e", ""])
    await new Promise((resolve) => dead.on("close", resolve))
    const stale = freshDir()
    const lockFile = lockFileOf(stale)
    const host = (await import("node:os")).hostname()
    writeFileSync(lockFile, JSON.stringify({ pid: dead.pid, since: "2026-01-01T00:00:00.000Z", host }))
    expect(Exit.isSuccess(await holdFile(stale))).toBe(true)

    const alive = freshDir()
    const aliveLock = lockFileOf(alive)
    writeFileSync(aliveLock, JSON.stringify({ pid: process.ppid, since: "2026-01-01T00:00:00.000Z", host }))
    const refused = await holdFile(alive)
    expect(Exit.isFailure(refused)).toBe(true)
    if (Exit.isFailure(refused) && refused.cause._tag === "Fail") {
      expect(refused.cause.error.message).toContain(`in use by process ${process.ppid}`)
      expect(refused.cause.error.message).toContain(`remove ${aliveLock}`)
    }
    expect(JSON.parse(readFileSync(aliveLock, "utf8")).pid).toBe(process.ppid)
  })
})
