/**
 * The PostgreSQL store's gate (see src/sql/driver.ts): operations in flight
 * bounded by the pool's size.
 */
import { Duration, Effect, Option } from "effect"
import { StoreError } from "../errors.js"
import type { Gate } from "../sql/driver.js"

/**
 * Bounds the operations in flight to the pool size, so that waiting for a
 * connection is visible here and can time out with a clear error (postgres.js
 * itself would queue the query without limit).
 */
export const makeGate = (size: number, acquireTimeout: Duration.DurationInput) =>
  Effect.map(Effect.makeSemaphore(size), (semaphore) => {
    const timeout = Duration.decode(acquireTimeout)
    const waitForPermit: Gate = (operation, run) =>
      Effect.acquireUseRelease(
        // The acquire step is uninterruptible; waiting for a permit must not be,
        // or the timeout could not cut it short.
        Effect.interruptible(semaphore.take(1)).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new StoreError({
                operation,
                message: `No PostgreSQL connection became free within ${Duration.format(timeout)} (pool of ${size}): raise maxConnections or acquireTimeout, or look for slow queries and long transactions.`
              })
          })
        ),
        () => run,
        () => semaphore.release(1)
      )
    // A free permit is taken without arming the timeout: the timeout's race
    // (a fiber and a timer) cost ~40 µs of CPU per operation, a sixth of an
    // append's, and only a full pool needs it.
    const gate: Gate = (operation, run) =>
      Effect.flatMap(
        semaphore.withPermitsIfAvailable(1)(run),
        Option.match({ onNone: () => waitForPermit(operation, run), onSome: Effect.succeed })
      )
    return gate
  })
