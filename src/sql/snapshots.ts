/**
 * Snapshots of commands' state on the SQL stores, in `<schema>.snapshots`
 * (see `snapshotStatements` in statements.ts for the SQL and why it is one
 * statement per operation).
 */
import { Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import type { StoreError } from "../errors.js"
import type { SnapshotStore, StoredSnapshot, StreamTail } from "../internal/storeContract.js"
import type { StreamId } from "../StreamId.js"
import { eventAt } from "./rows.js"
import { snapshotStatements } from "./statements.js"

/** A statement run on the primary, its failures as `StoreError`s naming `operation`. */
export type Query = (
  operation: string,
  statement: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, StoreError>

/** A snapshot as `load` selects it: `to_jsonb` of its row. */
interface SnapshotRow {
  readonly state_version: number
  readonly event_versions: string
  readonly streams: StoredSnapshot["streams"]
  readonly state: unknown
}

/** The columns of a row of `load` before the event's (`logColumns`): place, stream id, version, after, snapshot. */
const eventFrom = 5

export const make = (schema: string, query: Query): SnapshotStore => {
  const statements = snapshotStatements(schema)
  return {
    load: (request) =>
      Effect.map(
        query("load_snapshot", statements.load, [
          request.command,
          request.key,
          request.stateVersion,
          request.eventVersions,
          JSON.stringify(request.streams)
        ]),
        (rows) => {
          // Only on the first row: the statement puts it there once.
          const stored = rows[0]?.[4] as SnapshotRow | null | undefined
          const found =
            stored === null || stored === undefined
              ? undefined
              : {
                  command: request.command,
                  key: request.key,
                  stateVersion: stored.state_version,
                  eventVersions: stored.event_versions,
                  streams: stored.streams,
                  state: stored.state
                }
          // Rows come stream by stream; a stream without events to read is one row whose event is null.
          const tails: Array<StreamTail & { events: Array<RecordedEvent> }> = []
          for (const row of rows) {
            let tail = tails.at(-1)
            if (tail === undefined || tail.streamId !== row[1]) {
              tail = { streamId: row[1] as StreamId, version: row[2] as number, after: row[3] as number, events: [] }
              tails.push(tail)
            }
            if (row[eventFrom + 2] !== null) tail.events.push(eventAt(row, eventFrom))
          }
          const usable =
            found !== undefined &&
            found.stateVersion === request.stateVersion &&
            found.eventVersions === request.eventVersions
          return found === undefined ? { usable, tails } : { found, usable, tails }
        }
      ),
    save: (snapshot) =>
      Effect.map(
        query("save_snapshot", statements.save, [
          snapshot.command,
          snapshot.key,
          snapshot.stateVersion,
          snapshot.eventVersions,
          JSON.stringify(snapshot.streams),
          snapshot.streams.reduce((sum, [, version]) => sum + version, 0),
          JSON.stringify(snapshot.state)
        ]),
        (rows) => rows.length > 0
      ),
    clear: (command) =>
      Effect.map(query("clear_snapshots", statements.clear, [command ?? null]), (rows) => Number(rows[0]?.[0] ?? 0))
  }
}
