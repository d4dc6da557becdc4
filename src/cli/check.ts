/**
 * What `eventcore check` does besides opening the store: imports the
 * application's module and finds its event schemas, and prints
 * `EventSchema.check`'s report, as an aligned table for people or one JSON
 * object.
 */
import { existsSync } from "node:fs"
import { extname, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Effect, Schema } from "effect"
import * as EventSchema from "../EventSchema.js"
import { CommandFailed } from "./failures.js"
import { oneLine, table } from "./table.js"

/** An event schema of the application's, under the name it exports it by. */
export interface NamedSchema {
  readonly name: string
  readonly schema: Schema.Schema.AnyNoContext
}

const isEventSchema = (value: unknown): value is NamedSchema["schema"] =>
  Schema.isSchema(value) && EventSchema.codecOf(value as NamedSchema["schema"]).eventTypes.length > 0

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]

/** Why `module` (resolved to `path`) did not import, in the command line's words. */
export const importFailure = (module: string, path: string, error: unknown): string => {
  const code = (error as { readonly code?: unknown } | null)?.code
  if (code === "ERR_UNKNOWN_FILE_EXTENSION" && [".ts", ".mts", ".cts"].includes(extname(path))) {
    return `cannot import ${module}: Node does not run TypeScript by itself; run the command line under tsx (NODE_OPTIONS="--import tsx" eventcore check ${module}) or check the compiled JavaScript`
  }
  return `cannot import ${module}: ${firstLine(error)}`
}

/**
 * Imports `module` (a path, resolved against the current directory) and
 * returns its event schemas: the export `exportName` (a schema or an array of
 * schemas) if given, else every export that is an Effect Schema naming event
 * types, each once.
 */
export const loadEventSchemas = (
  module: string,
  exportName: string | undefined
): Effect.Effect<ReadonlyArray<NamedSchema>, CommandFailed> =>
  Effect.gen(function* () {
    const path = resolve(module)
    if (!existsSync(path)) return yield* new CommandFailed({ message: `cannot import ${module}: there is no ${path}` })
    const exports = yield* Effect.tryPromise({
      try: () => import(pathToFileURL(path).href) as Promise<Record<string, unknown>>,
      catch: (error) => new CommandFailed({ message: importFailure(module, path, error) })
    })
    if (exportName !== undefined) {
      if (!Object.hasOwn(exports, exportName)) {
        return yield* new CommandFailed({
          message: `${module} has no export named ${JSON.stringify(exportName)} (its exports: ${Object.keys(exports).sort().join(", ") || "none"})`
        })
      }
      const named = exports[exportName]
      const values: ReadonlyArray<unknown> = Array.isArray(named) ? named : [named]
      const names = Array.isArray(named) ? values.map((_, i) => `${exportName}[${i}]`) : [exportName]
      const notSchema = values.findIndex((value) => !isEventSchema(value))
      if (values.length === 0 || notSchema !== -1) {
        return yield* new CommandFailed({
          message: `${values.length === 0 ? `${exportName} is an empty array` : `${names[notSchema]} is not an event schema`}: --export names an Effect Schema of Schema.TaggedStruct events, or an array of them`
        })
      }
      return values.map((schema, i) => ({ name: names[i] as string, schema: schema as NamedSchema["schema"] }))
    }
    const found = new Map<unknown, string>()
    for (const [name, value] of Object.entries(exports)) {
      if (!found.has(value) && isEventSchema(value)) found.set(value, name)
    }
    if (found.size === 0) {
      return yield* new CommandFailed({
        message: `${module} exports no event schema (an Effect Schema of Schema.TaggedStruct events): export one, or name it with --export`
      })
    }
    return [...found].map(([schema, name]) => ({ name, schema: schema as NamedSchema["schema"] }))
  })

const unknownType = "no schema has this type, nor renames, replaces or ignores it"

/** A pair as the failure line names it: `ProductAdded version 1 (unknown)`. */
const describePair = (type: EventSchema.CheckedType) =>
  `${type.eventType} version ${type.schemaVersion} (${type.outcome})`

/** The one line a check with failures ends with, on stderr: how many, and which (the first few). */
export const failureSummary = (report: EventSchema.CheckReport): string => {
  const shown = report.failures.slice(0, 5).map(describePair)
  const more = report.failures.length - shown.length
  return `${report.failures.length} of ${report.types.length} stored (event type, schema version) pairs would stop a reader: ${shown.join(", ")}${more > 0 ? `, and ${more} more` : ""}`
}

/** The report as a table under a header, one stored pair a line, the error (one line, unpadded) last; then what it was checked with. */
export const formatCheck = (
  report: EventSchema.CheckReport,
  schemas: ReadonlyArray<NamedSchema>
): ReadonlyArray<string> => {
  if (report.types.length === 0) return ["no events"]
  const header = ["TYPE", "VERSION", "EVENTS", "OUTCOME", "ERROR"]
  const rows = report.types.map((type) => [
    type.eventType,
    String(type.schemaVersion),
    String(type.count),
    type.outcome,
    type.outcome === "unknown" ? unknownType : type.error === undefined ? "-" : oneLine(type.error)
  ])
  const pairs = `${report.types.length} stored (event type, schema version) pair${report.types.length === 1 ? "" : "s"}`
  return [
    ...table(header, rows, ["VERSION", "EVENTS"]),
    `${pairs} checked with ${schemas.map((s) => s.name).join(", ")}: ${report.failures.length === 0 ? "none" : report.failures.length} would stop a reader`
  ]
}

/** The report as one JSON object: the schemas by name, each pair with every field (`null` when there is none). */
export const checkJson = (
  where: string,
  module: string,
  report: EventSchema.CheckReport,
  schemas: ReadonlyArray<NamedSchema>
) =>
  JSON.stringify({
    database: where,
    module,
    schemas: schemas.map((s) => s.name),
    types: report.types.map((type) => ({
      eventType: type.eventType,
      schemaVersion: type.schemaVersion,
      count: type.count,
      outcome: type.outcome,
      readBy: type.readBy.map((i) => schemas[i]?.name),
      error: type.error ?? (type.outcome === "unknown" ? unknownType : null)
    })),
    failures: report.failures.length
  })
