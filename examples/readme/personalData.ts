/**
 * The README's personal data example: an account holder's name and address,
 * stored encrypted under the account's own key, read back in the clear,
 * then erased. `npx tsx examples/readme/personalData.ts` prints what each
 * step reads, and what the events table holds.
 */
import { Effect, Schema } from "effect"
import { Command, EventStore, execute, PersonalData, PgliteEventStore, StreamId } from "eventcore"

const Address = Schema.Struct({ street: Schema.String, city: Schema.String })

// The account id names the data subject: the holder's name and address are theirs.
const AccountOpened = Schema.TaggedStruct("AccountOpened", {
  accountId: Schema.String,
  holder: PersonalData.field(Schema.String, { subject: "accountId" }),
  address: PersonalData.field(Address, { subject: "accountId", erased: { street: "", city: "" } })
})
const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { accountId: Schema.String, amount: Schema.Int })
const AccountEvent = Schema.Union(AccountOpened, MoneyDeposited)

const accountStream = (accountId: string) => StreamId.unsafeMake(`account-${accountId}`)

const OpenAccount = Command.make({
  name: "OpenAccount",
  event: AccountEvent,
  streams: (input: { readonly accountId: string; readonly holder: string; readonly street: string }) => [
    accountStream(input.accountId)
  ],
  initialState: false,
  apply: () => true,
  decide: (opened, { accountId, holder, street }) =>
    opened
      ? Effect.fail(new Error(`account ${accountId} is already open`))
      : Effect.succeed([
          {
            streamId: accountStream(accountId),
            event: AccountOpened.make({ accountId, holder, address: { street, city: "Lisbon" } })
          }
        ])
})

// The holder's name is `string | PersonalData.Erased` in the state: a command folds an erased account too.
const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly accountId: string; readonly amount: number }) => [accountStream(input.accountId)],
  initialState: { holder: undefined as string | PersonalData.Erased | undefined, balance: 0 },
  apply: (state, event) =>
    event._tag === "AccountOpened"
      ? { ...state, holder: event.holder }
      : { ...state, balance: state.balance + event.amount },
  decide: (_, { accountId, amount }) =>
    Effect.succeed([{ streamId: accountStream(accountId), event: MoneyDeposited.make({ accountId, amount }) }])
})

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const db = yield* PgliteEventStore.Client
  yield* execute(OpenAccount, { accountId: "a-17", holder: "Maria Sousa", street: "Rua Augusta 12" })

  const stored = yield* Effect.promise(() => db.query<{ data: unknown }>("select data from eventcore.events"))
  console.log("the name stored in the clear:", JSON.stringify(stored.rows).includes("Maria Sousa")) // false
  console.log("read:", (yield* store.readStream(accountStream("a-17"))).events[0]?.data)

  // As the owner of eventcore's schema (on PostgreSQL, a role granted EXECUTE on eventcore.erase_subject).
  const erasure = yield* PersonalData.erase("a-17", { by: "dpo@bank.example" })
  console.log("erased:", erasure.subject, "by", erasure.erasedBy)

  console.log("read:", (yield* store.readStream(accountStream("a-17"))).events[0]?.data)
  const deposit = yield* execute(Deposit, { accountId: "a-17", amount: 10 })
  console.log("deposit after erasure: version", deposit.streamVersions.get(accountStream("a-17")))
})

await Effect.runPromise(program.pipe(Effect.provide(PgliteEventStore.layer())))
