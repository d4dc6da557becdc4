/**
 * eventcore's spans exported through OpenTelemetry: a two-stream transfer on
 * PGlite (in memory), each span printed by the console exporter.
 *
 *   npx tsx examples/opentelemetry.ts
 */
import { NodeSdk } from "@effect/opentelemetry"
import { ConsoleSpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer } from "effect"
import { execute, PgliteEventStore } from "eventcore"
import { Open, Transfer } from "../src/demo/domain.js"

const setup = Effect.gen(function* () {
  yield* execute(Open, { account: "alice", owner: "Alice", initialDeposit: 100_00 })
  yield* execute(Open, { account: "bob", owner: "Bob" })
}).pipe(
  // Untraced so that the output is the transfer's trace alone.
  Effect.withTracerEnabled(false)
)

const program = Effect.gen(function* () {
  yield* setup
  const result = yield* execute(Transfer, { from: "alice", to: "bob", amount: 30_00 })
  yield* Effect.log(`transfer appended ${result.events.length} events in ${result.attempts} attempt(s)`)
})

// SimpleSpanProcessor hands each span to the exporter as it ends, so nothing
// waits for a batch; a service would use BatchSpanProcessor and an OTLP exporter.
const TelemetryLive = NodeSdk.layer(() => ({
  resource: { serviceName: "eventcore-example" },
  spanProcessor: new SimpleSpanProcessor(new ConsoleSpanExporter())
}))

Effect.runPromise(program.pipe(Effect.provide(Layer.merge(PgliteEventStore.layer(), TelemetryLive))))
