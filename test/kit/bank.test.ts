/**
 * The bank of `eventcore demo` (src/demo) specified with the testing kit: its
 * commands on the in-memory store and on PGlite, the same specs on both, and
 * its `Balances` read model on PGlite. The README's and docs/testing.md's
 * examples are taken from here.
 */
import { it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { InMemoryEventStore } from "eventcore"
import { CommandSpec, ProjectionSpec, runSpec, TestStore } from "eventcore/testing"
import { beforeAll, describe, it as plainIt } from "vitest"
import { InsufficientFunds, Open, Transfer, TransferReceived, TransferSent } from "../../src/demo/domain.js"
import { Balances, balances, createBalances } from "../../src/demo/readModel.js"
import { deposited, opened } from "../support/bankSpecs.js"

// A new PGlite database for each spec, copied from one made (and set up) once for this file.
const pglite = TestStore.pglite({ setup: (db) => db.execute(createBalances) })
// Made before the specs (the first build makes it), so that no spec's own time pays for it.
beforeAll(() => Effect.runPromise(Effect.scoped(Layer.build(pglite))))

describe.each([
  ["in memory", InMemoryEventStore.layer],
  ["on PGlite", pglite]
])("the bank's commands, %s", (_, layer) => {
  it.effect("a transfer moves money between two open accounts, on both streams at once", () =>
    CommandSpec.make(Transfer, { layer })
      .given({ "account-alice": [opened("Alice"), deposited(50_00)] })
      .given({ "account-bob": [opened("Bob")] })
      .when({ from: "alice", to: "bob", amount: 30_00 })
      .thenAppended({
        "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })],
        "account-bob": [TransferReceived.make({ from: "alice", amount: 30_00 })]
      })
  )

  it.effect("a transfer beyond the balance fails with the facts, and appends nothing", () =>
    CommandSpec.make(Transfer, { layer })
      .given({ "account-alice": [opened("Alice"), deposited(10_00)], "account-bob": [opened("Bob")] })
      .when({ from: "alice", to: "bob", amount: 30_00 })
      .thenFails(new InsufficientFunds({ account: "alice", balance: 10_00, requested: 30_00 }))
  )

  it.effect("a withdrawal between the transfer's read and its append: it runs again, and refuses", () =>
    CommandSpec.make(Transfer, { layer })
      .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
      .when(
        { from: "alice", to: "bob", amount: 30_00 },
        { concurrently: { "account-alice": [TransferSent.make({ to: "carol", amount: 40_00 })] } }
      )
      .thenFails(new InsufficientFunds({ account: "alice", balance: 10_00, requested: 30_00 }))
  )

  // Without @effect/vitest: a plain vitest `it`, the spec run by runSpec.
  plainIt("opening with a first deposit writes both in one append", () =>
    runSpec(
      CommandSpec.make(Open, { layer })
        .when({ account: "carol", owner: "Carol", initialDeposit: 5_00 })
        .thenAppended({ "account-carol": [opened("Carol"), deposited(5_00)] })
    )
  )
})

describe("the bank's read model", () => {
  it.effect("a balance per account, and the same after a rebuild", () =>
    ProjectionSpec.make(Balances, { layer: pglite })
      .given({ "account-alice": [opened("Alice"), deposited(50_00)], "account-bob": [opened("Bob")] })
      .given({
        "account-alice": [TransferSent.make({ to: "bob", amount: 20_00 })],
        "account-bob": [TransferReceived.make({ from: "alice", amount: 20_00 })]
      })
      .thenRows(balances, [
        { account: "alice", cents: 30_00 },
        { account: "bob", cents: 20_00 }
      ])
  )
})
