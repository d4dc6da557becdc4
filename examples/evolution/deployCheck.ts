/**
 * Before a deploy, with the release's code: can it read every event the
 * store holds? Prints every stored (event type, schema version) pair that no
 * schema reads or that fails to decode, and exits 1 if there is one.
 *
 *     DATABASE_URL=postgres://... npx tsx examples/evolution/deployCheck.ts
 */
import { Effect } from "effect"
import { EventSchema, PostgresEventStore } from "eventcore"
import { AccountEvent } from "./bank.js"

// Every event schema the release reads with: its commands', projections' and reactors'.
const report = await Effect.runPromise(
  EventSchema.check([AccountEvent]).pipe(Effect.provide(PostgresEventStore.layerConfig))
)
for (const { eventType, schemaVersion, count, outcome, error } of report.failures) {
  console.error(`${eventType} v${schemaVersion}, ${count} events: ${error ?? outcome}`)
}
console.log(`${report.types.length} stored (type, version) pairs, ${report.failures.length} unreadable`)
if (report.failures.length > 0) process.exitCode = 1
