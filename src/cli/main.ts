#!/usr/bin/env node
/**
 * The `eventcore` command: parses `process.argv` against the program in
 * `program.ts`, prints help, the version or an argument error, or runs the
 * command until it ends or a signal interrupts it.
 */
import { constants } from "node:os"
import { Effect, Exit, Logger, LogLevel } from "effect"
import { parseCommandLine } from "./args.js"
import { failureLine, program, type Run } from "./program.js"

/**
 * Runs a command to its end. SIGINT or SIGTERM interrupts it, so its scopes
 * close (the database with them) before the process exits with 128 + the
 * signal's number; a second signal ends the process at once.
 */
const runMain = async (run: Run) => {
  const interrupt = new AbortController()
  let received: NodeJS.Signals | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    received = signal
    stopListening()
    interrupt.abort()
  }
  const stopListening = () => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  // Keeps the process alive while the fiber waits on nothing Node counts as work.
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  const exit = await Effect.runPromiseExit(
    // Retries log warnings; the commands report what matters themselves.
    run.pipe(Logger.withMinimumLogLevel(LogLevel.Error)),
    { signal: interrupt.signal }
  )
  clearInterval(keepAlive)
  stopListening()
  if (received !== undefined) process.exit(128 + constants.signals[received])
  if (Exit.isFailure(exit)) {
    process.stderr.write(failureLine(exit.cause))
    process.exit(1)
  }
}

try {
  const line = parseCommandLine(program, process.argv.slice(2))
  if (line._tag === "Print") {
    process[line.to].write(line.text)
    process.exitCode = line.exitCode
  } else {
    await runMain(line.run)
  }
} catch (error) {
  process.stderr.write(`eventcore: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
}
