/**
 * The `eventcore` command line's commands and the program they make up:
 * migrate, inspect and demo a store, on PGlite (`--data-dir`) or PostgreSQL
 * (`--url`, or `DATABASE_URL`). Importing it does nothing; `run.ts` parses
 * the arguments against {@link program} and runs the command. What a command
 * can check before it runs (the database named, the URL's scheme, the schema's
 * name, the stream id) it checks as the arguments are parsed: a usage error,
 * found before anything is opened.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, Either, HashMap, Logger, LogLevel, Option, Stream } from "effect"
import { defaultDemoOptions, formatReport, runDemo } from "../demo/demo.js"
import type { RecordedEvent } from "../Event.js"
import * as EventSchema from "../EventSchema.js"
import { EventStore } from "../index.js"
import * as LogMessage from "../LogMessage.js"
import * as LogPosition from "../LogPosition.js"
import * as PersonalData from "../PersonalData.js"
import * as Projection from "../Projection.js"
import * as Snapshot from "../Snapshot.js"
import * as StreamId from "../StreamId.js"
import * as StreamLifecycle from "../StreamLifecycle.js"
import { listSnapshots, listStreams, stats } from "../sql/admin.js"
import { driverError } from "../sql/errors.js"
import { defaultSchema } from "../sql/schema.js"
import { schemaOf } from "../sql/schemaName.js"
import { type Command, command, flag, integer, type Program, text, texts, usageError, withSubcommands } from "./args.js"
import { checkJson, failureSummary, formatCheck, loadEventSchemas } from "./check.js"
import {
  connectForChanging,
  connectForReading,
  connectForWriting,
  describeTarget,
  hasMigrated,
  postgresUrlProblem,
  type Target
} from "./connection.js"
import {
  archivedLine,
  erasedLine,
  privileged,
  purgedLine,
  statsLines,
  streamStates,
  subjects,
  truncatedLine
} from "./erasure.js"
import { asClause, CommandFailed, insufficientPrivilege } from "./failures.js"
import { formatProjections, projectionsJson, projectionsMigration } from "./projections.js"
import { clearedLine, formatSnapshots, snapshotsJson } from "./snapshots.js"
import { formatStatus, logStatus, statusJson } from "./status.js"
import { aligned, widthsOf } from "./table.js"

const connection = {
  "data-dir": text("DIR", "a PGlite data directory"),
  url: text("URL", "a PostgreSQL URL (default: the DATABASE_URL environment variable)"),
  schema: text("NAME", `the PostgreSQL schema of eventcore's tables (default: ${defaultSchema})`)
}

const writing = {
  ...connection,
  "data-dir": text("DIR", "a PGlite data directory (created if missing)")
}

/** `url`, from `source` (`--url`, `DATABASE_URL`), if it is a PostgreSQL URL; else an argument error. */
const postgresTarget = (source: string, url: string): Target => {
  const problem = postgresUrlProblem(url)
  return problem === undefined ? { kind: "postgres", url } : usageError(`${source} ${problem}`)
}

/**
 * Where the command runs: `--url` or `--data-dir` (not both), else
 * DATABASE_URL, else undefined. What the user typed wins over the
 * environment. Checked as the arguments are, before anything is opened.
 */
const targetOf = (options: {
  readonly "data-dir": string | undefined
  readonly url: string | undefined
}): Target | undefined => {
  const dir = options["data-dir"]
  if (options.url !== undefined && dir !== undefined) return usageError("pass either --url or --data-dir, not both")
  if (dir !== undefined) {
    return dir === "" ? usageError('--data-dir needs a directory, got ""') : { kind: "pglite", dataDir: dir }
  }
  if (options.url !== undefined) return postgresTarget("--url", options.url)
  const fromEnvironment = process.env.DATABASE_URL
  return fromEnvironment === undefined || fromEnvironment === ""
    ? undefined
    : postgresTarget("DATABASE_URL", fromEnvironment)
}

/** {@link targetOf}, for the commands that need a database named. */
const requiredTarget = (options: Parameters<typeof targetOf>[0]): Target =>
  targetOf(options) ?? usageError("no database: pass --data-dir DIR or --url URL, or set DATABASE_URL")

/** The schema `--schema` names, or the default one. */
const schemaOption = (options: { readonly schema: string | undefined }): string =>
  Either.getOrElse(
    Effect.runSync(Effect.either(schemaOf("open", options.schema === undefined ? {} : { schema: options.schema }))),
    (error) => usageError(asClause(error.message))
  )

/** The stream `<streamId>` names, else an argument error. */
const streamArgument = (streamId: string) =>
  Either.getOrElse(StreamId.validate(streamId), (error) => usageError(asClause(error.message)))

/** A text option the command cannot run without, not empty (`what` it needs, in words). */
const requiredText = (value: string | undefined, option: string, what: string): string => {
  if (value === undefined) return usageError(`missing option ${option}`)
  return value === "" ? usageError(`${option} needs ${what}, got ""`) : value
}

/** What a command line runs: an Effect whose failure is reported in one line (see ./failures.ts). */
export type Run = Effect.Effect<void, unknown>

const migrate = command(
  {
    name: "migrate",
    summary: "create or upgrade eventcore's schema (the migrations in drizzle/) and say what was applied",
    options: writing
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const { applied } = yield* Effect.scoped(Effect.map(connectForWriting(target, schema), (c) => c.migration))
      yield* Console.log(
        applied.length === 0
          ? `${describeTarget(target)}: up to date, no migration applied`
          : `${describeTarget(target)}: applied ${applied.join(", ")}`
      )
    })
  }
)

const streams = command(
  {
    name: "streams",
    summary: "list streams with their versions",
    options: {
      prefix: text("TEXT", "only streams whose id starts with this"),
      limit: integer("list at most this many streams", { default: 100, min: 1 }),
      ...connection
    }
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const rows = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "streams"), ({ db, schema }) =>
          listStreams(db, schema, {
            limit: options.limit,
            ...(options.prefix === undefined ? {} : { prefix: options.prefix })
          })
        )
      )
      if (rows.length === 0) return yield* Console.log("no streams")
      const table = rows.map((row) => [row.streamId, String(row.version)])
      for (const line of aligned(table, widthsOf(table))) yield* Console.log(line)
    })
  }
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
      from: integer("first version to show", { default: 1, min: 1 }),
      limit: integer("show at most this many events (default: all)", { min: 1 }),
      json: flag("one JSON object per line"),
      ...connection
    }
  },
  ({ options, args }) => {
    const streamId = streamArgument(args.streamId)
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const result = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "read", "streams"), ({ store }) =>
          store.readStream(streamId, {
            fromVersion: options.from,
            ...(options.limit === undefined ? {} : { maxCount: options.limit })
          })
        )
      )
      if (options.json) {
        for (const event of result.events) yield* Console.log(eventJson(event))
        return
      }
      const table = result.events.map((event) => [
        String(event.streamVersion),
        event.recordedAt.toISOString(),
        `#${event.globalPosition}`,
        event.eventType,
        JSON.stringify(event.data)
      ])
      for (const line of aligned(table, widthsOf(table), [0, 2])) yield* Console.log(line)
      yield* Console.log(`${result.streamId}: version ${result.version}`)
    })
  }
)

const statsCommand = command(
  {
    name: "stats",
    summary: "event and stream counts, archived and truncated streams, erased subjects, events per type, database size",
    options: connection
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const { result, states, counted } = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "stats"), ({ db, schema, migrations }) =>
          Effect.all({
            result: stats(db, schema),
            // A schema from before erasure or the stream lifecycle has nothing of them to count.
            states: hasMigrated(migrations, privileged.archive.migration)
              ? streamStates(db, schema)
              : Effect.succeed(undefined),
            counted: hasMigrated(migrations, privileged.erase.migration)
              ? subjects(db, schema)
              : Effect.succeed(undefined)
          })
        )
      )
      // The streams' versions still count the events purges removed.
      yield* Console.log(`events       ${result.events - (states?.purged ?? 0)}`)
      yield* Console.log(`streams      ${result.streams}`)
      for (const line of statsLines(schema, states, counted)) yield* Console.log(line)
      yield* Console.log(`database     ${(result.databaseBytes / 2 ** 20).toFixed(1)} MB`)
      if (result.eventsPerType.length === 0) return
      yield* Console.log("events per type")
      const table = result.eventsPerType.map((row) => [row.eventType, String(row.count)])
      for (const line of aligned(table, widthsOf(table), [1])) yield* Console.log(`  ${line}`)
    })
  }
)

/**
 * What the store logs while following the log (a read failed and is retried;
 * a transaction holds the log back, naming it), one line each on stderr:
 * `eventcore <command>: <message> (key=value, ...)`. Anything below a warning
 * is dropped.
 */
export const warningLogger = (command: string) =>
  Logger.make(({ logLevel, message, annotations }) => {
    if (LogLevel.lessThan(logLevel, LogLevel.Warning)) return
    const text = (Array.isArray(message) ? message : [message])
      .map(String)
      .join(" ")
      .replace(/^eventcore: /, "")
    const details = [...HashMap.entries(annotations)]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, value]) => `${key}=${String(value)}`)
      .join(", ")
    process.stderr.write(
      `eventcore ${command}: ${text}${details === "" ? "" : ` (${details})`}\n`.replace(/\n(?!$)/g, " ")
    )
  })

/**
 * The lines `tail` prints for a batch of events (a page of the log), its
 * columns as wide as the widest value printed so far: a batch's lines align
 * with each other and with the batches before them, and a wider value
 * further on widens the columns from its batch on. (`tail` prints as it
 * reads: it cannot know the widest value of a log it has not read yet.)
 */
export const tailLines = () => {
  let widths: ReadonlyArray<number> = []
  return (events: ReadonlyArray<RecordedEvent>): ReadonlyArray<string> => {
    const table = events.map((event) => [
      event.position,
      event.recordedAt.toISOString(),
      `${event.streamId}@${event.streamVersion}`,
      event.eventType,
      JSON.stringify(event.data)
    ])
    widths = widthsOf(table, widths)
    return aligned(table, widths)
  }
}

const tail = command(
  {
    name: "tail",
    summary: "print the global log in log order, or follow it live with --follow",
    options: {
      after: text("POS", "print the events after this log position (default: from the start of the log)"),
      type: texts("TYPE", "only events of this type"),
      prefix: text("TEXT", "only events of streams whose id starts with this"),
      follow: flag("keep printing events as they are committed, until Ctrl-C"),
      limit: integer("stop after this many events (default: all)", { min: 1 }),
      json: flag("one JSON object per line"),
      ...connection
    }
  },
  ({ options }) => {
    const after =
      options.after === undefined
        ? LogPosition.start
        : Either.getOrElse(LogPosition.validate(options.after), () =>
            usageError(
              `--after expects a log position (20 digits, "-", 19 digits, as tail prints them), got ${JSON.stringify(options.after)}`
            )
          )
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    const limit = options.limit
    const logOptions = {
      after,
      filter: {
        ...(options.type.length === 0 ? {} : { eventTypes: options.type }),
        ...(options.prefix === undefined ? {} : { streamPrefix: options.prefix })
      },
      pageSize: Math.min(limit ?? EventStore.defaultPageSize, EventStore.defaultPageSize)
    }
    return Effect.gen(function* () {
      const lines = tailLines()
      const print = (events: ReadonlyArray<RecordedEvent>) =>
        Effect.forEach(options.json ? events.map(eventJson) : lines(events), (line) => Console.log(line), {
          discard: true
        })
      const printed = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "tail", "events"), ({ store }) => {
          const events = options.follow
            ? store
                .subscribe(logOptions)
                .pipe(
                  Stream.filterMap(
                    LogMessage.match({ Event: ({ event }) => Option.some(event), CaughtUp: () => Option.none() })
                  )
                )
            : store.streamAll(logOptions)
          const limited = limit === undefined ? events : Stream.take(events, limit)
          // A chunk is a page of the log: printed, and aligned, as one.
          const run = Stream.runFold(
            Stream.mapChunksEffect(limited, (chunk) => Effect.as(print([...chunk]), chunk)),
            0,
            (count) => count + 1
          )
          // While following, say what holds the log back, and when a failed read is retried.
          return options.follow
            ? run.pipe(
                Logger.withMinimumLogLevel(LogLevel.Warning),
                Effect.provide(Logger.replace(Logger.defaultLogger, warningLogger("tail")))
              )
            : run
        })
      )
      if (printed === 0 && !options.json) yield* Console.log("no events")
    })
  }
)

const status = command(
  {
    name: "status",
    summary: "the global log's head, what readers can read, and what holds them back",
    options: { json: flag("one JSON object"), ...connection }
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const result = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "status"), ({ db, migrations }) =>
          logStatus(db, schema, migrations)
        )
      )
      const where = describeTarget(target)
      if (options.json) return yield* Console.log(statusJson(where, schema, result))
      for (const line of formatStatus(where, schema, result)) yield* Console.log(line)
    })
  }
)

const projections = command(
  {
    name: "projections",
    summary: "every projection and reactor: status, position, lag, owner, last update and error",
    options: { json: flag("one JSON array"), ...connection }
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const statuses = yield* Effect.scoped(
        Effect.flatMap(connectForReading(target, schema, "projections"), ({ context, migrations }) =>
          // A schema from before projections has no checkpoint table, so none.
          migrations.pending.includes(projectionsMigration)
            ? Effect.succeed([])
            : Effect.provide(Projection.status, context)
        )
      )
      if (options.json) return yield* Console.log(projectionsJson(statuses))
      for (const line of formatProjections(statuses)) yield* Console.log(line)
    })
  }
)

/** `--command NAME`, unless empty. */
const commandOption = (options: { readonly command: string | undefined }) => {
  if (options.command === "") usageError('--command needs a command\'s name, got ""')
  return options.command
}

const clearSnapshots = command(
  {
    name: "clear",
    summary: "remove stored snapshots of command state (a cache: commands then fold in full and write new ones)",
    options: {
      command: text("NAME", "only this command's snapshots (default: every command's)"),
      ...connection
    }
  },
  ({ options }) => {
    const only = commandOption(options)
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      // The store's own clear: it removes what it would have read.
      const removed = yield* Effect.scoped(
        Effect.flatMap(connectForChanging(target, schema, "snapshots clear", "snapshots"), ({ context }) =>
          Effect.provide(Snapshot.clear(only), context)
        )
      ).pipe(
        Effect.catchTag("StoreError", (error) => {
          const { code, message } = driverError(error.cause)
          return Effect.fail(
            code === insufficientPrivilege
              ? new CommandFailed({
                  message: `this role may not remove snapshots (${message}): clearing them needs DELETE on the snapshots table, which only the owner of eventcore's schema has (docs/security.md); run it as the owner`
                })
              : error
          )
        })
      )
      yield* Console.log(clearedLine(removed, only))
    })
  }
)

const snapshots = withSubcommands(
  command(
    {
      name: "snapshots",
      summary: "snapshots of command state, per command: state version, event versions, how many, last written",
      options: {
        command: text("NAME", "only this command's snapshots"),
        json: flag("one JSON array"),
        ...connection
      }
    },
    ({ options }) => {
      const only = commandOption(options)
      const target = requiredTarget(options)
      const schema = schemaOption(options)
      return Effect.gen(function* () {
        const summaries = yield* Effect.scoped(
          Effect.flatMap(connectForReading(target, schema, "snapshots", "snapshots"), ({ db, schema }) =>
            listSnapshots(db, schema)
          )
        )
        // One row per command and versions: few enough to filter here.
        const shown = only === undefined ? summaries : summaries.filter((summary) => summary.command === only)
        if (options.json) return yield* Console.log(snapshotsJson(shown))
        for (const line of formatSnapshots(shown)) yield* Console.log(line)
      })
    }
  ),
  [clearSnapshots]
)

/** Whether to go on: `--yes`, or an argument error saying what the command would do (`doing`) and to add it. */
const confirmed = (yes: boolean, doing: string, verb: string) => {
  if (!yes) usageError(`${doing}; add --yes to ${verb}`)
}

/**
 * Makes `change` (the command `name`'s) through the function only a privileged
 * role may call, once the session's role is found to be allowed it, and prints
 * what `line` says of its outcome.
 */
const changeAndSay = <A, E>(
  target: Target,
  schema: string,
  name: keyof typeof privileged,
  change: Effect.Effect<A, E, EventStore.EventStore>,
  line: (outcome: A) => string
) =>
  Effect.flatMap(
    Effect.scoped(
      Effect.flatMap(connectForChanging(target, schema, name, privileged[name]), ({ context }) =>
        Effect.provide(change, context)
      )
    ),
    (outcome) => Console.log(line(outcome))
  )

const erase = command(
  {
    name: "erase",
    summary: "erase a data subject's personal data for good: its key destroyed, the erasure recorded (needs --yes)",
    options: {
      subject: text("ID", "the data subject to erase, as events name it"),
      by: text("NAME", "who erases it, for the audit of erasures (a team or a ticket rather than a person's name)"),
      yes: flag("erase it (without --yes the command only says what erasing does)"),
      ...connection
    }
  },
  ({ options }) => {
    const subject = requiredText(options.subject, "--subject", "a subject's id")
    const by = requiredText(options.by, "--by", "a name")
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    confirmed(
      options.yes,
      `erasing subject ${JSON.stringify(subject)} destroys its key: its personal data become unreadable for good, in every event and every copy of the log, and every snapshot is removed`,
      "erase it"
    )
    return changeAndSay(target, schema, "erase", PersonalData.erase(subject, { by }), erasedLine)
  }
)

const archive = command(
  {
    name: "archive",
    summary: "archive a stream: its reads and appends refused from then on, its events kept in the log (needs --yes)",
    args: [{ name: "streamId", description: "the stream to archive" }],
    options: {
      yes: flag("archive it (without --yes the command only says what archiving does)"),
      ...connection
    }
  },
  ({ options, args }) => {
    const streamId = streamArgument(args.streamId)
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    confirmed(
      options.yes,
      `archiving stream ${JSON.stringify(streamId)} is for good: its reads and appends are refused from then on (its events stay in the global log)`,
      "archive it"
    )
    return changeAndSay(target, schema, "archive", StreamLifecycle.archive(streamId), archivedLine)
  }
)

const truncate = command(
  {
    name: "truncate",
    summary: "hide a stream's events before a version from reads and commands (needs --yes; purge removes them)",
    args: [{ name: "streamId", description: "the stream to truncate" }],
    options: {
      before: integer("the version its reads start at, from 1 to its version (its last event is kept)", {
        min: 1,
        placeholder: "VERSION"
      }),
      yes: flag("truncate it (without --yes the command only says what truncating does)"),
      ...connection
    }
  },
  ({ options, args }) => {
    const streamId = streamArgument(args.streamId)
    const before = options.before ?? usageError("missing option --before")
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    confirmed(
      options.yes,
      `truncating stream ${JSON.stringify(streamId)} before version ${before} hides its events before it from reads and commands for good (\`eventcore purge\` then removes them)`,
      "truncate it"
    )
    return changeAndSay(target, schema, "truncate", StreamLifecycle.truncate(streamId, { before }), (truncated) =>
      truncatedLine(truncated, before)
    )
  }
)

const purge = command(
  {
    name: "purge",
    summary: "remove for good the events truncations hid, from the global log too, and say how many (needs --yes)",
    options: {
      yes: flag("remove them (without --yes the command only says what purging does)"),
      ...connection
    }
  },
  ({ options }) => {
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    confirmed(
      options.yes,
      "purging removes the events truncations hid for good, from the global log too (projections rebuilt later never see them)",
      "purge them"
    )
    return changeAndSay(target, schema, "purge", StreamLifecycle.purgeTruncated, purgedLine)
  }
)

const check = command(
  {
    name: "check",
    summary: "check that every stored event type and schema version decodes with the application's event schemas",
    args: [
      {
        name: "module",
        description:
          'the JavaScript module exporting them, a path from the current directory (a .ts module only when the command line runs under tsx: NODE_OPTIONS="--import tsx")'
      }
    ],
    options: {
      export: text(
        "NAME",
        "check with this export only: a schema, or an array of schemas (default: every event schema exported)"
      ),
      json: flag("one JSON object"),
      ...connection
    }
  },
  ({ options, args }) => {
    if (args.module === "") usageError('<module> needs a path, got ""')
    if (options.export === "") usageError('--export needs a name, got ""')
    const target = requiredTarget(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      // The application's module first: its mistakes are found before the database is opened.
      const schemas = yield* loadEventSchemas(args.module, options.export)
      const where = describeTarget(target)
      const report = yield* Effect.scoped(
        Effect.gen(function* () {
          // Listing the stored (type, version) pairs reads each event's schema version.
          const { context } = yield* connectForReading(target, schema, "check", "events")
          return yield* Effect.provide(EventSchema.check(schemas.map((named) => named.schema)), context)
        })
      )
      if (options.json) yield* Console.log(checkJson(where, args.module, report, schemas))
      else for (const line of formatCheck(report, schemas)) yield* Console.log(line)
      if (report.failures.length > 0) return yield* new CommandFailed({ message: failureSummary(report) })
    })
  }
)

const demo = command(
  {
    name: "demo",
    summary: "run the bank demo: concurrent multi-stream transfers, then an invariant check",
    options: {
      accounts: integer("accounts to open, at least 2", { default: defaultDemoOptions.accounts, min: 2 }),
      transfers: integer("random transfers between them", { default: defaultDemoOptions.transfers, min: 1 }),
      concurrency: integer("fibers running transfers at once", { default: defaultDemoOptions.concurrency, min: 1 }),
      ...writing,
      "data-dir": text("DIR", "a PGlite data directory (default: a fresh temporary directory)")
    }
  },
  ({ options }) => {
    const chosen = targetOf(options)
    const schema = schemaOption(options)
    return Effect.gen(function* () {
      const target = chosen ?? { kind: "pglite", dataDir: mkdtempSync(join(tmpdir(), "eventcore-demo-")) }
      yield* Console.log(`eventcore bank demo on ${describeTarget(target)}`)
      const report = yield* Effect.scoped(
        Effect.flatMap(connectForWriting(target, schema), ({ db, context }) =>
          runDemo({
            accounts: options.accounts,
            transfers: options.transfers,
            concurrency: options.concurrency,
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
        return yield* new CommandFailed({ message: "the invariant check failed" })
    })
  }
)

const commands: ReadonlyArray<Command<Run>> = [
  migrate,
  streams,
  read,
  tail,
  statsCommand,
  status,
  projections,
  snapshots,
  erase,
  archive,
  truncate,
  purge,
  check,
  demo
]

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

export const program: Program<Run> = {
  name: "eventcore",
  summary: "inspect and exercise an eventcore store",
  commands,
  notes: [
    "Each command works on PostgreSQL at --url URL (else DATABASE_URL), or on PGlite in --data-dir DIR",
    "(the demo's default: a fresh temporary directory). migrate and demo create or upgrade eventcore's",
    "schema; snapshots clear removes snapshots, a cache; erase, archive, truncate and purge change what",
    "the store holds for good, only with --yes and, on PostgreSQL, only as a role granted their functions",
    "(the schema's owner: docs/erasure.md); the other commands only look: they never create, migrate or",
    "change anything."
  ],
  version
}
