/**
 * A Node process the tests start, from the repository root, with what it
 * prints collected. DATABASE_URL is not inherited: a test that wants it gives it.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { join } from "node:path"
import type { Readable } from "node:stream"

export const root = join(import.meta.dirname, "..", "..")

export interface NodeRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface NodeProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>
  /** What the process has printed so far. */
  readonly output: () => { readonly stdout: string; readonly stderr: string }
  readonly done: Promise<NodeRun>
}

/** `node ...args`, with `env` beside the inherited variables; killed (SIGKILL) after `timeoutMillis` if given. */
export const startNode = (
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined> = {},
  timeoutMillis?: number
): NodeProcess => {
  const { DATABASE_URL: _, ...inherited } = process.env
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(timeoutMillis === undefined ? {} : { timeout: timeoutMillis, killSignal: "SIGKILL" as const })
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => {
    stdout += chunk
  })
  child.stderr.on("data", (chunk) => {
    stderr += chunk
  })
  const done = new Promise<NodeRun>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { child, output: () => ({ stdout, stderr }), done }
}
