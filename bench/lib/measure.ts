/**
 * Runs one operation from N concurrent workers for a fixed time and measures
 * throughput, latency, attempts and conflicts.
 */
import { performance } from "node:perf_hooks"
import { Latencies } from "./stats.js"

/** What one operation did. */
export interface Outcome {
  /** Events written or read by the operation (0 when it gave up). */
  readonly events: number
  /** Tries it took: 1 when it succeeded at once; every further try followed a version conflict. */
  readonly attempts: number
  /** False when it gave up after the last attempt conflicted too. */
  readonly ok: boolean
}

export const succeeded = (events: number, attempts = 1): Outcome => ({ events, attempts, ok: true })

/** One operation, given the worker that runs it (0..concurrency-1). */
export type Operation = (worker: number) => Promise<Outcome>

/** The measurement of one cell. */
export interface Sample {
  readonly seconds: number
  /** Operations that succeeded. */
  readonly ops: number
  /** Operations that gave up (retries exhausted). */
  readonly gaveUp: number
  /** Operations that failed with an unexpected error. */
  readonly errors: number
  readonly firstError?: string
  readonly events: number
  readonly attempts: number
  readonly conflicts: number
  readonly maxAttempts: number
  readonly opsPerSec: number
  readonly eventsPerSec: number
  /** Latency of successful operations, retries included. */
  readonly p50Ms: number
  readonly p99Ms: number
  /** Conflicting attempts / all attempts. */
  readonly conflictRate: number
  /** Attempts per successful operation. */
  readonly attemptsPerOp: number
  /** The longest time no operation succeeded, from the start to the end (a livelock shows here). */
  readonly longestStallMs: number
}

export interface RunOptions {
  readonly concurrency: number
  readonly seconds: number
  /** Called now and then with the successful operations so far and the seconds elapsed. */
  readonly onProgress?: (ops: number, elapsedSeconds: number) => void
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error)).slice(0, 500)

/** Runs `operation` from `concurrency` workers until `seconds` have passed; each worker finishes its last operation. */
export const run = async (operation: Operation, options: RunOptions): Promise<Sample> => {
  const latencies = new Latencies()
  let ops = 0
  let gaveUp = 0
  let errors = 0
  let firstError: string | undefined
  let events = 0
  let attempts = 0
  let conflicts = 0
  let maxAttempts = 0
  const started = performance.now()
  const deadline = started + options.seconds * 1000
  let lastReport = started
  let lastSuccess = started
  let longestStall = 0

  const worker = async (index: number) => {
    for (;;) {
      const before = performance.now()
      if (before >= deadline) return
      try {
        const outcome = await operation(index)
        const after = performance.now()
        attempts += outcome.attempts
        maxAttempts = Math.max(maxAttempts, outcome.attempts)
        if (outcome.ok) {
          longestStall = Math.max(longestStall, after - lastSuccess)
          lastSuccess = after
          ops += 1
          events += outcome.events
          conflicts += outcome.attempts - 1
          latencies.add(after - before)
        } else {
          gaveUp += 1
          conflicts += outcome.attempts
        }
        if (options.onProgress !== undefined && after - lastReport > 200) {
          lastReport = after
          options.onProgress(ops, (after - started) / 1000)
        }
      } catch (error) {
        errors += 1
        attempts += 1
        firstError ??= errorText(error)
        // Unexpected errors usually repeat: do not spin on them.
        if (errors > 100) throw new Error(`more than 100 operations failed; the first: ${firstError}`)
      }
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, (_, index) => worker(index)))
  const ended = performance.now()
  longestStall = Math.max(longestStall, Math.min(ended, deadline) - lastSuccess)
  const seconds = (ended - started) / 1000
  const [p50Ms, p99Ms] = latencies.percentiles(50, 99) as [number, number]
  return {
    seconds,
    ops,
    gaveUp,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    events,
    attempts,
    conflicts,
    maxAttempts,
    opsPerSec: ops / seconds,
    eventsPerSec: events / seconds,
    p50Ms,
    p99Ms,
    conflictRate: attempts === 0 ? 0 : conflicts / attempts,
    attemptsPerOp: ops === 0 ? Number.NaN : attempts / ops,
    longestStallMs: longestStall
  }
}
