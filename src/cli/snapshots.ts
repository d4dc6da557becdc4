/**
 * What `eventcore snapshots` prints: the snapshots of command state a store
 * keeps, by command, state version and event versions (`listSnapshots`), as
 * an aligned table for people or one JSON array; and what `snapshots clear`
 * says it removed.
 */
import type { SnapshotSummary } from "../sql/admin.js"

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
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] as string).length)))
  const numbers = [1, 2]
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1
          ? cell
          : numbers.includes(i)
            ? cell.padStart(widths[i] as number)
            : cell.padEnd(widths[i] as number)
      )
      .join("  ")
  )
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
