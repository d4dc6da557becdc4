/**
 * The files of examples/ run as their reader would run them: by Node with tsx,
 * from the repository root.
 */
import { type NodeRun, startNode } from "./nodeProcess.js"

export interface ExampleRun extends NodeRun {
  readonly pid: number | undefined
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
export const runWithTsx = async (args: ReadonlyArray<string>, options: ExampleOptions): Promise<ExampleRun> => {
  const started = startNode(["--import", "tsx", ...args], options.env, options.timeoutMillis)
  return { pid: started.child.pid, ...(await started.done) }
}
