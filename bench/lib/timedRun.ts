/**
 * One run of a projection until it has passed a position, timed: wall time
 * and this process's CPU, optionally CPU-profiled (node:inspector) into a
 * file cpu-summary.ts reads. The profiling tools' shared step.
 */
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { performance } from "node:perf_hooks"
import { Cause, Effect, Fiber, type ManagedRuntime } from "effect"
import { type EventStore, type LogPosition, Projection } from "eventcore"

/** This process's CPU so far (user + system), in ms. */
export const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

export const timedProjectionRun = async <E, I>(
  runtime: ManagedRuntime.ManagedRuntime<EventStore.EventStore | Projection.ReadModelStore, unknown>,
  projection: Projection.Projection<E, I, unknown, Projection.ReadModel>,
  options: { readonly head: LogPosition.LogPosition; readonly batchSize: number; readonly profileTo?: string }
): Promise<{ readonly wallMs: number; readonly cpuMs: number }> => {
  const inspector = options.profileTo === undefined ? undefined : new Session()
  if (inspector !== undefined) {
    inspector.connect()
    await inspector.post("Profiler.enable")
    await inspector.post("Profiler.start")
  }
  const cpu = cpuMs()
  const started = performance.now()
  const fiber = runtime.runFork(Projection.run(projection, { batchSize: options.batchSize }))
  await runtime.runPromise(
    Effect.raceFirst(
      Projection.waitFor(projection, options.head, { timeout: "600 seconds" }),
      Effect.flatMap(Fiber.await(fiber), (exit) =>
        Effect.dieMessage(`run ended: ${exit._tag === "Failure" ? Cause.pretty(exit.cause) : ""}`)
      )
    )
  )
  const timed = { wallMs: performance.now() - started, cpuMs: cpuMs() - cpu }
  if (inspector !== undefined && options.profileTo !== undefined) {
    const { profile } = await inspector.post("Profiler.stop")
    writeFileSync(options.profileTo, JSON.stringify(profile))
    inspector.disconnect()
  }
  await runtime.runPromise(Fiber.interrupt(fiber))
  return timed
}
