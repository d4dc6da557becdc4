/**
 * Opens a system under test by name, in the bench's process or in a child of
 * its own (workloads/system-child.ts), on databases the bench created.
 */
import type { SystemName } from "../lib/options.js"
import { emmettSystem } from "./emmett.js"
import { memorySystem, pgliteSystem, postgresSystem } from "./eventcore.js"
import { rawSystem } from "./raw.js"
import type { System } from "./system.js"

export interface Databases {
  /** The bench's database, for the PostgreSQL store and raw. */
  readonly url: string
  /** Emmett's database of its own (it creates its own tables), when Emmett runs. */
  readonly emmettUrl: string | undefined
  /** Connections of each pool the bench sizes. */
  readonly poolSize: number
}

export const openSystem = (name: SystemName, { url, emmettUrl, poolSize }: Databases): Promise<System> => {
  switch (name) {
    case "postgres":
      return postgresSystem(url, poolSize)
    case "raw":
      return rawSystem(url, poolSize)
    case "pglite":
      return pgliteSystem()
    case "memory":
      return memorySystem()
    case "emmett":
      if (emmettUrl === undefined) throw new Error("emmett needs a database of its own")
      return emmettSystem(emmettUrl)
  }
}
