#!/usr/bin/env node
/**
 * The `eventcore` command: runs `process.argv` (see run.ts). SIGINT or
 * SIGTERM interrupts the command, whose scopes close before the process exits
 * with 128 + the signal's number; a second signal ends the process at once.
 */
import { runCommandLine } from "./run.js"

const interrupt = new AbortController()
const onSignal = (signal: NodeJS.Signals) => {
  stopListening()
  interrupt.abort(signal)
}
const stopListening = () => {
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

try {
  process.exitCode = await runCommandLine(process.argv.slice(2), interrupt.signal)
} catch (error) {
  // A defect of the command line itself (its package.json cannot be read, ...): still one line.
  process.stderr.write(`eventcore: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
} finally {
  stopListening()
}
