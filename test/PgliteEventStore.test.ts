import { runEventStoreContract } from "eventcore/testing"
import { usePgliteTemplate } from "./support/pglite.js"

const pglite = usePgliteTemplate()

runEventStoreContract("PgliteEventStore", () => pglite.layer, { propertyRuns: 25 })
