/**
 * What `eventcore erase`, `archive`, `truncate` and `purge` say they did and
 * the functions of eventcore's schema they call (only its owner may call
 * them unless it grants them: docs/erasure.md); and what `stats` counts of
 * them: archived and truncated streams (and the events truncations hide),
 * erased subjects and the keys held.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import type { StoreError } from "../errors.js"
import type { Erasure } from "../PersonalData.js"
import type { Archived, Truncated } from "../StreamLifecycle.js"
import type { Database } from "../sql/driver.js"
import { storeError } from "../sql/errors.js"
import { rowsOf } from "../sql/rows.js"
import { quoted } from "../sql/statements.js"
import type { Privileged } from "./connection.js"

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

/** What `erase` did: the erasure, or the one before it, which this one left as it was. */
export const erasedLine = (erasure: Erasure) =>
  erasure.already
    ? `subject ${JSON.stringify(erasure.subject)} was already erased by ${erasure.erasedBy} at ${erasure.erasedAt.toISOString()}: nothing changed`
    : `erased subject ${JSON.stringify(erasure.subject)} (by ${erasure.erasedBy} at ${erasure.erasedAt.toISOString()}): its personal data unreadable from now on, ${plural(erasure.snapshotsRemoved, "snapshot")} removed, SubjectErased at ${erasure.position} in eventcore-erasures`

/** What `archive` did. */
export const archivedLine = (archived: Archived) =>
  archived.already
    ? `stream ${JSON.stringify(archived.streamId)} was already archived at ${archived.archivedAt.toISOString()} (version ${archived.version}): nothing changed`
    : `archived stream ${JSON.stringify(archived.streamId)} at version ${archived.version}: its reads and appends are refused from now on; its events stay in the global log`

/**
 * What `truncate` did, asked to truncate before `before`: a point already
 * past it stays where it is (a truncation point never moves back).
 */
export const truncatedLine = (truncated: Truncated, before: number) =>
  truncated.truncatedBefore > before
    ? `stream ${JSON.stringify(truncated.streamId)} is already truncated before version ${truncated.truncatedBefore} (of ${truncated.version}): a truncation point never moves back; nothing changed`
    : `truncated stream ${JSON.stringify(truncated.streamId)} before version ${truncated.truncatedBefore} (of ${truncated.version}): reads and commands start there; the events before it stay in the global log until \`eventcore purge\``

/** What `purge` removed. */
export const purgedLine = (removed: number) =>
  `purged ${plural(removed, "event")} that truncations hid: removed for good, from the global log too`

/** The functions `erase`, `archive`, `truncate` and `purge` call, which only the schema's owner may call unless it grants them. */
export const privileged = {
  erase: { migration: "0013_personal_data", name: "erase_subject", args: "text, text", does: "erase subjects" },
  archive: { migration: "0014_stream_lifecycle", name: "archive_stream", args: "text", does: "archive streams" },
  truncate: {
    migration: "0014_stream_lifecycle",
    name: "truncate_stream",
    args: "text, bigint",
    does: "truncate streams"
  },
  purge: { migration: "0014_stream_lifecycle", name: "purge_truncated", args: "", does: "purge truncated events" }
} as const satisfies Record<string, Privileged>

/** What `stats` counts of archived and truncated streams (migration 0014). */
export interface StreamStates {
  readonly archived: number
  readonly truncated: number
  /** Events before their stream's truncation point, still stored: `purge` removes them. */
  readonly hidden: number
  /** Events `purge` removed already: the streams' versions still count them. */
  readonly purged: number
}

/** What `stats` counts of data subjects (migration 0013); undefined where the role may not look. */
export interface Subjects {
  readonly erased: number | undefined
  readonly keys: number | undefined
}

export const streamStates = (db: Database, schema: string): Effect.Effect<StreamStates, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const [row] = rowsOf(
        await db.execute(
          sql.raw(`select count(*) filter (where t.archived_at is not null) as archived,
       count(*) filter (where t.truncated_before > 1) as truncated,
       coalesce(sum(t.truncated_before - 1), 0) as before_points,
       (select count(*) from ${quoted(schema)}.events e join ${quoted(schema)}.stream_states s
          on s.stream_id = e.stream_id and e.stream_version < s.truncated_before) as hidden
from ${quoted(schema)}.stream_states t`)
        )
      )
      const hidden = Number(row?.hidden ?? 0)
      return {
        archived: Number(row?.archived ?? 0),
        truncated: Number(row?.truncated ?? 0),
        hidden,
        // Versions run from 1 with no gap, so each truncation point once hid all the versions before it.
        purged: Number(row?.before_points ?? 0) - hidden
      }
    },
    catch: (error) => storeError("stats", error)
  })

export const subjects = (db: Database, schema: string): Effect.Effect<Subjects, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      // 0013 grants them to the roles that append: a reader granted the schema's tables before it sees neither.
      const [visible] = rowsOf(
        await db.execute(
          sql`select has_table_privilege(${`${quoted(schema)}.erasures`}, 'select') as erasures,
                     has_table_privilege(${`${quoted(schema)}.subject_keys`}, 'select') as keys`
        )
      )
      const count = async (table: string) =>
        Number(rowsOf(await db.execute(sql.raw(`select count(*) as n from ${quoted(schema)}.${table}`)))[0]?.n)
      return {
        erased: visible?.erasures === true ? await count("erasures") : undefined,
        keys: visible?.keys === true ? await count("subject_keys") : undefined
      }
    },
    catch: (error) => storeError("stats", error)
  })

/** How many subjects were erased and how many have a key, as far as the role may see. */
const subjectsValue = (schema: string, { erased, keys }: Subjects) => {
  const refused = (tables: string) => `not visible to this role (it needs SELECT on ${tables})`
  if (erased === undefined && keys === undefined) {
    return refused(`${schema}.erasures and ${schema}.subject_keys`)
  }
  if (erased === undefined) return `${keys} with a key; erasures ${refused(`${schema}.erasures`)}`
  if (keys === undefined) return `${erased} erased; keys ${refused(`${schema}.subject_keys`)}`
  return `${erased} erased, ${keys} with a key`
}

/** `stats`' lines of what it counted, labels as wide as its others; none for what the schema predates. */
export const statsLines = (
  schema: string,
  states: StreamStates | undefined,
  counted: Subjects | undefined
): ReadonlyArray<string> => {
  const row = (label: string, value: string) => `${label.padEnd(13)}${value}`
  return [
    ...(states === undefined
      ? []
      : [
          row("archived", plural(states.archived, "stream")),
          row(
            "truncated",
            states.truncated === 0
              ? plural(0, "stream")
              : `${plural(states.truncated, "stream")}, ${plural(states.hidden, "event")} hidden${states.hidden === 0 ? "" : " until `eventcore purge` removes them"}`
          )
        ]),
    ...(counted === undefined ? [] : [row("subjects", subjectsValue(schema, counted))])
  ]
}
