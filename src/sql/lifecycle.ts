/**
 * The SQL stores' stream lifecycle (migration 0014, docs/erasure.md): the
 * functions `archive_stream`, `truncate_stream` and `purge_truncated`, which
 * run as the owner and which only the owner may call unless it grants them.
 */
import { Effect } from "effect"
import { InvalidTruncation, type StoreError, StreamNotFound } from "../errors.js"
import type { Lifecycle } from "../internal/storeContract.js"
import type { StreamId } from "../StreamId.js"
import type { Query } from "./driver.js"
import { driverError } from "./errors.js"
import { quoted } from "./statements.js"

/** Not a stream, or not a version of it, to archive or truncate (`EC006`), with the stream's version from its DETAIL. */
const notAVersion = (error: StoreError): number | undefined => {
  const cause = driverError(error.cause)
  if (cause.code !== "EC006" || cause.detail === undefined) return undefined
  return (JSON.parse(cause.detail) as { version: number }).version
}

const replyOf = <A>(rows: ReadonlyArray<ReadonlyArray<unknown>>): A => JSON.parse(rows[0]?.[0] as string) as A

export const make = (schema: string, query: Query): Lifecycle => {
  const functions = quoted(schema)
  return {
    archive: (streamId: StreamId) =>
      query("archive", `select ${functions}.archive_stream($1)::text`, [streamId]).pipe(
        Effect.catchAll((error) =>
          Effect.fail(notAVersion(error) === undefined ? error : new StreamNotFound({ streamId }))
        ),
        Effect.map((rows) => {
          const reply = replyOf<{ version: number; archivedAt: number; already: boolean }>(rows)
          return { streamId, version: reply.version, archivedAt: new Date(reply.archivedAt), already: reply.already }
        })
      ),
    truncate: (streamId: StreamId, before: number) =>
      query("truncate", `select ${functions}.truncate_stream($1, $2)::text`, [streamId, before]).pipe(
        Effect.catchAll((error) => {
          const version = notAVersion(error)
          return Effect.fail(version === undefined ? error : new InvalidTruncation({ streamId, before, version }))
        }),
        Effect.map((rows) => {
          const reply = replyOf<{ version: number; truncatedBefore: number }>(rows)
          return { streamId, version: reply.version, truncatedBefore: reply.truncatedBefore }
        })
      ),
    purge: Effect.map(query("purge", `select ${functions}.purge_truncated()::text`, []), (rows) => Number(rows[0]?.[0]))
  }
}
