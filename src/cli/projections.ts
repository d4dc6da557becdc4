/**
 * What `eventcore projections` prints: every projection and reactor the store
 * has a checkpoint for (`Projection.status`), as an aligned table for people
 * or one JSON array.
 */
import type { ProjectionStatus } from "../Projection.js"
import { oneLine, table } from "./table.js"

/** The migration that created the checkpoint table: a schema without it has no projections yet. */
export const projectionsMigration = "0006_projections"

/** The projections as a table under a header, columns aligned; the error, unpadded, last. */
export const formatProjections = (statuses: ReadonlyArray<ProjectionStatus>): ReadonlyArray<string> => {
  if (statuses.length === 0) return ["no projections"]
  const header = ["NAME", "KIND", "STATUS", "POSITION", "LAG", "OWNER", "UPDATED", "ERROR"]
  const rows = statuses.map((status) => [
    status.name,
    status.kind,
    status.status,
    status.position,
    status.lag === undefined ? "-" : String(status.lag),
    status.owner ?? "-",
    status.updatedAt.toISOString(),
    status.error === undefined ? "-" : oneLine(status.error)
  ])
  return table(header, rows, ["LAG"])
}

/** The projections as one JSON array: every field present, `null` when there is none. */
export const projectionsJson = (statuses: ReadonlyArray<ProjectionStatus>) =>
  JSON.stringify(
    statuses.map((status) => ({
      name: status.name,
      kind: status.kind,
      status: status.status,
      position: status.position,
      lag: status.lag ?? null,
      owner: status.owner ?? null,
      updatedAt: status.updatedAt.toISOString(),
      error: status.error ?? null
    }))
  )
