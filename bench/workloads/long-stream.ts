/**
 * W7: `streamEvents` over one long stream (1,000,000 events by default), in a
 * child process of its own so that its peak RSS is the store's alone. The
 * child is run under `/usr/bin/time -v` when it exists, for the kernel's
 * account of the peak (ru_maxrss) besides the child's own sampling.
 *
 * The child runs as plain JavaScript, bundled here with eventcore's sources (the
 * npm packages stay external), as an application would run it: under tsx, the
 * transpiler alone held about 110 MB of the child's RSS before it streamed anything.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { build } from "esbuild"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import type { ChildResult } from "./long-stream-child.js"

export interface LongStreamResult extends Omit<ChildResult, "type"> {
  readonly system: "postgres" | "pglite"
  /** Peak RSS as the kernel counted it for the whole child (GNU time's "Maximum resident set size"). */
  readonly maxRssBytes: number | null
  readonly seedSeconds: number | null
}

const root = fileURLToPath(new URL("../..", import.meta.url))
const gnuTime = "/usr/bin/time"

let bundled: Promise<string> | undefined
/** The child as one ES module, built once per run. */
const childBundle = () => {
  bundled ??= (async () => {
    // Inside the project, so that node finds the external packages from there.
    const outfile = join(root, "node_modules", ".cache", "eventcore-bench", "long-stream-child.mjs")
    await build({
      entryPoints: [fileURLToPath(new URL("./long-stream-child.ts", import.meta.url))],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      // eventcore resolves to its sources through bench/tsconfig.json's paths; npm packages stay external.
      tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)),
      external: ["effect", "postgres", "drizzle-orm", "@electric-sql/pglite", "fast-check"],
      logLevel: "error"
    })
    return outfile
  })()
  return bundled
}

/** Runs the child and collects its result line, reporting progress as it goes. */
const runChild = async (
  args: ReadonlyArray<string>,
  onProgress: (events: number) => void
): Promise<LongStreamResult> => {
  const child = await childBundle()
  return new Promise((resolve, reject) => {
    const node = [process.execPath, "--expose-gc", child, ...args]
    const timed = existsSync(gnuTime)
    const [command, ...rest] = timed ? [gnuTime, "-v", ...node] : node
    const proc = spawn(command as string, rest, { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let result: ChildResult | undefined
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      let newline = stdout.indexOf("\n")
      while (newline >= 0) {
        const line = stdout.slice(0, newline)
        stdout = stdout.slice(newline + 1)
        newline = stdout.indexOf("\n")
        try {
          const message = JSON.parse(line) as { type: string; events?: number }
          if (message.type === "progress") onProgress(message.events ?? 0)
          if (message.type === "result") result = message as ChildResult
        } catch {
          // not ours: ignore
        }
      }
    })
    proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    proc.on("error", reject)
    proc.on("close", (code) => {
      if (code !== 0 || result === undefined) {
        reject(new Error(`the W7 child exited with ${code}: ${stderr.trim().slice(-2000)}`))
        return
      }
      const kbytes = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1]
      const { type: _, ...measured } = result
      resolve({
        system: "postgres",
        ...measured,
        maxRssBytes: kbytes === undefined ? null : Number(kbytes) * 1024
      })
    })
  })
}

const pageArgs = (options: Options) =>
  options.w7PageSize === undefined ? [] : ["--page-size", `${options.w7PageSize}`]

/** Seeds a database of its own with one stream of `options.w7Events` events, streams it, drops the database. */
export const longStreamPostgres = async (
  admin: Admin,
  database: string,
  options: Options,
  progress: Progress
): Promise<LongStreamResult> => {
  const url = await admin.create(database)
  try {
    await Effect.runPromise(PostgresEventStore.migrate({ url }))
    progress.status(`W7 postgres: seeding ${options.w7Events.toLocaleString("en")} events`)
    const seeding = performance.now()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      // One statement; the trigger advances the stream's row to the last version.
      await sql`
        insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
        select gen_random_uuid(), 'long', g, 'Recorded', jsonb_build_object('n', g, 'note', repeat('x', 160), 'ok', true)
        from generate_series(1, ${options.w7Events}::int) g`
      await sql`vacuum analyze eventcore.events`
    } finally {
      await sql.end({ timeout: 5 })
    }
    const seedSeconds = (performance.now() - seeding) / 1000
    progress.log(`W7 postgres: seeded ${options.w7Events.toLocaleString("en")} events in ${seedSeconds.toFixed(1)} s`)
    const result = await runChild(
      ["--system", "postgres", "--url", url, "--stream", "long", ...pageArgs(options)],
      (n) =>
        progress.status(`W7 postgres: streamed ${n.toLocaleString("en")} / ${options.w7Events.toLocaleString("en")}`)
    )
    return { ...result, seedSeconds }
  } finally {
    await admin.drop(database)
  }
}

/** The same on an in-memory PGlite, seeded inside the child (the database lives in its memory). */
export const longStreamPglite = async (options: Options, progress: Progress): Promise<LongStreamResult> => {
  progress.status(`W7 pglite: seeding ${options.w7PgliteEvents.toLocaleString("en")} events`)
  const result = await runChild(
    ["--system", "pglite", "--events", `${options.w7PgliteEvents}`, "--stream", "long", ...pageArgs(options)],
    (n) =>
      progress.status(`W7 pglite: streamed ${n.toLocaleString("en")} / ${options.w7PgliteEvents.toLocaleString("en")}`)
  )
  return { ...result, system: "pglite" }
}
