/**
 * The `eventcore` command line in this process: parses the arguments against
 * the program in `program.ts`, prints help, the version or an argument error,
 * or runs the command until it ends or is interrupted, and says with which
 * exit code the process ends. `main.ts` gives it the process's arguments and
 * signals.
 *
 * Exit codes: 0 done; 2 a usage error (anything wrong with the arguments,
 * found before anything is opened); 1 a failure at run time; 128 + the
 * signal's number when a signal interrupted the command.
 */
import { constants } from "node:os"
import { Effect, Exit, Logger, LogLevel } from "effect"
import { parseCommandLine } from "./args.js"
import { failureLine } from "./failures.js"
import { program } from "./program.js"

/**
 * Runs the command line `argv` (the arguments after the program's name).
 * Aborting `interrupt`, with the name of the signal received as its reason,
 * interrupts a running command: its scopes close (the database with them)
 * before this returns.
 */
export const runCommandLine = async (argv: ReadonlyArray<string>, interrupt: AbortSignal): Promise<number> => {
  const line = parseCommandLine(program, argv)
  if (line._tag === "Print") {
    process[line.to].write(line.text)
    return line.exitCode
  }
  // Keeps the process alive while the fiber waits on nothing Node counts as work.
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  const exit = await Effect.runPromiseExit(
    // Retries log warnings; the commands report what matters themselves.
    line.run.pipe(Logger.withMinimumLogLevel(LogLevel.Error)),
    { signal: interrupt }
  ).finally(() => clearInterval(keepAlive))
  if (interrupt.aborted) return 128 + constants.signals[interrupt.reason as NodeJS.Signals]
  if (Exit.isSuccess(exit)) return 0
  process.stderr.write(failureLine(line.command, exit.cause))
  return 1
}
