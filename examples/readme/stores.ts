// biome-ignore-all format: the comments stay aligned, as the README shows them
/** The README's stores: every layer that supplies the `EventStore`, and its options. */
import type { PGlite } from "@electric-sql/pglite"
import { Redacted } from "effect"
import { InMemoryEventStore, PgliteEventStore, PostgresEventStore } from "eventcore"
import type postgres from "postgres"

declare const client: PGlite // a PGlite your application opened
declare const sql: postgres.Sql // a postgres.js pool your application opened
const dataDir = "./data/events"
const url = Redacted.make(process.env.DATABASE_URL ?? "postgres://localhost/app")
const replicaUrl = process.env.REPLICA_URL ?? "postgres://standby/app"

InMemoryEventStore.layer                                  // a fresh empty store per build
PgliteEventStore.layer()                                  // embedded PostgreSQL in memory
PgliteEventStore.layer({ dataDir })                       // ... or persisted in a directory (created with its parents)
PgliteEventStore.layer({ dataDir, migrationsFolder: "./drizzle" }) // ... with your own tables: your drizzle-kit migrations, applied after eventcore's
PgliteEventStore.layerFromClient(client)                  // a PGlite your application opened (never closed by the store; its directory locked while the layer lives)
PostgresEventStore.layer({ url, autoMigrate: true })      // PostgreSQL 15-18; autoMigrate applies pending migrations at start
PostgresEventStore.layerConfig                            // DATABASE_URL, EVENTCORE_MAX_CONNECTIONS, EVENTCORE_ACQUIRE_TIMEOUT, EVENTCORE_SCHEMA, EVENTCORE_REPLICA_URL
PostgresEventStore.layer({ url, replicaUrl })             // the global log read on a hot standby, once it has replayed the primary's migrations
PostgresEventStore.layerFromClient(sql)                   // a postgres.js pool your application owns (never closed by the store)
PgliteEventStore.layer({ dataDir, schema: "billing" })    // every SQL store takes the PostgreSQL schema it lives in (default "eventcore")
PostgresEventStore.poolOptions()                          // ... which it should open with these: postgres(url, { ...poolOptions(), max: 20 })
