/**
 * Test doubles around real services: a tracer that records finished spans, a
 * logger that records log lines, and a store wrapper that lets a test act just
 * before an append reaches the real store.
 */
import { Effect, type Exit, HashMap, Layer, List, Logger, Option, Tracer } from "effect"
import { EventStore, type StreamWrites } from "eventcore"

export interface RecordedSpan {
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly attributes: ReadonlyMap<string, unknown>
  readonly parentName: string | undefined
  readonly exit: Exit.Exit<unknown, unknown> | undefined
}

export const makeRecordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  let nextId = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const attributes = new Map<string, unknown>()
      const spanId = `span-${++nextId}`
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId,
        traceId: "trace",
        parent,
        context,
        get status() {
          return status
        },
        attributes,
        links: [...links],
        sampled: true,
        kind,
        end(endTime, exit) {
          status = { _tag: "Ended", startTime, endTime, exit }
          const parentName = Option.isSome(parent) && parent.value._tag === "Span" ? parent.value.name : undefined
          spans.push({ name, kind, attributes, parentName, exit })
        },
        attribute(key, value) {
          attributes.set(key, value)
        },
        event() {},
        addLinks() {}
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer, layer: Layer.setTracer(tracer) }
}

export interface RecordedLog {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
}

export const makeRecordingLogger = () => {
  const logs: Array<RecordedLog> = []
  const logger = Logger.make(({ logLevel, message, annotations }) => {
    logs.push({
      level: logLevel.label,
      message: List.isList(message) ? List.toArray(message) : message,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { logs, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/**
 * Wraps the `EventStore` in context: `beforeAppend` runs (with the real store)
 * before each append, and `onRead` sees each stream read.
 */
export const interceptStore = (hooks: {
  readonly beforeAppend?: (
    store: EventStore.EventStore,
    writes: StreamWrites.StreamWrites,
    appendNumber: number
  ) => Effect.Effect<void, unknown>
  readonly onRead?: (streamId: string) => void
  readonly afterRead?: Effect.Effect<void>
}) =>
  Layer.effect(
    EventStore.EventStore,
    Effect.map(EventStore.EventStore, (store) => {
      let appends = 0
      return EventStore.EventStore.of({
        ...store,
        readStream: (streamId, options) => {
          hooks.onRead?.(streamId)
          return Effect.zipLeft(store.readStream(streamId, options), hooks.afterRead ?? Effect.void)
        },
        append: (writes) =>
          Effect.zipRight(
            Effect.orDie(hooks.beforeAppend?.(store, writes, ++appends) ?? Effect.void),
            store.append(writes)
          )
      })
    })
  )
