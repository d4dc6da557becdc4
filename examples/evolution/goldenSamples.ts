/**
 * Golden samples (a vitest file, among an application's tests): each version
 * of each type the bank ever stored decodes to exactly today's events. An
 * upcast changed by mistake fails here, before a deploy.
 */
import { expectDecodes } from "eventcore/testing"
import { describe, it } from "vitest"
import { AccountEvent } from "./bank.js"

describe("stored bank events, as release 3 reads them", () => {
  it("MoneyDeposited v1 was in euros", () =>
    expectDecodes(AccountEvent, { eventType: "MoneyDeposited", schemaVersion: 1, data: { amount: 50_00 } }, [
      { _tag: "MoneyDeposited", money: { cents: 50_00, currency: "EUR" } }
    ]))

  it("MoneyDeposited v2 keeps its currency", () =>
    expectDecodes(
      AccountEvent,
      { eventType: "MoneyDeposited", schemaVersion: 2, data: { amount: 5_00, currency: "USD" } },
      [{ _tag: "MoneyDeposited", money: { cents: 5_00, currency: "USD" } }]
    ))

  it("AccountCreated is today's AccountOpened", () =>
    expectDecodes(AccountEvent, { eventType: "AccountCreated", data: { owner: "Alice" } }, [
      { _tag: "AccountOpened", owner: "Alice" }
    ]))
})
