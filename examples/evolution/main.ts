/**
 * Events outlive their schema: the first release of a bank stores events,
 * then a later release (version 3 of `MoneyDeposited`, `AccountCreated`
 * renamed `AccountOpened`) runs against the same PGlite directory. Its
 * commands fold the old events, its projection rebuilds over both releases'
 * events, and the deploy check reads every stored (type, version) pair; the
 * first release's schemas could no longer read the store (a rollback would
 * fail). Prints what it found and exits 0 only if it is what it expects.
 *
 *     npx tsx examples/evolution/main.ts
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isDeepStrictEqual } from "node:util"
import { drizzle } from "drizzle-orm/pglite"
import { Effect } from "effect"
import { EventSchema, execute, PgliteEventStore, Projection } from "eventcore"
import * as Bank from "./bank.js"
import * as Release1 from "./release1.js"

const formatMoney = ({ cents, currency }: Bank.Money) => `${currency} ${(cents / 100).toFixed(2)}`

const describeReport = (report: EventSchema.CheckReport) =>
  report.types.map(
    ({ eventType, schemaVersion, count, outcome }) => `${eventType} v${schemaVersion} x${count}: ${outcome}`
  )

const release1 = Effect.gen(function* () {
  yield* execute(Release1.Create, { account: "alice", owner: "Alice" })
  yield* execute(Release1.Deposit, { account: "alice", amount: 50_00 })
  yield* execute(Release1.Deposit, { account: "alice", amount: 30_00 })
  yield* execute(Release1.Create, { account: "bob", owner: "Bob" })
  yield* execute(Release1.Deposit, { account: "bob", amount: 20_00 })
})

const release3 = Effect.gen(function* () {
  const client = yield* PgliteEventStore.Client
  yield* Effect.promise(() => client.exec(Bank.createReadModel))

  // Alice's account was "created" by release 1, her deposits have no currency: both fold as today's events.
  yield* execute(Bank.Deposit, { account: "alice", money: { cents: 10_00, currency: "EUR" } })
  yield* execute(Bank.Withdraw, { account: "alice", money: { cents: 85_00, currency: "EUR" } })
  const overdraft = yield* execute(Bank.Withdraw, { account: "alice", money: { cents: 10_00, currency: "EUR" } }).pipe(
    Effect.match({
      onSuccess: () => "accepted",
      onFailure: (error) =>
        error._tag === "InsufficientFunds" ? `refused, balance ${formatMoney(error.balance)}` : error._tag
    })
  )
  yield* execute(Bank.Deposit, { account: "bob", money: { cents: 5_00, currency: "USD" } })
  yield* execute(Bank.Open, { account: "carol", owner: "Carol" })
  const { events } = yield* execute(Bank.Deposit, { account: "carol", money: { cents: 7_00, currency: "EUR" } })

  // The projection starts over, as after a change to its code, and replays both releases' events.
  yield* Projection.rebuild(Bank.Balances)
  yield* Effect.forkScoped(Projection.run(Bank.Balances))
  yield* Effect.forEach(events, (event) => Projection.waitFor(Bank.Balances, event.position))
  const db = drizzle({ client })
  const owners = yield* Effect.promise(() => db.select().from(Bank.accounts).orderBy(Bank.accounts.account))
  const balances = yield* Effect.promise(() =>
    db.select().from(Bank.balances).orderBy(Bank.balances.account, Bank.balances.currency)
  )

  return {
    overdraft,
    readModel: owners.map(({ account, owner }) =>
      [
        account,
        owner,
        ...balances
          .filter((balance) => balance.account === account)
          .map(({ cents, currency }) => formatMoney({ cents, currency: currency as Bank.Money["currency"] }))
      ].join(" ")
    ),
    check: describeReport(yield* EventSchema.check([Bank.AccountEvent])),
    checkByRelease1: describeReport(yield* EventSchema.check([Release1.AccountEvent]))
  }
})

const expected = {
  overdraft: "refused, balance EUR 5.00",
  readModel: ["alice Alice EUR 5.00", "bob Bob EUR 20.00 USD 5.00", "carol Carol EUR 7.00"],
  check: [
    "AccountCreated v1 x2: decoded",
    "AccountOpened v1 x1: decoded",
    "MoneyDeposited v1 x3: decoded",
    "MoneyDeposited v3 x3: decoded",
    "MoneyWithdrawn v1 x1: decoded"
  ],
  checkByRelease1: [
    "AccountCreated v1 x2: decoded",
    "AccountOpened v1 x1: unknown",
    "MoneyDeposited v1 x3: decoded",
    "MoneyDeposited v3 x3: failed",
    "MoneyWithdrawn v1 x1: unknown"
  ]
}

const dataDir = await mkdtemp(join(tmpdir(), "eventcore-evolution-"))
try {
  const store = PgliteEventStore.layer({ dataDir })
  // One process owns a data directory at a time: release 1's store is closed before release 3's opens.
  await Effect.runPromise(release1.pipe(Effect.provide(store)))
  const found = await Effect.runPromise(release3.pipe(Effect.scoped, Effect.provide(store)))
  console.log(`alice withdrawing EUR 10.00 after release 1's deposits, and release 3's: ${found.overdraft}`)
  console.log("read model, rebuilt over both releases' events:")
  for (const line of found.readModel) console.log(`  ${line}`)
  console.log("stored events, as release 3 reads them (EventSchema.check):")
  for (const line of found.check) console.log(`  ${line}`)
  console.log("the same events, as release 1 would read them after a rollback:")
  for (const line of found.checkByRelease1) console.log(`  ${line}`)
  if (isDeepStrictEqual(found, expected)) {
    console.log("everything as expected")
  } else {
    console.error(`unexpected: ${JSON.stringify(found, null, 2)}\nexpected: ${JSON.stringify(expected, null, 2)}`)
    process.exitCode = 1
  }
} finally {
  await rm(dataDir, { recursive: true, force: true })
}
