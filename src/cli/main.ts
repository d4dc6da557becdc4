#!/usr/bin/env node
/**
 * The `eventcore` command line: migrate, inspect and demo a store, on PGlite
 * (`--data-dir`) or PostgreSQL (`--url`, or `DATABASE_URL`).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Args, Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Data, Effect, Layer, Logger, LogLevel, Option } from "effect"
import { defaultDemoOptions, formatReport, runDemo } from "../../examples/bank/demo.js"
import { EventStore } from "../index.js"
import * as StreamId from "../StreamId.js"
import { listStreams, stats } from "../sql/admin.js"
import { connect, describeTarget, type Target } from "./connection.js"

const dataDir = Options.directory("data-dir").pipe(
  Options.withDescription("a PGlite data directory (created if missing)"),
  Options.optional
)
const url = Options.text("url").pipe(
  Options.withDescription("a PostgreSQL URL (default: the DATABASE_URL environment variable)"),
  Options.optional
)
const connection = { dataDir, url }

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** `--url`, else DATABASE_URL, else `--data-dir`; `fallback` decides when none is given. */
const targetOf = (
  options: { readonly dataDir: Option.Option<string>; readonly url: Option.Option<string> },
  fallback: () => Target | undefined
): Effect.Effect<Target, UsageError> => {
  const url = Option.getOrUndefined(options.url) ?? process.env.DATABASE_URL
  if (url !== undefined && url !== "") return Effect.succeed({ kind: "postgres", url })
  const dir = Option.getOrUndefined(options.dataDir)
  if (dir !== undefined) return Effect.succeed({ kind: "pglite", dataDir: dir })
  const chosen = fallback()
  return chosen === undefined
    ? Effect.fail(new UsageError({ message: "no database: pass --data-dir DIR or --url URL, or set DATABASE_URL" }))
    : Effect.succeed(chosen)
}

const required = () => undefined

const migrate = Command.make("migrate", connection, (options) =>
  Effect.gen(function* () {
    const target = yield* targetOf(options, required)
    const { applied } = yield* Effect.scoped(Effect.map(connect(target), (c) => c.migration))
    yield* Console.log(
      applied.length === 0
        ? `${describeTarget(target)}: up to date, no migration applied`
        : `${describeTarget(target)}: applied ${applied.join(", ")}`
    )
  })
).pipe(Command.withDescription("apply the migrations in drizzle/ and say what was applied"))

const streams = Command.make(
  "streams",
  {
    ...connection,
    prefix: Options.text("prefix").pipe(
      Options.withDescription("only streams whose id starts with this"),
      Options.optional
    ),
    limit: Options.integer("limit").pipe(Options.withDefault(100))
  },
  (options) =>
    Effect.gen(function* () {
      if (options.limit < 1) return yield* new UsageError({ message: "--limit must be at least 1" })
      const target = yield* targetOf(options, required)
      const rows = yield* Effect.scoped(
        Effect.flatMap(connect(target), ({ db }) =>
          listStreams(db, {
            limit: options.limit,
            ...Option.match(options.prefix, { onNone: () => ({}), onSome: (prefix) => ({ prefix }) })
          })
        )
      )
      if (rows.length === 0) return yield* Console.log("no streams")
      const width = Math.max(...rows.map((row) => row.streamId.length))
      for (const row of rows) yield* Console.log(`${row.streamId.padEnd(width)}  ${row.version}`)
    })
).pipe(Command.withDescription("list streams with their versions"))

const read = Command.make(
  "read",
  {
    ...connection,
    streamId: Args.text({ name: "streamId" }),
    from: Options.integer("from").pipe(Options.withDescription("first version to show"), Options.withDefault(1)),
    limit: Options.integer("limit").pipe(Options.optional),
    json: Options.boolean("json").pipe(Options.withDescription("one JSON object per line"))
  },
  (options) =>
    Effect.gen(function* () {
      const streamId = yield* StreamId.make(options.streamId)
      const target = yield* targetOf(options, required)
      const result = yield* Effect.scoped(
        Effect.flatMap(connect(target), ({ store }) =>
          store.readStream(streamId, {
            fromVersion: options.from,
            ...Option.match(options.limit, { onNone: () => ({}), onSome: (maxCount) => ({ maxCount }) })
          })
        )
      )
      for (const event of result.events) {
        yield* Console.log(
          options.json
            ? JSON.stringify({ ...event, globalPosition: event.globalPosition.toString() })
            : `${String(event.streamVersion).padStart(6)}  ${event.recordedAt.toISOString()}  #${event.globalPosition}  ${event.eventType}  ${JSON.stringify(event.data)}`
        )
      }
      if (!options.json) yield* Console.log(`${result.streamId}: version ${result.version}`)
    })
).pipe(Command.withDescription("print a stream's events (readable, or JSON lines with --json)"))

const statsCommand = Command.make("stats", connection, (options) =>
  Effect.gen(function* () {
    const target = yield* targetOf(options, required)
    const result = yield* Effect.scoped(Effect.flatMap(connect(target), ({ db }) => stats(db)))
    yield* Console.log(`events       ${result.events}`)
    yield* Console.log(`streams      ${result.streams}`)
    yield* Console.log(`database     ${(result.databaseBytes / 2 ** 20).toFixed(1)} MB`)
    if (result.eventsPerType.length > 0) yield* Console.log("events per type")
    for (const row of result.eventsPerType) yield* Console.log(`  ${row.eventType.padEnd(24)} ${row.count}`)
  })
).pipe(Command.withDescription("event count, stream count, events per type, database size"))

const positive = (name: string, value: number) =>
  value >= 1 ? Effect.succeed(value) : Effect.fail(new UsageError({ message: `--${name} must be at least 1` }))

const demo = Command.make(
  "demo",
  {
    ...connection,
    accounts: Options.integer("accounts").pipe(Options.withDefault(defaultDemoOptions.accounts)),
    transfers: Options.integer("transfers").pipe(Options.withDefault(defaultDemoOptions.transfers)),
    concurrency: Options.integer("concurrency").pipe(Options.withDefault(defaultDemoOptions.concurrency))
  },
  (options) =>
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
      yield* Console.log(`eventcore bank demo on ${describeTarget(target)}`)
      const report = yield* Effect.scoped(
        Effect.flatMap(connect(target), ({ store }) =>
          runDemo({
            accounts,
            transfers,
            concurrency,
            initialBalance: defaultDemoOptions.initialBalance,
            interactive: process.stdout.isTTY === true,
            print: (line) => process.stdout.write(`${line}\n`),
            write: (text) => process.stdout.write(text)
          }).pipe(Effect.provideService(EventStore.EventStore, store))
        )
      )
      for (const line of formatReport(report, describeTarget(target))) yield* Console.log(line)
      if (!report.invariants.every((check) => check.ok))
        return yield* new UsageError({ message: "the invariant check failed" })
    })
).pipe(Command.withDescription("run the bank demo: concurrent multi-stream transfers, then an invariant check"))

const eventcore = Command.make("eventcore").pipe(
  Command.withDescription("inspect and exercise an eventcore store"),
  Command.withSubcommands([migrate, streams, read, statsCommand, demo])
)

const cli = Command.run(eventcore, { name: "eventcore", version: "0.1.0" })

/** One line on stderr and a non-zero exit code; never a stack trace. */
const reportFailure = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    const error = Cause.squash(cause)
    // @effect/cli has already printed what was wrong with the arguments.
    if (ValidationError.isValidationError(error)) {
      process.exitCode = 2
      return
    }
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`eventcore: ${message.split("\n")[0]}\n`)
    process.exitCode = 1
  })

cli(process.argv).pipe(
  Effect.catchAllCause(reportFailure),
  // Retries log warnings; the commands report what matters themselves.
  Logger.withMinimumLogLevel(LogLevel.Error),
  Effect.provide(Layer.mergeAll(NodeContext.layer)),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
