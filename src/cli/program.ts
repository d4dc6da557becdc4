/**
 * The `eventcore` command line's commands and the program they make up:
 * migrate, inspect and demo a store, on PGlite (`--data-dir`) or PostgreSQL
 * (`--url`, or `DATABASE_URL`). Importing it does nothing; `main.ts` parses
 * `process.argv` against {@link program} and runs the command.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Cause, Console, Data, Effect, Either, HashMap, Logger, LogLevel, Option, Stream } from "effect"
import { defaultDemoOptions, formatReport, runDemo } from "../demo/demo.js"
import type { RecordedEvent } from "../Event.js"
import { StoreError } from "../errors.js"
import { EventStore } from "../index.js"
import * as LogMessage from "../LogMessage.js"
import * as LogPosition from "../LogPosition.js"
import * as Projection from "../Projection.js"
import * as StreamId from "../StreamId.js"
import { listStreams, stats } from "../sql/admin.js"
import { storeError } from "../sql/errors.js"
import { defaultSchema } from "../sql/schema.js"
import { schemaOf } from "../sql/schemaName.js"
import { ArgumentError, type Command, command, flag, integer, type Program, text, texts } from "./args.js"
import { connectForReading, connectForWriting, describeTarget, type Target } from "./connection.js"
import { formatProjections, projectionsJson, projectionsMigration } from "./projections.js"
import { formatStatus, logStatus, statusJson } from "./status.js"

const connection = {
  "data-dir": text("DIR", "a PGlite data directory"),
  url: text("URL", "a PostgreSQL URL (default: the DATABASE_URL environment variable)"),
  schema: text("NAME", `the PostgreSQL schema of eventcore's tables (default: ${defaultSchema})`)
}

const writing = {
  ...connection,
  "data-dir": text("DIR", "a PGlite data directory (created if missing)")
}

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/**
 * `--url` or `--data-dir` (not both), else DATABASE_URL; `fallback` decides
 * when none is given. What the user typed wins over the environment.
 */
const targetOf = (
  options: { readonly "data-dir": string | undefined; readonly url: string | undefined },
  fallback: () => Target | undefined
): Effect.Effect<Target, UsageError> => {
  const dir = options["data-dir"]
  if (options.url !== undefined && dir !== undefined) {
    return Effect.fail(new UsageError({ message: "pass either --url or --data-dir, not both" }))
  }
  if (dir !== undefined) return Effect.succeed({ kind: "pglite", dataDir: dir })
  const url = options.url ?? process.env.DATABASE_URL
  if (url !== undefined && url !== "") return Effect.succeed({ kind: "postgres", url })
  const chosen = fallback()
  return chosen === undefined
    ? Effect.fail(new UsageError({ message: "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL" }))
    : Effect.succeed(chosen)
}

const schemaOption = (options: { readonly schema: string | undefined }) =>
  schemaOf("open", options.schema === undefined ? {} : { schema: options.schema })

const required = () => undefined

/**
 * A database failure told as a failure of the command the user ran (`stats`),
 * never of an internal step (`read_stream`, `migrate`): messages the store
 * derived from a driver error are derived again for the command.
 */
const asCommand =
  (name: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | StoreError, R> =>
    Effect.mapError(effect, (error) =>
      error instanceof StoreError &&
      error.operation !== name &&
      error.cause !== undefined &&
      error.message === storeError(error.operation, error.cause).message
        ? storeError(name, error.cause)
        : error
    )

/** What a command line runs: an Effect whose failure is reported in one line ({@link failureLine}). */
export type Run = Effect.Effect<void, unknown>

const migrate = command(
  {
    name: "migrate",
    summary: "create or upgrade eventcore's schema (the migrations in drizzle/) and say what was applied",
    options: writing
  },
  ({ options }) =>
    Effect.gen(function* () {
      const target = yield* targetOf(options, required)
      const schema = yield* schemaOption(options)
      const { applied } = yield* Effect.scoped(Effect.map(connectForWriting(target, schema), (c) => c.migration))
      yield* Console.log(
        applied.length === 0
          ? `${describeTarget(target)}: up to date, no migration applied`
          : `${describeTarget(target)}: applied ${applied.join(", ")}`
      )
    }).pipe(asCommand("migrate"))
)

const streams = command(
  {
    name: "streams",
    summary: "list streams with their versions",
    options: {
      prefix: text("TEXT", "only streams whose id starts with this"),
      limit: integer("list at most this many streams", 100),
      ...connection
    }
  },
  ({ options }) =>
    Effect.gen(function* () {
      if (options.limit < 1) return yield* new UsageError({ message: "--limit must be at least 1" })
      const target = yield* targetOf(options, required)
      const rows = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, yield* schemaOption(options)), ({ db, schema }) =>
          listStreams(db, schema, {
            limit: options.limit,
            ...(options.prefix === undefined ? {} : { prefix: options.prefix })
          })
        )
      )
      if (rows.length === 0) return yield* Console.log("no streams")
      const width = Math.max(...rows.map((row) => row.streamId.length))
      for (const row of rows) yield* Console.log(`${row.streamId.padEnd(width)}  ${row.version}`)
    }).pipe(asCommand("streams"))
)

/** An event as `read --json` and `tail --json` print it: the bigint global position as a string. */
const eventJson = (event: RecordedEvent) =>
  JSON.stringify({ ...event, globalPosition: event.globalPosition.toString() })

const read = command(
  {
    name: "read",
    summary: "print a stream's events (readable, or JSON lines with --json)",
    args: [{ name: "streamId", description: "the stream to read" }],
    options: {
      from: integer("first version to show", 1),
      limit: integer("show at most this many events (default: all)"),
      json: flag("one JSON object per line"),
      ...connection
    }
  },
  ({ options, args }) =>
    Effect.gen(function* () {
      const streamId = yield* StreamId.make(args.streamId)
      const target = yield* targetOf(options, required)
      const result = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, yield* schemaOption(options)), ({ store }) =>
          store.readStream(streamId, {
            fromVersion: options.from,
            ...(options.limit === undefined ? {} : { maxCount: options.limit })
          })
        )
      )
      for (const event of result.events) {
        yield* Console.log(
          options.json
            ? eventJson(event)
            : `${String(event.streamVersion).padStart(6)}  ${event.recordedAt.toISOString()}  #${event.globalPosition}  ${event.eventType}  ${JSON.stringify(event.data)}`
        )
      }
      if (!options.json) yield* Console.log(`${result.streamId}: version ${result.version}`)
    }).pipe(asCommand("read"))
)

const statsCommand = command(
  { name: "stats", summary: "event count, stream count, events per type, database size", options: connection },
  ({ options }) =>
    Effect.gen(function* () {
      const target = yield* targetOf(options, required)
      const result = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, yield* schemaOption(options)), ({ db, schema }) => stats(db, schema))
      )
      yield* Console.log(`events       ${result.events}`)
      yield* Console.log(`streams      ${result.streams}`)
      yield* Console.log(`database     ${(result.databaseBytes / 2 ** 20).toFixed(1)} MB`)
      if (result.eventsPerType.length > 0) yield* Console.log("events per type")
      for (const row of result.eventsPerType) yield* Console.log(`  ${row.eventType.padEnd(24)} ${row.count}`)
    }).pipe(asCommand("stats"))
)

/**
 * What the store logs while following the log (a read failed and is retried;
 * a transaction holds the log back, naming it), one line each on stderr:
 * `eventcore: <message> (key=value, ...)`. Anything below a warning is dropped.
 */
export const warningLogger = Logger.make(({ logLevel, message, annotations }) => {
  if (LogLevel.lessThan(logLevel, LogLevel.Warning)) return
  const text = (Array.isArray(message) ? message : [message])
    .map(String)
    .join(" ")
    .replace(/^eventcore: /, "")
  const details = [...HashMap.entries(annotations)]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(", ")
  process.stderr.write(`eventcore: ${text}${details === "" ? "" : ` (${details})`}\n`.replace(/\n(?!$)/g, " "))
})

const tail = command(
  {
    name: "tail",
    summary: "print the global log in log order, or follow it live with --follow",
    options: {
      after: text("POS", "print the events after this log position (default: from the start of the log)"),
      type: texts("TYPE", "only events of this type"),
      prefix: text("TEXT", "only events of streams whose id starts with this"),
      follow: flag("keep printing events as they are committed, until Ctrl-C"),
      limit: integer("stop after this many events (default: all)"),
      json: flag("one JSON object per line"),
      ...connection
    }
  },
  ({ options }) => {
    // Checked as the arguments are: a position can be wrong before there is any database.
    const after =
      options.after === undefined
        ? LogPosition.start
        : Either.getOrElse(LogPosition.validate(options.after), () => {
            throw new ArgumentError(
              `--after expects a log position (20 digits, "-", 19 digits, as tail prints them), got ${JSON.stringify(options.after)}`
            )
          })
    return Effect.gen(function* () {
      const limit = options.limit
      if (limit !== undefined && limit < 1) return yield* new UsageError({ message: "--limit must be at least 1" })
      const target = yield* targetOf(options, required)
      const schema = yield* schemaOption(options)
      const logOptions = {
        after,
        filter: {
          ...(options.type.length === 0 ? {} : { eventTypes: options.type }),
          ...(options.prefix === undefined ? {} : { streamPrefix: options.prefix })
        },
        pageSize: Math.min(limit ?? EventStore.defaultPageSize, EventStore.defaultPageSize)
      }
      const print = (event: RecordedEvent) =>
        Console.log(
          options.json
            ? eventJson(event)
            : `${event.position}  ${event.recordedAt.toISOString()}  ${event.streamId}@${event.streamVersion}  ${event.eventType}  ${JSON.stringify(event.data)}`
        )
      const printed = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema), ({ store }) => {
          const events = options.follow
            ? store
                .subscribe(logOptions)
                .pipe(
                  Stream.filterMap(
                    LogMessage.match({ Event: ({ event }) => Option.some(event), CaughtUp: () => Option.none() })
                  )
                )
            : store.streamAll(logOptions)
          const run = Stream.runCount(Stream.tap(limit === undefined ? events : Stream.take(events, limit), print))
          // While following, say what holds the log back, and when a failed read is retried.
          return options.follow
            ? run.pipe(
                Logger.withMinimumLogLevel(LogLevel.Warning),
                Effect.provide(Logger.replace(Logger.defaultLogger, warningLogger))
              )
            : run
        })
      )
      if (printed === 0 && !options.json) yield* Console.log("no events")
    }).pipe(asCommand("tail"))
  }
)

const status = command(
  {
    name: "status",
    summary: "the global log's head, what readers can read, and what holds them back",
    options: { json: flag("one JSON object"), ...connection }
  },
  ({ options }) =>
    Effect.gen(function* () {
      const target = yield* targetOf(options, required)
      const schema = yield* schemaOption(options)
      const result = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema), ({ db, migrations }) => logStatus(db, schema, migrations))
      )
      const where = describeTarget(target)
      if (options.json) return yield* Console.log(statusJson(where, schema, result))
      for (const line of formatStatus(where, schema, result)) yield* Console.log(line)
    }).pipe(asCommand("status"))
)

const projections = command(
  {
    name: "projections",
    summary: "every projection and reactor: status, position, lag, owner, last update and error",
    options: { json: flag("one JSON array"), ...connection }
  },
  ({ options }) =>
    Effect.gen(function* () {
      const target = yield* targetOf(options, required)
      const statuses = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, yield* schemaOption(options)), ({ context, migrations }) =>
          // A schema from before projections has no checkpoint table, so none.
          migrations.pending.includes(projectionsMigration)
            ? Effect.succeed([])
            : Effect.provide(Projection.status, context)
        )
      )
      if (options.json) return yield* Console.log(projectionsJson(statuses))
      for (const line of formatProjections(statuses)) yield* Console.log(line)
    }).pipe(asCommand("projections"))
)

const positive = (name: string, value: number) =>
  value >= 1 ? Effect.succeed(value) : Effect.fail(new UsageError({ message: `--${name} must be at least 1` }))

const demo = command(
  {
    name: "demo",
    summary: "run the bank demo: concurrent multi-stream transfers, then an invariant check",
    options: {
      accounts: integer("accounts to open, at least 2", defaultDemoOptions.accounts),
      transfers: integer("random transfers between them", defaultDemoOptions.transfers),
      concurrency: integer("fibers running transfers at once", defaultDemoOptions.concurrency),
      ...writing,
      "data-dir": text("DIR", "a PGlite data directory (default: a fresh temporary directory)")
    }
  },
  ({ options }) =>
    Effect.gen(function* () {
      const accounts = yield* positive("accounts", options.accounts)
      if (accounts < 2)
        return yield* new UsageError({ message: "--accounts must be at least 2: a transfer needs two accounts" })
      const transfers = yield* positive("transfers", options.transfers)
      const concurrency = yield* positive("concurrency", options.concurrency)
      const target = yield* targetOf(options, () => ({
        kind: "pglite",
        dataDir: mkdtempSync(join(tmpdir(), "eventcore-demo-"))
      }))
      const schema = yield* schemaOption(options)
      yield* Console.log(`eventcore bank demo on ${describeTarget(target)}`)
      const report = yield* Effect.scoped(
        Effect.flatMap(connectForWriting(target, schema), ({ db, context }) =>
          runDemo({
            accounts,
            transfers,
            concurrency,
            initialBalance: defaultDemoOptions.initialBalance,
            interactive: process.stdout.isTTY === true,
            print: (line) => process.stdout.write(`${line}\n`),
            write: (text) => process.stdout.write(text),
            // The bank's balances, kept in bank_balances beside eventcore's schema.
            readModel: { db }
          }).pipe(Effect.provide(context))
        )
      )
      for (const line of formatReport(report, describeTarget(target))) yield* Console.log(line)
      if (!report.invariants.every((check) => check.ok))
        return yield* new UsageError({ message: "the invariant check failed" })
    }).pipe(asCommand("demo"))
)

const commands: ReadonlyArray<Command<Run>> = [migrate, streams, read, tail, statsCommand, status, projections, demo]

/**
 * The version in package.json at the package root: two levels above this
 * module in the repository (src/cli/), three in the build (dist/src/cli/).
 */
const version = () => {
  const file = ["../../package.json", "../../../package.json"]
    .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
    .find((path) => existsSync(path))
  if (file === undefined) throw new Error("cannot find eventcore's package.json")
  return (JSON.parse(readFileSync(file, "utf8")) as { readonly version: string }).version
}

/** What a failed command prints on stderr: one line, never a stack trace. */
export const failureLine = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const message = error instanceof Error ? error.message : String(error)
  return `eventcore: ${message.split("\n")[0]}\n`
}

export const program: Program<Run> = {
  name: "eventcore",
  summary: "inspect and exercise an eventcore store",
  commands,
  notes: [
    "Each command works on PostgreSQL at --url URL (else DATABASE_URL), or on PGlite in --data-dir DIR",
    "(the demo's default: a fresh temporary directory). migrate and demo create or upgrade eventcore's",
    "schema; the other commands only look: they never create, migrate or change anything."
  ],
  version
}
