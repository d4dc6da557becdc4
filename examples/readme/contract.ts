/** The README's contract suite for a store of your own (a vitest test file in your project). */
import { runEventStoreContract } from "eventcore/testing"
import * as MyStore from "./MyStore.js"

runEventStoreContract("MyStore", () => MyStore.layer, { propertyRuns: 40 })
