/**
 * Reads on a hot standby of the store's server (`PostgresConfig.replicaUrl`):
 * where they run, and how they survive the standby's recovery conflicts.
 */
import { Effect, Metric, Schedule } from "effect"
import type { StoreError } from "../errors.js"
import type { Gate, RunStatement } from "./driver.js"
import { isConnectionLost, isRecoveryConflict } from "./errors.js"

/**
 * A hot standby of the store's server. The global log is read there; appends,
 * checkpoints, read models and the stall diagnosis stay on the primary.
 * Nothing run there may write or call what a standby refuses
 * (`pg_current_xact_id()`, LISTEN): the log's reads only take a snapshot.
 */
export interface Replica {
  readonly run: RunStatement
  readonly gate?: Gate
  /** Whether stream reads (`readStream`, `streamEvents`: what commands read) run there too. */
  readonly streams: boolean
}

/** Reads on a replica run again: cancelled by a recovery conflict, or their session lost (one may end it). */
export const replicaRetryCounter = Metric.counter("eventcore_replica_read_retries", {
  description:
    "reads on a replica run again after a conflict with recovery (e.g. VACUUM replayed from the primary) cancelled them or ended their session",
  incremental: true
})

/**
 * A standby cancels a read whose snapshot still needs rows that replayed
 * cleanup removes (after `max_standby_streaming_delay`): running it again, on
 * a fresh snapshot, succeeds. Bounded, so that a standby configured to cancel
 * everything surfaces as a `StoreError` (which subscriptions retry in turn).
 */
const recoveryRetry = Schedule.exponential("10 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.intersect(Schedule.recurs(20))
)

/**
 * A read on a replica, run again when the standby cancelled it for a recovery
 * conflict, or ended its session (a conflict that reaches a session between
 * two messages of a query terminates it instead: the next query on that
 * connection finds it closed). Each time is counted in `replicaRetryCounter`.
 */
export const retryOnReplica = <A>(read: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError> =>
  read.pipe(
    Effect.tapError((error) =>
      isRecoveryConflict(error.cause) || isConnectionLost(error.cause)
        ? Metric.increment(replicaRetryCounter)
        : Effect.void
    ),
    Effect.retry({ schedule: recoveryRetry, while: (error) => isRecoveryConflict(error.cause) }),
    Effect.retry({ times: 2, while: (error) => isConnectionLost(error.cause) })
  )
