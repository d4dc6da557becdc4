/**
 * The files of examples/ run as their reader would run them: by Node with tsx,
 * from the repository root.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")

export interface ExampleRun {
  readonly pid: number | undefined
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface ExampleOptions {
  /** Variables beside the inherited ones, of which DATABASE_URL is not: an example that wants it is given it. */
  readonly env?: Record<string, string>
  /** Killed (SIGKILL) after this long. */
  readonly timeoutMillis: number
}

/**
 * `node --import tsx ...args` (a file, or `--eval` code), which the README's
 * `npx tsx <file>` amounts to, in one process: the tsx command starts a second
 * one, which a timeout would not kill.
 */
export const runWithTsx = (args: ReadonlyArray<string>, options: ExampleOptions): Promise<ExampleRun> => {
  const { DATABASE_URL: _, ...inherited } = process.env
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: root,
    env: { ...inherited, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: options.timeoutMillis,
    killSignal: "SIGKILL"
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => {
    stdout += chunk
  })
  child.stderr.on("data", (chunk) => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => resolve({ pid: child.pid, code, signal, stdout, stderr }))
  })
}
