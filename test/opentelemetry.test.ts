/**
 * eventcore's spans and metrics reach OpenTelemetry through @effect/opentelemetry:
 * a real transfer on each store, exported to in-memory OpenTelemetry exporters.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { layer } from "@effect/vitest"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, type Layer, Schema } from "effect"
import {
  Command,
  type EventStore,
  execute,
  InMemoryEventStore,
  PgliteEventStore,
  Snapshot,
  StreamId,
  StreamWrites
} from "eventcore"
import { writesOf } from "eventcore/testing"
import { expect } from "vitest"
import { accountStream, MoneyDeposited, Open, Transfer } from "../src/demo/domain.js"
import { interceptStore } from "./support/recording.js"

const serviceName = "eventcore-otel-test"

/** A fresh OpenTelemetry SDK per test, exporting spans and metrics into memory. */
const makeOtel = () => {
  const spanExporter = new InMemorySpanExporter()
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  // Exports only when flushed: the interval is far longer than any test.
  const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
  const layer = NodeSdk.layer(() => ({
    resource: { serviceName },
    spanProcessor: new SimpleSpanProcessor(spanExporter),
    metricReader
  }))
  return { spanExporter, metricExporter, metricReader, layer }
}
type Otel = ReturnType<typeof makeOtel>

const withOtel = <A, E, R>(body: (otel: Otel) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const otel = makeOtel()
    return Effect.provide(body(otel), otel.layer)
  })

/** The cumulative value the metric exporter received for a counter (0 if never exported). */
const exportedCount = (otel: Otel, name: string) =>
  Effect.promise(() => otel.metricReader.forceFlush()).pipe(
    Effect.map(() => {
      const exported = otel.metricExporter.getMetrics().at(-1)
      expect(exported?.resource.attributes["service.name"]).toBe(serviceName)
      const metric = exported?.scopeMetrics.flatMap((scope) => scope.metrics).find((m) => m.descriptor.name === name)
      if (metric === undefined) return 0
      expect(metric.dataPointType).toBe(DataPointType.SUM)
      expect(metric.dataPoints).toHaveLength(1)
      return metric.dataPoints[0]?.value as number
    })
  )

const open = (account: string, amount: number) =>
  execute(Open, { account, owner: account, ...(amount > 0 ? { initialDeposit: amount } : {}) })

const named = (spans: ReadonlyArray<ReadableSpan>, name: string) => spans.filter((s) => s.name === name)

const only = (spans: ReadonlyArray<ReadableSpan>, name: string) => {
  const found = named(spans, name)
  expect(found).toHaveLength(1)
  return found[0] as ReadableSpan
}

const isChildOf = (span: ReadableSpan, parent: ReadableSpan) =>
  span.parentSpanContext?.spanId === parent.spanContext().spanId &&
  span.spanContext().traceId === parent.spanContext().traceId

/** A deposit straight to the store from another trace, as a concurrent writer would. */
const interfere = (store: EventStore.EventStore, account: string) =>
  store
    .append(
      writesOf({
        streamId: accountStream(account),
        expected: "any",
        events: [
          { eventType: "MoneyDeposited", data: Schema.encodeSync(MoneyDeposited)(MoneyDeposited.make({ amount: 1 })) }
        ]
      })
    )
    .pipe(Effect.asVoid, Effect.withSpan("concurrent-writer", { root: true }))

/** Makes the next `times` transfers conflict: the destination changes just before their append. */
const conflicting = (to: string, times: number) => {
  let left = times
  return interceptStore({
    beforeAppend: (store, writes) => {
      if (StreamWrites.participants(writes).length !== 2 || left === 0) return Effect.void
      left--
      return interfere(store, to)
    }
  })
}

const suite = <E>(label: string, store: Layer.Layer<EventStore.EventStore, E>, dbSystem: string) =>
  // One store per suite (PGlite takes seconds to boot); each test uses its own accounts.
  layer(store, { excludeTestServices: true, timeout: "120 seconds" })(label, (it) => {
    it.effect("a transfer exports eventcore.execute with its two reads and its append as children, in one trace", () =>
      withOtel((otel) =>
        Effect.gen(function* () {
          yield* open("t-alice", 100)
          yield* open("t-bob", 5)
          otel.spanExporter.reset()

          yield* execute(Transfer, { from: "t-alice", to: "t-bob", amount: 30 })

          const spans = otel.spanExporter.getFinishedSpans()
          expect(spans.map((s) => s.name).sort()).toEqual([
            "eventcore.append",
            "eventcore.execute",
            "eventcore.read_stream",
            "eventcore.read_stream"
          ])
          const root = only(spans, "eventcore.execute")
          expect(root.parentSpanContext).toBeUndefined()
          expect(root.kind).toBe(SpanKind.INTERNAL)
          expect(root.status.code).toBe(SpanStatusCode.OK)
          expect(root.attributes).toEqual({
            "eventcore.command": "Transfer",
            "eventcore.attempts": 1,
            "eventcore.stream_count": 2,
            "eventcore.event_count": 2
          })
          expect(root.resource.attributes["service.name"]).toBe(serviceName)

          const reads = named(spans, "eventcore.read_stream")
          for (const span of [...reads, only(spans, "eventcore.append")]) {
            expect(isChildOf(span, root)).toBe(true)
            expect(span.kind).toBe(SpanKind.CLIENT)
            expect(span.status.code).toBe(SpanStatusCode.OK)
          }
          // Each account stream holds AccountOpened and MoneyDeposited.
          expect(
            reads
              .map((s) => s.attributes)
              .sort((a, b) => String(a["eventcore.stream_id"]).localeCompare(String(b["eventcore.stream_id"])))
          ).toEqual([
            { "db.system": dbSystem, "eventcore.stream_id": "account-t-alice", "eventcore.event_count": 2 },
            { "db.system": dbSystem, "eventcore.stream_id": "account-t-bob", "eventcore.event_count": 2 }
          ])
          expect(only(spans, "eventcore.append").attributes).toEqual({
            "db.system": dbSystem,
            "eventcore.stream_count": 2,
            "eventcore.event_count": 2
          })
        })
      )
    )

    it.effect("a transfer with snapshots reads both accounts in one eventcore.load_snapshot span", () =>
      withOtel((otel) =>
        Effect.gen(function* () {
          const SnapshottedTransfer = Command.make({
            ...Transfer,
            name: "SnapshottedTransfer",
            snapshot: Snapshot.make({
              state: Schema.Struct({
                accounts: Schema.ReadonlyMap({
                  key: StreamId.schema,
                  value: Schema.Struct({ open: Schema.Boolean, balance: Schema.Number })
                })
              }),
              version: 1
            })
          })
          yield* open("s-alice", 100)
          yield* open("s-bob", 5)
          otel.spanExporter.reset()

          yield* execute(SnapshottedTransfer, { from: "s-alice", to: "s-bob", amount: 30 })

          const spans = otel.spanExporter.getFinishedSpans()
          expect(spans.map((s) => s.name).sort()).toEqual([
            "eventcore.append",
            "eventcore.execute",
            "eventcore.load_snapshot"
          ])
          const load = only(spans, "eventcore.load_snapshot")
          expect(isChildOf(load, only(spans, "eventcore.execute"))).toBe(true)
          expect(load.kind).toBe(SpanKind.CLIENT)
          expect(load.attributes).toEqual({
            "db.system": dbSystem,
            "eventcore.command": "SnapshottedTransfer",
            "eventcore.stream_count": 2,
            "eventcore.snapshot_usable": false,
            "eventcore.event_count": 4
          })
        })
      )
    )

    it.effect("a conflicting transfer shows two attempts, and the conflict and retry counters are exported", () =>
      withOtel((otel) =>
        Effect.gen(function* () {
          yield* open("c-alice", 100)
          yield* open("c-bob", 5)
          const conflictsBefore = yield* exportedCount(otel, "eventcore_append_conflicts")
          const retriesBefore = yield* exportedCount(otel, "eventcore_command_retries")
          otel.spanExporter.reset()

          const result = yield* execute(Transfer, { from: "c-alice", to: "c-bob", amount: 30 }).pipe(
            Effect.provide(conflicting("c-bob", 1))
          )
          expect(result.attempts).toBe(2)

          const spans = otel.spanExporter.getFinishedSpans()
          const root = only(spans, "eventcore.execute")
          expect(root.status.code).toBe(SpanStatusCode.OK)
          expect(root.attributes["eventcore.attempts"]).toBe(2)

          // Every read and append of both attempts is a child of the one execute span.
          const underRoot = spans.filter((s) => isChildOf(s, root))
          expect(underRoot.map((s) => s.name).sort()).toEqual([
            "eventcore.append",
            "eventcore.append",
            "eventcore.read_stream",
            "eventcore.read_stream",
            "eventcore.read_stream",
            "eventcore.read_stream"
          ])
          // The second attempt read the destination again and saw the concurrent deposit.
          const destinationReads = underRoot.filter((s) => s.attributes["eventcore.stream_id"] === "account-c-bob")
          expect(destinationReads.map((s) => s.attributes["eventcore.event_count"])).toEqual([2, 3])

          const [refused, accepted] = named(underRoot, "eventcore.append")
          expect(refused?.status).toEqual({
            code: SpanStatusCode.ERROR,
            message: 'Version conflict on stream "account-c-bob": expected 2, actual 3'
          })
          const exception = refused?.events.find((e) => e.name === "exception")
          expect(exception?.attributes?.["exception.type"]).toBe("VersionConflict")
          expect(accepted?.status.code).toBe(SpanStatusCode.OK)

          // The retry warning is an event on the execute span.
          const retryLog = root.events.find((e) => e.name === "eventcore: version conflict, running the command again")
          expect(retryLog?.attributes).toMatchObject({
            "effect.logLevel": "WARN",
            command: "Transfer",
            attempt: 2,
            stream: "account-c-bob",
            expected: "2",
            actual: 3
          })

          // The concurrent writer's append is in its own trace, not the command's.
          const writer = only(spans, "concurrent-writer")
          expect(writer.spanContext().traceId).not.toBe(root.spanContext().traceId)
          expect(spans.filter((s) => isChildOf(s, writer)).map((s) => s.name)).toEqual(["eventcore.append"])

          expect(yield* exportedCount(otel, "eventcore_append_conflicts")).toBe(conflictsBefore + 1)
          expect(yield* exportedCount(otel, "eventcore_command_retries")).toBe(retriesBefore + 1)
        })
      )
    )

    it.effect(
      "the first command on a new stream reads it without an error span, and execute says how often it ran",
      () =>
        withOtel((otel) =>
          Effect.gen(function* () {
            yield* open("n-carol", 0)
            const spans = otel.spanExporter.getFinishedSpans()
            const read = only(spans, "eventcore.read_stream")
            expect(read.attributes["eventcore.event_count"]).toBe(0)
            expect(read.status.code).not.toBe(SpanStatusCode.ERROR)
            expect(read.events.filter((e) => e.name === "exception")).toEqual([])
            expect(only(spans, "eventcore.execute").attributes["eventcore.attempts"]).toBe(1)

            // A command that fails still carries its attempt count.
            const error = yield* Effect.flip(open("n-carol", 0))
            expect(error._tag).toBe("AccountAlreadyOpen")
            const failed = named(otel.spanExporter.getFinishedSpans(), "eventcore.execute")[1]
            expect(failed?.status.code).toBe(SpanStatusCode.ERROR)
            expect(failed?.attributes["eventcore.attempts"]).toBe(1)
          })
        )
    )

    it.effect("a refused command's execute span has error status and no append", () =>
      withOtel((otel) =>
        Effect.gen(function* () {
          yield* open("f-alice", 10)
          yield* open("f-bob", 0)
          otel.spanExporter.reset()

          const error = yield* Effect.flip(execute(Transfer, { from: "f-alice", to: "f-bob", amount: 30 }))
          expect(error._tag).toBe("InsufficientFunds")

          const spans = otel.spanExporter.getFinishedSpans()
          expect(spans.map((s) => s.name).sort()).toEqual([
            "eventcore.execute",
            "eventcore.read_stream",
            "eventcore.read_stream"
          ])
          const root = only(spans, "eventcore.execute")
          expect(root.status.code).toBe(SpanStatusCode.ERROR)
          expect(root.attributes["eventcore.command"]).toBe("Transfer")
          const exception = root.events.find((e) => e.name === "exception")
          expect(exception?.attributes?.["exception.type"]).toBe("InsufficientFunds")
          for (const read of named(spans, "eventcore.read_stream")) {
            expect(isChildOf(read, root)).toBe(true)
            expect(read.status.code).toBe(SpanStatusCode.OK)
          }
        })
      )
    )
  })

suite("OpenTelemetry export, InMemoryEventStore", InMemoryEventStore.layer, "memory")
suite("OpenTelemetry export, PgliteEventStore", PgliteEventStore.layer(), "postgresql")
