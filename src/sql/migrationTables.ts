/**
 * What drizzle-kit reads to generate the migrations in `drizzle/`: eventcore's
 * tables without a schema, so that the generated SQL names none and the
 * migrator can apply it in whichever schema a store uses (see `schema.ts`).
 * Nothing else imports this module.
 */
import { pgTable } from "drizzle-orm/pg-core"
import { define } from "./schema.js"

export const { events, projections, deadLetters, snapshots, subjectKeys, erasures, streamStates } = define(pgTable)
