import { InMemoryEventStore } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"

runEventStoreContract("InMemoryEventStore", () => InMemoryEventStore.layer, { propertyRuns: 100 })
