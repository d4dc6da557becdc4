/**
 * How the projection and reactor specs wait: for the checkpoint of what they
 * run to pass a position of the log, never by sleeping, and when that does
 * not happen in time, with a message that says where it stands and why.
 */
import { Cause, type Duration, Effect, Fiber, Schedule, type Schema } from "effect"
import * as EventStore from "../EventStore.js"
import type { LogPosition } from "../LogPosition.js"
import * as Projection from "../Projection.js"
import { describeError } from "./given.js"

/** What a spec runs: a projection or a reactor, as `Projection.waitFor` knows it. */
export interface Followed {
  readonly _tag: "Projection" | "Reactor"
  readonly name: string
  readonly event: Schema.Schema.AnyNoContext
  readonly filter?: { readonly streamPrefix?: string }
}

/**
 * Completes once `followed` handled every event of its own up to `position`.
 * Dies, with a message for the test's output, when its runner stopped (the
 * event it stopped at, and why), or when `timeout` passed (its checkpoint,
 * status and lag, and whether the log itself is held back by a transaction
 * still running).
 */
export const handledUpTo = <E>(
  followed: Followed,
  position: LogPosition,
  runner: Fiber.Fiber<never, E>,
  timeout: Duration.DurationInput
): Effect.Effect<void, never, EventStore.EventStore> => {
  const kind = followed._tag === "Projection" ? "projection" : "reactor"
  const stopped = Effect.flatMap(Fiber.await(runner), (exit) =>
    Effect.die(
      new Error(
        `The ${kind} ${followed.name} stopped before it reached position ${position} (the last given event): ${
          exit._tag === "Failure" ? describeFailure(exit.cause) : "it ended"
        }`
      )
    )
  )
  const waited = Projection.waitFor(followed, position, { timeout }).pipe(
    Effect.catchTags({
      ProjectionTimeout: () =>
        Effect.flatMap(whereItStands(followed, kind, position), (message) => Effect.die(new Error(message))),
      StoreError: (error) => Effect.die(error)
    })
  )
  return Effect.raceFirst(waited, stopped)
}

/** Why a runner stopped: its error's message (`ProjectionFailed` names the event and the cause), or the error itself. */
const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.squash(cause)
  return failure instanceof Error && failure.message !== "" ? failure.message : describeError(failure)
}

const whereItStands = (followed: Followed, kind: string, position: LogPosition) =>
  Effect.gen(function* () {
    const statuses = yield* Effect.orElseSucceed(Projection.status, () => [])
    const own = statuses.find((status) => status.name === followed.name && status.status !== "standby")
    const standing =
      own === undefined
        ? "it has no checkpoint yet"
        : `its checkpoint is at ${own.position} (${own.status}${own.lag === undefined ? "" : `, ${own.lag} of its events after it`}${own.error === undefined ? "" : `, ${own.error}`})`
    const held = yield* EventStore.waitForLog(position, { timeout: "10 millis" }).pipe(
      Effect.as(""),
      Effect.catchTag("LogTimeout", () =>
        Effect.succeed(
          "; the log is not readable that far yet: a transaction that started before the last given event is still running on the server and holds every reader back until it ends"
        )
      ),
      Effect.orElseSucceed(() => "")
    )
    return `The ${kind} ${followed.name} did not reach position ${position} (the last given event) in time: ${standing}${held}`
  })

/** A spec's run options: a failing event tried twice more at once unless `options.retry` says otherwise. */
export const runOptions = (options: Projection.RunOptions = {}): Projection.RunOptions => ({
  retry: Schedule.recurs(2),
  ...options
})
