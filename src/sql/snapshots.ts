/**
 * Snapshots of commands' state on the SQL stores, in `<schema>.snapshots`
 * (see `snapshotStatements` in statements.ts for the SQL and why it is one
 * statement per operation).
 */
import { Effect } from "effect"
import type { RecordedEvent } from "../Event.js"
import type { SnapshotStore, StoredSnapshot, StreamTail } from "../internal/storeContract.js"
import type { StreamId } from "../StreamId.js"
import type { Query } from "./driver.js"
import { eventAt, inVersionOrder } from "./rows.js"
import { snapshotStatements } from "./statements.js"

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
  // One text per number of declared streams: each command has one, so a few texts in all.
  const loads = new Map<number, string>()
  const loadOf = (streams: number) => {
    let statement = loads.get(streams)
    if (statement === undefined) {
      statement = statements.load(streams)
      loads.set(streams, statement)
    }
    return statement
  }
  return {
    load: (request) =>
      Effect.map(
        query("load_snapshot", loadOf(request.streams.length), [
          request.command,
          request.key,
          request.stateVersion,
          request.eventVersions,
          ...request.streams
        ]),
        (rows) => {
          // On one row only: the statement puts it there once.
          const stored = rows.find((row) => row[4] !== null)?.[4] as SnapshotRow | undefined
          const found =
            stored === undefined
              ? undefined
              : {
                  command: request.command,
                  key: request.key,
                  stateVersion: stored.state_version,
                  eventVersions: stored.event_versions,
                  streams: stored.streams,
                  state: stored.state
                }
          // One row per event, or one of nulls for a stream without events to read; in no order.
          const byPlace = new Map<number, StreamTail & { events: Array<RecordedEvent> }>()
          for (const row of rows) {
            const place = Number(row[0])
            let tail = byPlace.get(place)
            if (tail === undefined) {
              tail = { streamId: row[1] as StreamId, version: row[2] as number, after: row[3] as number, events: [] }
              byPlace.set(place, tail)
            }
            if (row[eventFrom + 2] !== null) tail.events.push(eventAt(row, eventFrom))
          }
          const tails = [...byPlace].sort(([a], [b]) => a - b).map(([, tail]) => tail)
          for (const tail of tails) inVersionOrder(tail.events)
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
