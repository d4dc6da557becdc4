/**
 * The bank's events as the testing kit's specs give them, and the balances
 * spec run on every store (test/kit/projectionSpec.test.ts on PGlite,
 * test/postgres/testingKit.test.ts on a server).
 */
import type { Layer } from "effect"
import type { EventStore, Projection } from "eventcore"
import { ProjectionSpec } from "eventcore/testing"
import { AccountOpened, MoneyDeposited, TransferReceived, TransferSent } from "../../src/demo/domain.js"
import { Balances, balances } from "../../src/demo/readModel.js"

export const opened = (owner: string) => AccountOpened.make({ owner })
export const deposited = (amount: number) => MoneyDeposited.make({ amount })

/** Five givens across three accounts, two transfers among them: the balances each account ends with. */
export const balancesAcrossAccounts = (
  layer: Layer.Layer<EventStore.EventStore | Projection.ReadModelStore, unknown>
) =>
  ProjectionSpec.make(Balances, { layer })
    .given({ "account-alice": [opened("Alice"), deposited(100_00)] })
    .given({ "account-bob": [opened("Bob"), deposited(5_00)], "account-carol": [opened("Carol")] })
    .given({
      "account-alice": [TransferSent.make({ to: "bob", amount: 30_00 })],
      "account-bob": [TransferReceived.make({ from: "alice", amount: 30_00 })]
    })
    .given({
      "account-bob": [TransferSent.make({ to: "carol", amount: 10_00 })],
      "account-carol": [TransferReceived.make({ from: "bob", amount: 10_00 })]
    })
    .given({ "account-alice": [deposited(1)] })
    .thenRows(balances, [
      { account: "carol", cents: 10_00 },
      { account: "alice", cents: 70_01 },
      { account: "bob", cents: 25_00 }
    ])
