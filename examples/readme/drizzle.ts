/** The README's query of eventcore's tables with Drizzle, beside the application's own. */
import { count, desc } from "drizzle-orm"
import { drizzle } from "drizzle-orm/postgres-js"
import { events, streams, tablesIn } from "eventcore/drizzle" // tablesIn("billing") for another schema
import postgres from "postgres"

const db = drizzle({ client: postgres(process.env.DATABASE_URL ?? "postgres://localhost/app") })

export const perType = await db.select({ type: events.eventType, n: count() }).from(events).groupBy(events.eventType)
export const longest = await db.select().from(streams).orderBy(desc(streams.version)).limit(10)
export const billing = tablesIn("billing").events
