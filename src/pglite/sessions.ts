/**
 * Statements and sessions on PGlite (see src/sql/driver.ts). PGlite has one
 * session, shared by everything in the process (and one process per data
 * directory): projections and reactors share it, and their ownership of a
 * name is kept in process.
 */
import type { PGlite, Transaction } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { Deferred, Effect, Exit } from "effect"
import type { StoreError } from "../errors.js"
import type { Statement } from "../internal/storeContract.js"
import { ClosingFailed, type Database, type RunStatement, type Session, type Sessions } from "../sql/driver.js"
import { storeError } from "../sql/errors.js"

/** Statements of a PGlite session or transaction, rows as arrays. */
export const runOn =
  (target: Pick<PGlite, "query">): RunStatement =>
  (statement, params) =>
    target
      .query<Array<unknown>>(statement, params as Array<unknown>, { rowMode: "array" })
      .then((result) => result.rows)

/** Names owned by projections and reactors, per database: PGlite has one session, so ownership is kept here. */
const owned = new WeakMap<PGlite, Set<string>>()

/**
 * Sessions for projections and reactors: PGlite's one, shared; its
 * transactions hold PGlite's lock, so other operations on the database wait
 * for a batch to commit.
 */
export const sessions = (client: PGlite): Sessions => {
  const names = owned.get(client) ?? new Set<string>()
  owned.set(client, names)
  const session: Session = {
    run: runOn(client),
    transaction: (<A, E, R>(
      body: (db: Database, run: RunStatement) => Effect.Effect<A, E, R>,
      closing?: (result: A) => ReadonlyArray<Statement>
    ) =>
      bridgeTransaction(
        (callback: (tx: Transaction) => Promise<void>) => client.transaction(callback),
        (tx) =>
          Effect.tap(body(drizzle({ client: tx as unknown as PGlite }), runOn(tx)), (result) =>
            Effect.forEach(
              closing?.(result) ?? [],
              ([statement, params], index) =>
                Effect.tryPromise({
                  try: () => runOn(tx)(statement, params),
                  catch: (error) => new ClosingFailed(index, error)
                }),
              { discard: true }
            )
          )
      )) as Session["transaction"]
  }
  return {
    open: Effect.succeed(session),
    tryLock: (_, key) =>
      Effect.gen(function* () {
        if (names.has(key)) return false
        names.add(key)
        yield* Effect.addFinalizer(() => Effect.sync(() => names.delete(key)))
        return true
      }),
    isLocked: (keys) => Effect.sync(() => keys.map((key) => names.has(key)))
  }
}

/**
 * A transaction as an Effect, for drivers that only offer one as a callback
 * (PGlite's `transaction`): the callback hands its transaction over, waits for
 * the body's outcome, and commits or rolls back with it.
 */
export const bridgeTransaction = <Tx, A, E, R>(
  open: (callback: (tx: Tx) => Promise<void>) => Promise<void>,
  body: (tx: Tx) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | StoreError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const ready = yield* Deferred.make<Tx, StoreError>()
      const outcome = yield* Deferred.make<boolean>()
      const finished = open(async (tx) => {
        Deferred.unsafeDone(ready, Exit.succeed(tx))
        const commit = await Effect.runPromise(Deferred.await(outcome))
        // Rejecting rolls the transaction back.
        if (!commit) throw rollback
      })
      // A transaction that could not begin rejects before handing itself over.
      finished.catch((error) => Deferred.unsafeDone(ready, Exit.fail(storeError("projection", error))))
      const settled = Effect.tryPromise({ try: () => finished, catch: (error) => error })
      const tx = yield* Deferred.await(ready)
      const exit = yield* Effect.exit(restore(body(tx)))
      yield* Deferred.succeed(outcome, Exit.isSuccess(exit))
      const ended = yield* Effect.either(settled)
      if (ended._tag === "Left" && ended.left !== rollback) {
        return yield* Effect.fail(storeError("projection", ended.left))
      }
      return yield* exit
    })
  )

const rollback = new Error("eventcore: rolled back")
