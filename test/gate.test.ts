/**
 * The PostgreSQL store's gate on its own (src/postgres/gate.ts): at most its
 * size of operations in flight, whether they take a permit through the Effect
 * or in one step (`tryEnter`/`leave`), and no permit lost to a wait that timed
 * out or was interrupted, even one handed a permit as it ended.
 */
import { Deferred, Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { makeGate } from "../src/postgres/gate.js"
import type { Gate } from "../src/sql/driver.js"

/** Every permit free again, and no more than `size`: `size` operations may start at once, not one more. */
const allFree = (gate: Gate, size: number) =>
  Effect.gen(function* () {
    const entered = Array.from({ length: size + 1 }, () => gate.tryEnter?.() === true)
    for (const taken of entered) if (taken) gate.leave?.()
    // Exactly `size` taken at once: all free, and none beyond.
    return entered.filter(Boolean).length === size
  })

describe("the PostgreSQL store's gate", () => {
  it("runs at most its size at once, through the Effect and in one step alike, and hands permits to waiters in turn", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const size = 4
        const gate = yield* makeGate(size, "10 seconds")
        let running = 0
        let most = 0
        const operation = (i: number) =>
          Effect.gen(function* () {
            running += 1
            most = Math.max(most, running)
            yield* Effect.sleep(i % 3)
            running -= 1
            return i
          })
        // Half through the gate's Effect, half taking a permit in one step when one is free.
        const oneStep = (i: number) =>
          Effect.suspend(() => {
            if (gate.tryEnter?.() !== true) return gate("test", operation(i))
            return Effect.ensuring(
              operation(i),
              Effect.sync(() => gate.leave?.())
            )
          })
        const done = yield* Effect.all(
          Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? gate("test", operation(i)) : oneStep(i))),
          { concurrency: "unbounded" }
        )
        expect(done).toHaveLength(200)
        expect(most).toBeLessThanOrEqual(size)
        expect(most).toBe(size)
        expect(yield* allFree(gate, size)).toBe(true)
      })
    ))

  it("loses no permit to waits that time out or are interrupted, even as a permit is handed to them", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const size = 2
        const gate = yield* makeGate(size, "20 millis")
        const release = yield* Deferred.make<void>()
        // The pool full for a while: waiters time out, others are interrupted, some at the moment a permit frees.
        const holders = yield* Effect.forkAll(
          Array.from({ length: size }, () => gate("hold", Deferred.await(release))),
          { discard: false }
        )
        yield* Effect.sleep("5 millis")
        const timedOut = yield* Effect.all(
          Array.from({ length: 5 }, () => Effect.flip(gate("late", Effect.void))),
          { concurrency: "unbounded" }
        )
        expect(timedOut.map((error) => error._tag)).toEqual(Array(5).fill("StoreError"))
        expect(timedOut[0]?.message).toContain("No PostgreSQL connection became free within")
        const waiting = yield* Effect.forkAll(
          Array.from({ length: 6 }, () => gate("waiting", Effect.sleep("1 millis"))),
          { discard: false }
        )
        yield* Effect.sleep("2 millis")
        yield* Deferred.succeed(release, undefined)
        // Interrupted as the holders hand their permits over.
        yield* Fiber.interrupt(waiting)
        yield* Fiber.join(holders)
        expect(yield* allFree(gate, size)).toBe(true)
      })
    ))
})
