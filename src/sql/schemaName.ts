/**
 * The PostgreSQL schema a SQL store keeps its tables, functions and migration
 * history in, and the names it accepts for one.
 */
import { Effect } from "effect"
import { StoreError } from "../errors.js"
import { defaultSchema } from "./schema.js"

/**
 * A schema name a store accepts: a plain lower-case identifier of at most 63
 * bytes, neither `public` (where the application's drizzle-kit looks) nor
 * reserved for the system (`pg_`).
 */
const isValidSchemaName = (name: string): boolean =>
  /^[a-z_][a-z0-9_]{0,62}$/.test(name) && name !== "public" && !name.startsWith("pg_")

export interface SchemaOptions {
  /** The PostgreSQL schema of eventcore's tables, functions and migration history (default `eventcore`). */
  readonly schema?: string
}

/** The schema to use, or a `StoreError` of `operation` naming what is wrong with it. */
export const schemaOf = (operation: string, options: SchemaOptions = {}): Effect.Effect<string, StoreError> => {
  const schema = options.schema ?? defaultSchema
  return isValidSchemaName(schema)
    ? Effect.succeed(schema)
    : Effect.fail(
        new StoreError({
          operation,
          message: `Invalid schema name ${JSON.stringify(schema)}: use a lower-case identifier of at most 63 characters (letters, digits, _), not "public" nor one starting with "pg_".`
        })
      )
}
