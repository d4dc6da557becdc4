/**
 * Sessions for projections and reactors on PostgreSQL (see src/sql/driver.ts).
 */
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect, Exit } from "effect"
import postgres from "postgres"
import type { Statement } from "../internal/storeContract.js"
import { ClosingFailed, type Database, type RunStatement, type Session, type Sessions } from "../sql/driver.js"
import { storeError } from "../sql/errors.js"
import { runOn } from "./run.js"
import { firstConnectionOnly, poolOptions } from "./sockets.js"

/**
 * Distinct statement texts a projection's session prepares for its read
 * model (see `preparing`).
 */
const readModelStatements = 200

/**
 * `client` with the read model's statements prepared. Drizzle runs its
 * queries unnamed, and postgres.js describes an unnamed query with parameters
 * in a round trip of its own before running it: two round trips for every
 * statement a handler runs, event by event. A session lives long and its
 * handlers run few distinct statements, so they are prepared: described once,
 * then one round trip each. Past `readModelStatements` distinct texts (SQL
 * built dynamically, an `in` list of varying length) the rest run unnamed
 * rather than grow the session's statement cache, here and in the server,
 * without bound.
 */
const preparing = (client: postgres.Sql): postgres.Sql => {
  const prepared = new Set<string>()
  const unsafe = (query: string, parameters: Array<postgres.ParameterOrJSON<never>> = [], options = {}) => {
    const prepare =
      prepared.has(query) || (parameters.length > 0 && prepared.size < readModelStatements && !!prepared.add(query))
    return client.unsafe(query, parameters, prepare ? { ...options, prepare } : options)
  }
  return new Proxy(client, { get: (target, key) => (key === "unsafe" ? unsafe : Reflect.get(target, key)) })
}

/**
 * The commit, padded to be sent at once: postgres.js holds a message under 1
 * KiB for the next turn of the event loop (to send it with others), and that
 * turn waits for whatever else runs, such as parsing the next page of the log
 * read meanwhile. The batch's own statements are usually larger and sent at
 * once; its commit would otherwise follow them only after that work.
 */
const commitAtOnce = `commit${" ".repeat(1024)}`

/**
 * The closing statements and the commit, sent together: one round trip. A
 * closing statement that fails leaves the transaction aborted, and PostgreSQL
 * answers the commit of an aborted transaction by rolling it back; that
 * statement's error is the outcome.
 */
const closeAndCommit = async (own: postgres.Sql, closing: ReadonlyArray<Statement>) => {
  const sent = closing.map(([statement, params]) =>
    own.unsafe(statement, params as Array<postgres.ParameterOrJSON<never>>, { prepare: true }).execute()
  )
  const commit = own.unsafe(commitAtOnce).execute()
  const outcomes = await Promise.allSettled(sent)
  // Awaited whatever it says: a rollback when a closing statement failed.
  const commitFailure = await commit.then(
    () => undefined,
    (error: unknown) => ({ error })
  )
  const failed = outcomes.findIndex((outcome) => outcome.status === "rejected")
  if (failed !== -1) throw new ClosingFailed(failed, (outcomes[failed] as PromiseRejectedResult).reason)
  if (commitFailure !== undefined) throw commitFailure.error
}

const inSession = <A>(run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (error) => storeError("projection", error) })

/**
 * Sessions for projections and reactors: a connection of the instance's own,
 * opened with the pool's settings, holding its advisory lock and running its
 * batches for as long as it runs (so it takes no connection of the pool).
 *
 * Not `reserve()` from the pool: postgres.js 3.4.9 never hands over a reserved
 * connection that it had to open for the purpose when `fetch_types` is off (as
 * the store's pool has it): its first ReadyForQuery drops the reservation.
 */
export const sessions = (client: postgres.Sql): Sessions => ({
  open: Effect.map(
    Effect.acquireRelease(
      inSession(async () => {
        const options = client.options
        const own = postgres({
          ...poolOptions(),
          host: options.host,
          port: options.port,
          ...(typeof options.path === "string" ? { path: options.path } : {}),
          database: options.database,
          user: options.user,
          pass: options.pass,
          ssl: options.ssl,
          connect_timeout: options.connect_timeout,
          connection: { ...options.connection, application_name: "eventcore-projection" },
          onnotice: () => {},
          max: 1,
          socket: firstConnectionOnly(),
          // Never closed for its age (postgres.js closes a connection after 30-60 min by default): the
          // session holds the name's lock for as long as the instance runs.
          max_lifetime: null
          // The parsed options carry hosts and ports as arrays, which postgres.js accepts but does not type.
        } as unknown as postgres.Options<Record<string, never>>)
        await own`select 1`
        return own
      }),
      (own) => Effect.promise(() => own.end({ timeout: 1 }))
    ),
    (own): Session => {
      const run = runOn(own)
      const readModel = drizzle({ client: preparing(own) })
      return {
        run,
        transaction: (<A, E, R>(
          body: (db: Database, run: RunStatement) => Effect.Effect<A, E, R>,
          closing?: (result: A) => ReadonlyArray<Statement>
        ) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function* () {
              // Sent, not awaited: the body's first statements follow it on the connection at once,
              // a round trip less per transaction. Its outcome is awaited before the commit.
              const begin = own.unsafe("begin").execute()
              // Handled now, or a connection lost before the body ends would reject it unhandled.
              begin.catch(() => {})
              const exit = yield* Effect.exit(restore(body(readModel, run)))
              const begun = yield* Effect.exit(inSession(() => begin))
              if (Exit.isSuccess(exit) && Exit.isSuccess(begun)) {
                yield* Effect.tryPromise({
                  try: () => closeAndCommit(own, closing?.(exit.value) ?? []),
                  catch: (error) => (error instanceof ClosingFailed ? error : storeError("projection", error))
                })
                return exit.value
              }
              yield* Effect.ignore(inSession(() => own.unsafe("rollback")))
              if (Exit.isFailure(begun)) return yield* Exit.failCause(begun.cause)
              return yield* exit
            })
          )) as Session["transaction"]
      }
    }
  ),
  tryLock: (session, key) =>
    Effect.map(
      inSession(() => session.run("select pg_try_advisory_lock(hashtextextended($1, 0))", [key])),
      (rows) => rows[0]?.[0] === true
    ),
  isLocked: (keys) =>
    Effect.map(
      inSession(() =>
        runOn(client)(
          // Advisory locks are per database: a projection of the same name in another database of the
          // server (another tenant's) holds a lock with the same key.
          `select exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 1
             and l.database = (select oid from pg_database where datname = current_database())
             and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(k.key, 0))
           from jsonb_array_elements_text($1::text::jsonb) with ordinality as k(key, i) order by k.i`,
          [JSON.stringify(keys)]
        )
      ),
      (rows) => rows.map((row) => row[0] === true)
    )
})
