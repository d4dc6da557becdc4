/**
 * Release 2's deposits (docs/evolution.md): the currency became a required
 * field, and version 1 of the type, stored before, gained the step that
 * brings it to version 2. Release 3 (bank.ts) keeps this step as it is and
 * appends its own.
 */
import { Schema } from "effect"
import { EventSchema } from "eventcore"

const Cents = Schema.Int.pipe(Schema.positive())
const Currency = Schema.Literal("EUR", "USD")

export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Cents, currency: Currency }).pipe(
  EventSchema.versions(
    // 1 -> 2 (release 2): every deposit before had been in euros
    EventSchema.upcast(Schema.Struct({ amount: Cents }), ({ amount }) => ({ amount, currency: "EUR" }))
  )
)
