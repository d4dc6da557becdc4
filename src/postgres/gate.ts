/**
 * The PostgreSQL store's gate (see src/sql/driver.ts): operations in flight
 * bounded by the pool's size.
 */
import { Duration, Effect, Exit } from "effect"
import { StoreError } from "../errors.js"
import type { Gate } from "../sql/driver.js"

/**
 * Bounds the operations in flight to the pool size, so that waiting for a
 * connection is visible here and can time out with a clear error (postgres.js
 * itself would queue the query without limit).
 *
 * Its permits are a plain count: an operation that finds one free takes it
 * in the same step as it sends its statement (`tryEnter`, `leave`), with no
 * Effect around the permit; only a full pool waits, in an Effect that can time
 * out. A permit is handed from the operation that ends to the oldest waiter.
 */
export const makeGate = (size: number, acquireTimeout: Duration.DurationInput) =>
  Effect.sync((): Gate => {
    const timeout = Duration.decode(acquireTimeout)
    let free = size
    const waiters: Array<() => void> = []

    const tryEnter = () => {
      if (free === 0) return false
      free -= 1
      return true
    }
    const leave = () => {
      const next = waiters.shift()
      if (next === undefined) free += 1
      else next()
    }

    /** A permit, once one is handed over; a permit handed to a wait that ended anyway goes on to the next. */
    const waitForPermit = (operation: string) =>
      Effect.suspend(() => {
        let handed = false
        let wake = () => {}
        const waiter = () => {
          handed = true
          wake()
        }
        return Effect.async<void>((resume) => {
          wake = () => resume(Effect.void)
          waiters.push(waiter)
          return Effect.sync(() => {
            const at = waiters.indexOf(waiter)
            if (at !== -1) waiters.splice(at, 1)
          })
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new StoreError({
                operation,
                message: `No PostgreSQL connection became free within ${Duration.format(timeout)} (pool of ${size}): raise maxConnections or acquireTimeout, or look for slow queries and long transactions.`
              })
          }),
          Effect.onExit((exit) => (handed && Exit.isFailure(exit) ? Effect.sync(leave) : Effect.void))
        )
      })

    const release = Effect.sync(leave)
    const gate = (<A>(operation: string, run: Effect.Effect<A, StoreError>) =>
      Effect.acquireUseRelease(
        // Waiting for a permit is interruptible (acquiring is not, by default): the timeout must cut it short.
        Effect.suspend(() => (tryEnter() ? Effect.void : Effect.interruptible(waitForPermit(operation)))),
        () => run,
        () => release
      )) as Gate
    return Object.assign(gate, { tryEnter, leave })
  })
