/**
 * The contract suite on one in-memory store and one PGlite database for every
 * test, each already holding events and written to while the suite runs
 * (test/postgres/contract.test.ts does the same on a server).
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer } from "effect"
import { EventStore, InMemoryEventStore, PgliteEventStore } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"
import { afterAll, beforeAll, describe } from "vitest"
import { initialisedDump } from "./support/initialisedPglite.js"
import { useUnrelatedEvents } from "./support/sharedStore.js"

describe("one in-memory store for every test", () => {
  const store = Effect.runSync(InMemoryEventStore.make)
  const shared = () => Layer.succeed(EventStore.EventStore, store)
  useUnrelatedEvents(shared)
  runEventStoreContract("InMemoryEventStore holding other events", shared, { propertyRuns: 25 })
})

describe("one PGlite database for every test", () => {
  let db: PGlite | undefined
  beforeAll(async () => {
    // A new database from the dump of the cluster PGlite's initdb leaves (1 s, where initdb takes 3-6).
    db = await PGlite.create({ loadDataDir: await initialisedDump() })
    await Effect.runPromise(PgliteEventStore.migrate(db))
  })
  afterAll(() => db?.close())
  const shared = () => Layer.succeed(EventStore.EventStore, PgliteEventStore.make(db as PGlite))
  useUnrelatedEvents(shared)
  runEventStoreContract("PgliteEventStore on a database holding other events", shared, { propertyRuns: 10 })
})
