/**
 * W7: `streamEvents` over one long stream (1,000,000 events by default), in a
 * child process of its own (lib/child.ts) so that its peak RSS is the store's
 * alone, measured by the child and by GNU time around it.
 */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { startChild } from "../lib/child.js"
import type { Options } from "../lib/options.js"
import type { Progress } from "../lib/progress.js"
import type { Admin } from "../lib/server.js"
import type { ChildResult } from "./long-stream-child.js"

export interface LongStreamResult extends Omit<ChildResult, "type" | "rssTrace"> {
  readonly system: "postgres" | "pglite"
  /** Peak RSS as the kernel counted it for the whole child (GNU time's "Maximum resident set size"). */
  readonly maxRssBytes: number | null
  readonly seedSeconds: number | null
}

export type ReaderResult = Omit<ChildResult, "type"> & { readonly maxRssBytes: number | null }

/**
 * Runs the reading child (long-stream-child.ts) with `args` to its end, reporting progress as it goes;
 * after `budgetSeconds` (if given) the child is told to stop, and reports what it read until then.
 */
export const runReader = async (
  args: ReadonlyArray<string>,
  onProgress: (events: number) => void,
  budgetSeconds?: number
): Promise<ReaderResult> => {
  const child = await startChild<Omit<ChildResult, "type">>(
    "reader",
    new URL("./long-stream-child.ts", import.meta.url),
    args,
    (message) => {
      if (message.type === "progress") onProgress(Number(message.events ?? 0))
    }
  )
  const timer = budgetSeconds === undefined ? undefined : setTimeout(child.stop, budgetSeconds * 1000)
  try {
    const { result, maxRssBytes } = await child.done
    return { ...result, maxRssBytes }
  } finally {
    clearTimeout(timer)
  }
}

/** W7's record of a reader's run: its trace of RSS stays in W8's. */
const longStreamOf = (system: "postgres" | "pglite", { rssTrace: _, ...result }: ReaderResult): LongStreamResult => ({
  ...result,
  system
})

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
    const result = await runReader(
      ["--system", "postgres", "--url", url, "--stream", "long", ...pageArgs(options)],
      (n) =>
        progress.status(`W7 postgres: streamed ${n.toLocaleString("en")} / ${options.w7Events.toLocaleString("en")}`)
    )
    return { ...longStreamOf("postgres", result), seedSeconds }
  } finally {
    await admin.drop(database)
  }
}

/** The same on an in-memory PGlite, seeded inside the child (the database lives in its memory). */
export const longStreamPglite = async (options: Options, progress: Progress): Promise<LongStreamResult> => {
  progress.status(`W7 pglite: seeding ${options.w7PgliteEvents.toLocaleString("en")} events`)
  const result = await runReader(
    ["--system", "pglite", "--events", `${options.w7PgliteEvents}`, "--stream", "long", ...pageArgs(options)],
    (n) =>
      progress.status(`W7 pglite: streamed ${n.toLocaleString("en")} / ${options.w7PgliteEvents.toLocaleString("en")}`)
  )
  return longStreamOf("pglite", result)
}
