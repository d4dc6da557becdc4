/**
 * What `eventcore snapshots` prints: the snapshots of command state a store
 * keeps, by command, state version and event versions (`listSnapshots`), as
 * an aligned table for people or one JSON array; and what `snapshots clear`
 * says it removed.
 */
import type { SnapshotSummary } from "../sql/admin.js"
import { table } from "./table.js"

/** The snapshots under a header, columns aligned, numbers right-aligned; the event versions (free text) last. */
export const formatSnapshots = (summaries: ReadonlyArray<SnapshotSummary>): ReadonlyArray<string> => {
  if (summaries.length === 0) return ["no snapshots"]
  const header = ["COMMAND", "STATE VERSION", "SNAPSHOTS", "UPDATED", "EVENT VERSIONS"]
  const rows = summaries.map((summary) => [
    summary.command,
    String(summary.stateVersion),
    String(summary.count),
    summary.updatedAt.toISOString(),
    summary.eventVersions
  ])
  return table(header, rows, ["STATE VERSION", "SNAPSHOTS"])
}

/** The snapshots as one JSON array. */
export const snapshotsJson = (summaries: ReadonlyArray<SnapshotSummary>) =>
  JSON.stringify(
    summaries.map((summary) => ({
      command: summary.command,
      stateVersion: summary.stateVersion,
      eventVersions: summary.eventVersions,
      count: summary.count,
      updatedAt: summary.updatedAt.toISOString()
    }))
  )

/** What `snapshots clear` removed, of `command` or of every command. */
export const clearedLine = (removed: number, command: string | undefined) =>
  `removed ${removed} snapshot${removed === 1 ? "" : "s"}${command === undefined ? "" : ` of ${JSON.stringify(command)}`}`
