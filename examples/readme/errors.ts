/** The README's error handling: every failure a tagged error, matched by its tag. */
import { Effect } from "effect"
import { execute } from "eventcore"
import { Transfer, type TransferInput } from "../../src/demo/domain.js"

// What a web handler would send back.
const reply = (status: number, body: string) => Effect.succeed({ status, body })

export const transfer = (input: TransferInput) =>
  execute(Transfer, input).pipe(
    Effect.andThen((result) => reply(200, `${result.events.length} events`)),
    Effect.catchTag("InsufficientFunds", (e) => reply(402, `balance ${e.balance} < ${e.requested}`)),
    Effect.catchTag("VersionConflict", (e) => reply(409, `${e.streamId}: expected ${e.expected}, was ${e.actual}`)),
    Effect.catchTag("StoreError", (e) => reply(503, e.message))
  )
