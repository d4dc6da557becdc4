/**
 * The bank's balances kept event by event: the per-event form of the demo's
 * `Balances` (src/demo/readModel.ts, a row projection), for tests that hook
 * into each event a projection handles (a pause, a crash, a poison event).
 */
import { sql } from "drizzle-orm"
import { Data, Effect } from "effect"
import { Projection, type RecordedEvent } from "eventcore"
import type { AccountEvent } from "../../src/demo/domain.js"
import { balances } from "../../src/demo/readModel.js"

/** The read model's table refused a write: the database's error, with its message. */
export class ReadModelError extends Data.TaggedError("ReadModelError")<{ readonly cause: unknown }> {
  override get message() {
    return this.cause instanceof Error ? this.cause.message : String(this.cause)
  }
}

const prefix = "account-"

const change = (event: AccountEvent): number =>
  event._tag === "AccountOpened" ? 0 : event._tag === "TransferSent" ? -event.amount : event.amount

/** One event's change to its account's balance, as one upsert. */
export const upsertBalance = (
  event: AccountEvent,
  recorded: RecordedEvent
): Effect.Effect<void, ReadModelError, Projection.ReadModel> =>
  Effect.flatMap(Projection.ReadModel, ({ db }) => {
    const cents = change(event)
    return Effect.tryPromise({
      try: () =>
        db
          .insert(balances)
          .values({ account: recorded.streamId.slice(prefix.length), cents })
          .onConflictDoUpdate({ target: balances.account, set: { cents: sql`${balances.cents} + ${cents}` } }),
      catch: (cause) => new ReadModelError({ cause })
    })
  })
