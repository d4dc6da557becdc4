/**
 * Processes that own a PGlite data directory (test/support/pgliteWriter.ts)
 * or hold its lock alone (test/support/lockHolder.ts), started as real
 * processes, and what a directory holds byte for byte.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { bundle, nodeOptions } from "./bundle.js"

const root = join(import.meta.dirname, "..", "..")

export interface Writer {
  readonly child: ChildProcessWithoutNullStreams
  /** Resolves when the process prints `line` (a prefix match), rejects if it exits first. */
  readonly printed: (line: string) => Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly stdout: () => string
  readonly stderr: () => string
  /** The appends the process reported as acknowledged. */
  readonly acked: () => number
}

/** Run by Node itself, so that a SIGKILL reaches the process that owns the directory (see ./bundle.ts). */
const writer = await bundle(join("test", "support", "pgliteWriter.ts"), "pglite-writer")

/** Starts ./pgliteWriter.ts on `dataDir` (see there for the modes and openers). */
export const startWriter = (
  dataDir: string,
  events: number,
  mode: "hold" | "exit" | "keep",
  opener: "layer" | "client" = "layer"
): Writer => run(writer, [dataDir, String(events), mode, opener])

let lockHolder: Promise<string> | undefined

/** Starts ./lockHolder.ts: a process that holds `dataDir`'s lock (it prints `held`) and opens nothing. */
export const startLockHolder = async (dataDir: string): Promise<Writer> => {
  lockHolder ??= bundle(join("test", "support", "lockHolder.ts"), "lock-holder")
  return run(await lockHolder, [dataDir])
}

const run = (script: string, args: ReadonlyArray<string>): Writer => {
  const child = spawn(process.execPath, [...nodeOptions, script, ...args], {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  const waiters: Array<{ line: string; resolve: () => void }> = []
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
    for (const waiter of [...waiters]) {
      if (stdout.split("\n").some((l) => l.startsWith(waiter.line))) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  )
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    acked: () => stdout.split("\n").filter((l) => l.startsWith("acked ")).length,
    printed: (line) =>
      new Promise<void>((resolve, reject) => {
        if (stdout.split("\n").some((l) => l.startsWith(line))) return resolve()
        waiters.push({ line, resolve })
        void exited.then(({ code }) => reject(new Error(`exited (${code}) before printing ${line}: ${stderr}`)))
      })
  }
}

/** Every file under `dir` with its size and content hash. */
export const snapshot = (dir: string): Record<string, string> => {
  const files: Record<string, string> = {}
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name)
      if (entry.isDirectory()) walk(path)
      else
        files[path.slice(dir.length)] =
          `${statSync(path).size}:${createHash("sha256").update(readFileSync(path)).digest("hex")}`
    }
  }
  walk(dir)
  return files
}
