/**
 * The SQL stores' own key store and erasure (migration 0013, docs/erasure.md):
 * keys in the table `subject_keys` of the store's schema, made and read in one
 * statement, and `erase_subject`, which deletes a key, records the erasure,
 * removes snapshots and appends `SubjectErased` in one transaction.
 */
import { Effect } from "effect"
import type { StoreError, SubjectErased } from "../errors.js"
import { newKey } from "../internal/personal.js"
import type { Erasure } from "../internal/storeContract.js"
import type { KeyStore } from "../KeyStore.js"
import * as LogPosition from "../LogPosition.js"
import type { Query } from "./driver.js"
import { parseSubjectErased } from "./errors.js"
import { quoted } from "./statements.js"

const keysOf = (rows: ReadonlyArray<ReadonlyArray<unknown>>): ReadonlyMap<string, Uint8Array> =>
  new Map(rows.map(([subject, key]) => [subject as string, Buffer.from(key as string, "base64")]))

export const statements = (schema: string) => ({
  /** Each subject of $1 ({subject: a new key in base64}) with its key, the candidate stored where it had none. */
  keysFor: `select subject, key from ${quoted(schema)}.subject_keys_for($1::text::jsonb)`,
  /** The keys of the subjects of $1 (a JSON array) that have one. */
  existingKeys: `select subject, encode(key, 'base64') from ${quoted(schema)}.subject_keys
where subject in (select jsonb_array_elements_text($1::text::jsonb))`,
  erase: `select ${quoted(schema)}.erase_subject($1, $2)::text as reply`
})

/** The key store of the SQL store in `schema`; `query` runs on its primary. */
export const keyStore = (schema: string, query: Query): KeyStore => {
  const sql = statements(schema)
  return {
    keysFor: (subjects) => {
      const candidates: Record<string, string> = {}
      for (const subject of subjects) candidates[subject] = Buffer.from(newKey()).toString("base64")
      return query("append", sql.keysFor, [JSON.stringify(candidates)]).pipe(
        Effect.catchAll((error): Effect.Effect<never, SubjectErased | StoreError> => {
          const erased = parseSubjectErased(error.cause)
          return Effect.fail(erased ?? error)
        }),
        Effect.map(keysOf)
      )
    },
    existingKeys: (subjects) =>
      Effect.map(query("read_keys", sql.existingKeys, [JSON.stringify([...subjects])]), keysOf),
    // The erasure deletes the row in its own transaction.
    destroy: () => Effect.void
  }
}

interface ErasureReply {
  readonly erased: boolean
  readonly erasedAt: number
  readonly erasedBy?: string
  readonly snapshotsRemoved?: number
  readonly position?: string
  readonly transaction?: string
}

/** Erases `subject` in the store in `schema` (`erase_subject`), as `by`. */
export const erase = (schema: string, query: Query) => {
  const statement = statements(schema).erase
  return (subject: string, by: string): Effect.Effect<Erasure, StoreError> =>
    Effect.map(query("erase", statement, [subject, by]), (rows) => {
      const reply = JSON.parse(rows[0]?.[0] as string) as ErasureReply
      return reply.erased
        ? {
            subject,
            erasedBy: by,
            erasedAt: new Date(reply.erasedAt),
            already: false,
            snapshotsRemoved: reply.snapshotsRemoved ?? 0,
            position: LogPosition.make(BigInt(reply.transaction as string), BigInt(reply.position as string))
          }
        : {
            subject,
            erasedBy: reply.erasedBy as string,
            erasedAt: new Date(reply.erasedAt),
            already: true,
            snapshotsRemoved: 0
          }
    })
}
