/**
 * Spans for the store's operations, created only when someone can read them.
 */
import { Effect, type Tracer } from "effect"

/** The tracer of a program that installed none: its spans are exported nowhere. */
export const nativeTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/**
 * `Effect.withSpan(name, options())`, skipped while the program runs on the
 * native tracer. No code of the application runs inside these spans, so
 * nothing could read them there, and two of them (a read and an append) cost
 * about a quarter of the CPU eventcore spends on a command's read and append
 * (docs/decisions/node-side-hot-path.md). `options` is called only for a span that
 * is made, so its attributes cost nothing otherwise; `annotate` adds
 * attributes known only once the operation succeeded.
 */
export const withSpan =
  <A>(name: string, options: () => Tracer.SpanOptions, annotate?: (a: A) => Record<string, unknown>) =>
  <E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.tracerWith((tracer) =>
      tracer === nativeTracer
        ? self
        : Effect.withSpan(
            annotate === undefined ? self : Effect.tap(self, (a) => Effect.annotateCurrentSpan(annotate(a))),
            name,
            { ...options(), captureStackTrace: false }
          )
    )
