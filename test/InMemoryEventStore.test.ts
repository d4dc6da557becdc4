import { InMemoryEventStore } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"
import { describe } from "vitest"
import { defineStoredTypesTests } from "./support/storedTypes.js"

// Mutation runs lower the property runs: every mutant reruns the suite.
const propertyRuns = Number(process.env.EVENTCORE_PROPERTY_RUNS ?? 100)

runEventStoreContract("InMemoryEventStore", () => InMemoryEventStore.layer, { propertyRuns })

describe("InMemoryEventStore: the event types it holds", () => {
  defineStoredTypesTests(() => InMemoryEventStore.layer)
})
