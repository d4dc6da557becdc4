/**
 * Building a store with a replica waits for the standby to replay the
 * primary's WAL as far as it ended once the primary was migrated, and refuses
 * a replica that is not a standby of the primary's cluster.
 */
import { Duration, Effect, Ref, Schedule } from "effect"
import type postgres from "postgres"
import { StoreError } from "../errors.js"
import { driverError, storeError } from "../sql/errors.js"
import { retryOnReplica } from "../sql/replica.js"
import { runOn } from "./run.js"

/**
 * Where the primary's WAL ends now (everything it has committed, the
 * migrations included, lies before it), and the cluster it belongs to: its
 * physical standbys, cascading ones included, share its system identifier and
 * number their WAL as it does.
 */
const primaryWalEnd = "select pg_current_wal_lsn()::text, system_identifier::text from pg_control_system()"

/**
 * The replica's cluster; whether it is a standby (in recovery); how many bytes
 * of WAL it has yet to replay to reach position $1 of the primary's (0 once
 * there, null while it has replayed nothing); whether its replay is paused.
 * `pg_last_wal_replay_lsn()` of a server out of recovery is null or stale:
 * only a standby's is compared.
 */
const replicaReplay = `select system_identifier::text, pg_is_in_recovery(),
  greatest(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0)::text,
  case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() <> 'not paused' else false end
from pg_control_system()`

/** SQLSTATE invalid_catalog_name: no database of that name (yet) on the server. */
const missingDatabase = "3D000"

/** What a replica last said about its replay of the primary's WAL. */
type Replay =
  | { readonly _tag: "NoDatabase"; readonly cause: unknown }
  | { readonly _tag: "Behind"; readonly bytes: bigint | undefined; readonly paused: boolean }
  | { readonly _tag: "CaughtUp" }

/** Asked again at 10 ms, doubling up to every 200 ms. */
const replayPoll = Schedule.exponential("10 millis").pipe(Schedule.union(Schedule.spaced("200 millis")))

/**
 * Asked as every read on the replica is: run again when the standby cancels
 * it for a conflict with recovery (a VACUUM replayed from the primary).
 */
const replayOf = (replica: postgres.Sql, position: string, cluster: string): Effect.Effect<Replay, StoreError> =>
  retryOnReplica(askReplay(replica, position, cluster))

const askReplay = (replica: postgres.Sql, position: string, cluster: string): Effect.Effect<Replay, StoreError> =>
  Effect.tryPromise({ try: () => runOn(replica)(replicaReplay, [position]), catch: (error) => error }).pipe(
    Effect.matchEffect({
      // A database created on the primary is missing on the standby until it replays its creation.
      onFailure: (error) =>
        driverError(error).code === missingDatabase
          ? Effect.succeed<Replay>({ _tag: "NoDatabase", cause: error })
          : Effect.fail(storeError("connect", error)),
      onSuccess: ([row]) => {
        const [system, inRecovery, bytes, paused] = row ?? []
        if (system !== cluster) {
          return Effect.fail(
            new StoreError({
              operation: "connect",
              message: `The replica at replicaUrl is not a standby of the primary: it belongs to another cluster (system identifier ${String(system)}, the primary's ${cluster}). The global log is read only on a hot standby streaming from the primary, directly or through another standby, whose transaction ids are the primary's: a logical replica or a restored copy numbers its own.`
            })
          )
        }
        // Out of recovery, in the primary's cluster: the primary itself, which has nothing to replay.
        if (inRecovery !== true || bytes === "0") return Effect.succeed<Replay>({ _tag: "CaughtUp" })
        return Effect.succeed<Replay>({
          _tag: "Behind",
          bytes: typeof bytes === "string" ? BigInt(bytes) : undefined,
          paused: paused === true
        })
      }
    })
  )

const replicaBehind = (
  replay: Exclude<Replay, { readonly _tag: "CaughtUp" }>,
  position: string,
  timeout: Duration.Duration
) => {
  const waited = `after waiting ${Duration.format(timeout)}`
  const advice =
    "Check its replication (pg_stat_replication on the primary, pg_stat_wal_receiver on the standby), or raise replicaReplayTimeout."
  switch (replay._tag) {
    case "Behind": {
      const short =
        replay.bytes === undefined
          ? "it had replayed no WAL yet"
          : `it was still ${replay.bytes.toLocaleString("en-US")} bytes of WAL short of ${position}, where the primary's WAL ended once it was migrated`
      const paused = replay.paused
        ? ", and its replay is paused (pg_wal_replay_resume() on the standby resumes it)"
        : ""
      return new StoreError({
        operation: "connect",
        message: `The replica at replicaUrl is behind the primary: ${waited} ${short}${paused}. ${advice}`
      })
    }
    case "NoDatabase":
      return new StoreError({
        operation: "connect",
        message: `The replica at replicaUrl is behind the primary: ${waited} it still had no such database (${driverError(replay.cause).message ?? missingDatabase}), which the primary has: it has not replayed the database's creation, or replicaUrl names another database than url. ${advice}`,
        cause: replay.cause
      })
  }
}

/**
 * Waits until the replica has replayed the primary's WAL up to where it ends
 * now: a standby that has not replayed the migrations (or the creation of the
 * database) yet is behind by milliseconds, not unmigrated. Fails when it is
 * still behind `timeout` after its first answer, with a `StoreError` saying by
 * how much, and at once if the replica is not a standby of the primary's
 * cluster.
 */
export const awaitReplay = (primary: postgres.Sql, replica: postgres.Sql, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    const [walEnd] = yield* Effect.tryPromise({
      try: () => runOn(primary)(primaryWalEnd, []),
      catch: (error) => storeError("connect", error)
    })
    const [position = "", cluster = ""] = (walEnd ?? []).map(String)
    // The wait starts once the replica has answered: reaching it is bounded by the connect timeout.
    const first = yield* replayOf(replica, position, cluster)
    if (first._tag === "CaughtUp") return
    const last = yield* Ref.make<Replay>(first)
    yield* replayOf(replica, position, cluster).pipe(
      Effect.tap((replay) => Ref.set(last, replay)),
      Effect.repeat({ schedule: replayPoll, until: (replay) => replay._tag === "CaughtUp" }),
      Effect.timeout(timeout),
      Effect.catchTag("TimeoutException", () =>
        Effect.flatMap(Ref.get(last), (replay) =>
          replay._tag === "CaughtUp" ? Effect.void : Effect.fail(replicaBehind(replay, position, timeout))
        )
      )
    )
  })
