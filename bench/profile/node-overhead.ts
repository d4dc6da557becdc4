/**
 * The Node side of the PostgreSQL store alone: W2's operations (read a
 * stream's version, append one event at it) through the bench's own calls
 * (`ManagedRuntime.runPromise`, as an application would), against a database
 * that answers at once with canned rows. What it measures is eventcore's and
 * Effect's CPU per operation, with no socket, driver or server, against a
 * floor: the same two statements, each run as one `tryPromise`.
 *
 * On this machine's VM, CPU spent between a query's reply and the next query
 * weighs several times over at concurrency 1: a process that waits on the
 * server runs its next step on cold caches (bench/profile/cpu-split.ts shows
 * the store's Node CPU per operation at 5-10 x what this loop measures).
 *
 *   npx tsx bench/profile/node-overhead.ts [--ops 50000] [--reps 5]
 */
import { parseArgs } from "node:util"
import { Effect, Layer, ManagedRuntime } from "effect"
import { EventStore, StreamId, StreamWrites } from "eventcore"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"

const { values } = parseArgs({
  options: { ops: { type: "string", default: "50000" }, reps: { type: "string", default: "5" } }
})

const statements = SqlEventStore.statementsIn("eventcore")
const versionRow = [[1]]
const appendRow = [[JSON.stringify({ versions: [2], positions: ["2"], transaction: "1000", recordedAt: Date.now() })]]
/** A 1,000-event stream's rows as postgres.js returns them (int8 as text, jsonb parsed, timestamptz a Date). */
const streamRows = Array.from({ length: 1000 }, (_, i) => [
  1000,
  String(5000 + i),
  String(i + 1),
  crypto.randomUUID(),
  "w4",
  i + 1,
  "Deposited",
  { accountId: "acc-1", amount: i, note: "x".repeat(120) },
  {},
  new Date()
])
const runPrepared: SqlEventStore.RunPrepared = (statement) =>
  Promise.resolve(
    statement === statements.append ? appendRow : statement === statements.readStream ? streamRows : versionRow
  )

const store = SqlEventStore.make({ schema: "eventcore", runPrepared })
const runtime = ManagedRuntime.make(Layer.succeed(EventStore.EventStore, store))
const streamId = StreamId.unsafeMake("w2-1")
const data = { accountId: "acc-1", amount: 100, note: "x".repeat(120) }

const version = Effect.flatMap(EventStore.EventStore, (s) =>
  Effect.map(s.readStream(streamId, { maxCount: 0 }), (read) => read.version)
)
const append = (expected: number) =>
  Effect.gen(function* () {
    const s = yield* EventStore.EventStore
    const writes = yield* StreamWrites.expect(StreamWrites.empty, streamId, expected).pipe(
      Effect.flatMap(StreamWrites.append({ streamId, eventType: "Deposited", data }))
    )
    return yield* s.append(writes)
  })

const readStream = Effect.flatMap(EventStore.EventStore, (s) => s.readStream(StreamId.unsafeMake("w4")))

/** The floors: the same statements, each one `runPromise` of one `tryPromise`, and the rows left as they came. */
const floorVersion = Effect.tryPromise(() => runPrepared(statements.version, [streamId]))
const floorAppend = Effect.tryPromise(() => runPrepared(statements.append, ["{}"]))
const floorRead = Effect.tryPromise(() => runPrepared(statements.readStream, ["w4", 1, 1000]))

const ops = Number(values.ops)
const variants: Record<string, { readonly runs: number; readonly op: () => Promise<unknown> }> = {
  "read version + append": { runs: ops, op: async () => runtime.runPromise(append(await runtime.runPromise(version))) },
  "read version + append, floor": {
    runs: ops,
    op: async () => runtime.runPromise(floorAppend.pipe(Effect.as(await runtime.runPromise(floorVersion))))
  },
  "readStream of 1,000 events": { runs: ops / 100, op: () => runtime.runPromise(readStream) },
  "readStream of 1,000 events, floor": { runs: ops / 100, op: () => runtime.runPromise(floorRead) }
}
const best = new Map<string, number>()
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const [name, { runs, op }] of Object.entries(variants)) {
    const cpu = process.cpuUsage()
    for (let i = 0; i < runs; i++) await op()
    const used = process.cpuUsage(cpu)
    best.set(name, Math.min(best.get(name) ?? Number.POSITIVE_INFINITY, (used.user + used.system) / runs))
  }
}
for (const [name, us] of best) console.log(`${name}: ${us.toFixed(1)} µs of CPU (best of ${values.reps})`)
await runtime.dispose()
