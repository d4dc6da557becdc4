/**
 * The real `eventcore` command line, spawned as a user would run it, and what
 * tests expect of its output.
 */
import { join } from "node:path"
import { expect } from "vitest"
import { bundle, nodeOptions } from "./bundle.js"
import { type NodeProcess, type NodeRun, startNode } from "./nodeProcess.js"

/** The command line as the package's bin runs it: plain JavaScript (see ./bundle.ts). */
const main = await bundle(join("src", "cli", "main.ts"), "cli")

/** An event as `tail --json` prints it. */
export interface TailedEvent {
  readonly position: string
  readonly globalPosition: string
  readonly recordedAt: string
  readonly streamId: string
  readonly streamVersion: number
  readonly eventType: string
  readonly data: unknown
}

export type Run = NodeRun
export type Started = NodeProcess

/**
 * Runs the bundled CLI in one Node process (a launcher such as the tsx command
 * starts a second one, and relays a signal to it only to SIGKILL it if it has
 * not answered within ~60 ms, too soon for a process busy on a loaded
 * machine). DATABASE_URL is not inherited: tests that want it say so.
 */
export const start = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Started =>
  startNode([...nodeOptions, main, ...args], env)

export const cli = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Promise<Run> =>
  start(args, env).done

/** A failure at run time the user can read: one line on stderr naming the command, no stack trace, exit code 1. */
export const expectOneLineError = (run: Run, command: string, message: string) => {
  expect(run.code).toBe(1)
  expect(run.stderr.trim().split("\n")).toEqual([`eventcore ${command}: ${message}`])
  expect(run.stderr).not.toMatch(/\n\s+at /)
}

/** Something wrong with the arguments: one line naming the command and the help to read, exit code 2, nothing on stdout. */
export const expectArgumentError = (run: Run, message: string, command?: string) => {
  const who = command === undefined ? "eventcore" : `eventcore ${command}`
  expect(run.stderr.split("\n")).toEqual([`${who}: ${message} (see ${who} --help)`, ""])
  expect(run.code).toBe(2)
  expect(run.stdout).toBe("")
}

export const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * Waits until what the process printed on stdout satisfies `ready`; fails if
 * the process ends first, or after `timeout` ms, saying what it printed.
 */
export const waitForOutput = async (started: Started, ready: (stdout: string) => boolean, timeout = 60_000) => {
  const deadline = Date.now() + timeout
  while (!ready(started.output().stdout)) {
    const exited = await Promise.race([
      started.done,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 50))
    ])
    if (exited !== undefined) throw new Error(`the command ended early: ${JSON.stringify(exited)}`)
    if (Date.now() > deadline) {
      throw new Error(
        `the command did not print what was awaited in ${timeout} ms: ${JSON.stringify(started.output())}`
      )
    }
  }
}

/** The lines a command printed, without the last newline. */
export const linesOf = (text: string) => (text === "" ? [] : text.replace(/\n$/, "").split("\n"))
