/**
 * Types a later release retires (docs/evolution.md), in a bank that had
 * stored two more: `StatementRequested`, which nothing reads any more, and
 * `AccountSettled`, the closing of an account and its payout in one event,
 * which this release records as two.
 */
import { Schema } from "effect"
import { EventSchema } from "eventcore"
import { AccountOpened, Money, MoneyDeposited, MoneyWithdrawn } from "./bank.js"

export const AccountClosed = Schema.TaggedStruct("AccountClosed", {})

export const AccountEvent = EventSchema.evolve(
  Schema.Union(AccountOpened, MoneyDeposited, MoneyWithdrawn, AccountClosed),
  {
    renamed: { AccountCreated: "AccountOpened" },
    ignored: ["StatementRequested"],
    replaced: {
      AccountSettled: EventSchema.replacedBy(Schema.Struct({ payout: Money }), ({ payout }) => [
        MoneyWithdrawn.make({ money: payout }),
        AccountClosed.make({})
      ])
    }
  }
)
