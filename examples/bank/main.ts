/**
 * `npm run example`: a bank on the in-memory store. Opens accounts, runs
 * concurrent transfers as two-stream commands, then checks that no money was
 * created or destroyed and no balance went negative.
 */
import { Console, Effect, Either, Logger, LogLevel, Random, Schedule } from "effect"
import { execute, InMemoryEventStore } from "eventcore"
import { balanceOf, Deposit, Open, Transfer } from "./domain.js"

const accounts = Array.from({ length: 10 }, (_, i) => `acct-${i}`)
const initialDeposit = 10_000
const transfers = 2_000
const concurrency = 8

const program = Effect.gen(function* () {
  for (const account of accounts) {
    yield* execute(Open, { account, owner: account })
    yield* execute(Deposit, { account, amount: initialDeposit })
  }

  // Reads yield to other fibers, so commands interleave and really conflict.
  const retry = Schedule.exponential("1 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(20)))
  const started = Date.now()
  const outcomes = yield* Effect.forEach(
    Array.from({ length: transfers }),
    () =>
      Effect.gen(function* () {
        const from = accounts[yield* Random.nextIntBetween(0, accounts.length)] as string
        const to = accounts[yield* Random.nextIntBetween(0, accounts.length)] as string
        const amount = yield* Random.nextIntBetween(1, 5_000)
        yield* Effect.yieldNow()
        return yield* Effect.either(execute(Transfer, { from, to, amount }, { retry }))
      }),
    { concurrency }
  )
  const elapsed = (Date.now() - started) / 1000

  const succeeded = outcomes.filter(Either.isRight)
  const rejected = outcomes.filter((o) => Either.isLeft(o) && o.left._tag !== "VersionConflict")
  const retries = succeeded.reduce((n, o) => n + o.right.attempts - 1, 0)

  const balances = yield* Effect.forEach(accounts, balanceOf)
  const total = balances.reduce((sum, balance) => sum + balance, 0)
  const negative = balances.filter((balance) => balance < 0).length

  yield* Console.log(`transfers: ${succeeded.length} succeeded, ${rejected.length} rejected by a business rule`)
  yield* Console.log(`conflicts retried: ${retries}; ${(transfers / elapsed).toFixed(0)} commands/s`)
  const ok = total === accounts.length * initialDeposit && negative === 0
  yield* Console.log(
    `invariants: total ${total} (expected ${accounts.length * initialDeposit}), negative balances ${negative}: ${ok ? "OK" : "BROKEN"}`
  )
  if (!ok) return yield* Effect.fail("invariants broken")
})

// Each retry logs a warning; the summary reports them instead.
Effect.runPromise(
  program.pipe(Effect.provide(InMemoryEventStore.layer), Logger.withMinimumLogLevel(LogLevel.Error))
).catch((error) => {
  console.error(error)
  process.exit(1)
})
