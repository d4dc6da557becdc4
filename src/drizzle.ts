/**
 * eventcore's tables as Drizzle tables, for applications that query events
 * with Drizzle: reports, joins with their own tables, admin screens. Read-only
 * in practice: the database refuses UPDATE, DELETE and TRUNCATE of events, and
 * appends go through the store.
 *
 * ```ts
 * import { events } from "eventcore/drizzle"
 * const deposits = await db.select().from(events).where(eq(events.eventType, "MoneyDeposited"))
 * ```
 *
 * `events` and `streams` are in the default schema, `eventcore`; a store given
 * another schema has its tables at `tablesIn(schema)`.
 */
import { defaultSchema, type Tables, tablesIn } from "./sql/schema.js"

export { defaultSchema, type Tables, tablesIn }

export const { events, streams } = tablesIn(defaultSchema)
