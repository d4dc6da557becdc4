/**
 * A system under test in a child process of its own (workloads/system-child.ts),
 * for the workloads measured that way (W4.readStream): the child seeds and
 * prepares the workload once, then measures each cell the bench asks for with
 * the same `run` as the bench's process, and returns its sample.
 */
import type { Databases } from "../systems/open.js"
import type { Workload } from "../workloads/workloads.js"
import { type ChildMessage, startChild } from "./child.js"
import type { RunOptions, Sample } from "./measure.js"
import type { Options, SystemName } from "./options.js"

export interface OwnProcess {
  /** Streams and events the system held on the server once seeded (the SQL systems). */
  readonly size: { readonly streams: number; readonly events: number } | null
  /** Measures one cell in the child; `onProgress` hears from it as `run`'s does. */
  readonly run: (options: RunOptions) => Promise<Sample>
  /** Closes the system and waits for the child to exit. */
  readonly close: () => Promise<void>
}

/** JSON carries a NaN (no successful operation, no latency) as null. */
const sampleOf = (message: ChildMessage): Sample =>
  Object.fromEntries(
    Object.entries(message.sample as Record<string, unknown>).map(([key, value]) => [
      key,
      value === null ? Number.NaN : value
    ])
  ) as unknown as Sample

export const startOwnProcess = async (
  workload: Workload,
  system: SystemName,
  databases: Databases,
  options: Options
): Promise<OwnProcess> => {
  // The child answers one request at a time: "ready" first, then a "sample" per cell, in order.
  const waiting: Array<{ resolve: (message: ChildMessage) => void; reject: (error: unknown) => void }> = []
  let onProgress: RunOptions["onProgress"]
  let failure: unknown
  const next = () =>
    new Promise<ChildMessage>((resolve, reject) => {
      if (failure === undefined) waiting.push({ resolve, reject })
      else reject(failure)
    })
  const child = await startChild<Record<string, never>>(
    `${workload.id} ${system}`,
    new URL("../workloads/system-child.ts", import.meta.url),
    [
      "--workload",
      workload.id,
      "--system",
      system,
      "--url",
      databases.url,
      ...(databases.emmettUrl === undefined ? [] : ["--emmett-url", databases.emmettUrl]),
      "--pool-size",
      `${databases.poolSize}`,
      "--options",
      JSON.stringify(options)
    ],
    (message) => {
      if (message.type === "progress") onProgress?.(Number(message.ops), Number(message.elapsed))
      else waiting.shift()?.resolve(message)
    }
  )
  child.done.catch((error: unknown) => {
    failure = error
    for (const waiter of waiting.splice(0)) waiter.reject(error)
  })
  const ready = await next()
  return {
    size: (ready.size as OwnProcess["size"] | undefined) ?? null,
    run: async ({ onProgress: progress, ...cell }) => {
      onProgress = progress
      child.send(cell)
      try {
        return sampleOf(await next())
      } finally {
        onProgress = undefined
      }
    },
    close: async () => {
      child.stop()
      await child.done
    }
  }
}
