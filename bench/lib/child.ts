/**
 * Measuring processes of their own (W4.readStream's systems, W7's and W8's
 * readers, W9's subscriber in another process): each entry is bundled once per run with esbuild from
 * eventcore's sources (the npm packages stay external) and run as plain
 * JavaScript, as an application would run it (under tsx, the transpiler alone
 * held about 110 MB of a child's RSS before it did anything). A child is run
 * under `/usr/bin/time -v`, when it exists, for the kernel's account of its
 * peak RSS (ru_maxrss) besides its own sampling.
 *
 * A child writes JSON lines on stdout, each with a `type`; the last is
 * `{"type":"result",...}`. Closing its stdin asks it to finish (the children
 * that run until told, like W9's subscriber, listen for that); a child that
 * takes requests (W4's systems) reads them as JSON lines on its stdin.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { basename, join } from "node:path"
import type { Readable, Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = fileURLToPath(new URL("../..", import.meta.url))
const gnuTime = "/usr/bin/time"

const bundles = new Map<string, Promise<string>>()

/** The child `entry` (a .ts file under bench/) as one ES module, built once per run. */
const bundle = (entry: string): Promise<string> => {
  let bundled = bundles.get(entry)
  if (bundled === undefined) {
    bundled = (async () => {
      // Inside the project, so that node finds the external packages from there.
      const outfile = join(root, "node_modules", ".cache", "eventcore-bench", basename(entry).replace(/\.ts$/, ".mjs"))
      await build({
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        // eventcore resolves to its sources through bench/tsconfig.json's paths; npm packages stay external.
        tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)),
        external: [
          "effect",
          "postgres",
          "drizzle-orm",
          "@electric-sql/pglite",
          "fast-check",
          "@event-driven-io/emmett",
          "@event-driven-io/emmett-postgresql"
        ],
        logLevel: "error"
      })
      return outfile
    })()
    bundles.set(entry, bundled)
  }
  return bundled
}

/** A line a child wrote. */
export interface ChildMessage {
  readonly type: string
  readonly [key: string]: unknown
}

export interface Child<R> {
  /** Asks the child to finish (closes its stdin). */
  readonly stop: () => void
  /** Writes `message` to the child's stdin as one JSON line. */
  readonly send: (message: object) => void
  /** The child's result line, and its peak RSS as the kernel counted it (GNU time's "Maximum resident set size"). */
  readonly done: Promise<{ readonly result: R; readonly maxRssBytes: number | null }>
}

/**
 * Starts the child `entry` (e.g. `new URL("./long-stream-child.ts", import.meta.url)`)
 * with `args`; `onMessage` sees every line it writes but the result.
 */
export const startChild = async <R>(
  name: string,
  entry: URL,
  args: ReadonlyArray<string>,
  onMessage: (message: ChildMessage) => void = () => {}
): Promise<Child<R>> => {
  const script = await bundle(fileURLToPath(entry))
  const node = [process.execPath, "--expose-gc", script, ...args]
  const timed = existsSync(gnuTime)
  const [command, ...rest] = timed ? [gnuTime, "-v", ...node] : node
  const proc: ChildProcessByStdio<Writable, Readable, Readable> = spawn(command as string, rest, {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"]
  })
  // A child that exits before reading its stdin must not take the bench down with EPIPE.
  proc.stdin.on("error", () => {})
  const done = new Promise<{ result: R; maxRssBytes: number | null }>((resolve, reject) => {
    let stdout = ""
    let stderr = ""
    let result: R | undefined
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      let newline = stdout.indexOf("\n")
      while (newline >= 0) {
        const line = stdout.slice(0, newline)
        stdout = stdout.slice(newline + 1)
        newline = stdout.indexOf("\n")
        let message: ChildMessage | undefined
        try {
          message = JSON.parse(line) as ChildMessage
        } catch {
          // not ours: ignore
        }
        if (message === undefined || typeof message.type !== "string") continue
        if (message.type === "result") {
          const { type: _, ...measured } = message
          result = measured as R
        } else {
          onMessage(message)
        }
      }
    })
    proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    proc.on("error", reject)
    proc.on("close", (code) => {
      if (code !== 0 || result === undefined) {
        reject(new Error(`the ${name} child exited with ${code}: ${stderr.trim().slice(-2000)}`))
        return
      }
      const kbytes = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1]
      resolve({ result, maxRssBytes: kbytes === undefined ? null : Number(kbytes) * 1024 })
    })
  })
  return {
    stop: () => proc.stdin.end(),
    send: (message) => proc.stdin.write(`${JSON.stringify(message)}\n`),
    done
  }
}
