/**
 * A PGlite cluster as PGlite leaves a directory it has just created (initdb
 * done, nothing in it yet), for test stores: PGlite's initdb costs each new
 * database 4-8 s of CPU on two cores, where loading a dump of its result
 * costs 1 s. Whatever opens the copy (migrations included) does so as it
 * would have on a directory it had created.
 *
 * Made once per PGlite version in `node_modules/.cache/eventcore` under the
 * working directory (where tools keep their caches), and shared by the test
 * files and the runs that follow; made in memory, each time, where that
 * directory cannot be written.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"

/** PGlite's version, read from its package.json (which its exports do not make importable). */
const pgliteVersion = (): string => {
  try {
    const entry = createRequire(import.meta.url).resolve("@electric-sql/pglite")
    const marker = join("node_modules", "@electric-sql", "pglite")
    const root = entry.slice(0, entry.lastIndexOf(marker) + marker.length)
    return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { readonly version: string }).version
  } catch {
    return "unknown"
  }
}

/** The cache's directory: `root` is eventcore's own tests' choice; applications get the working directory's. */
export const cacheOf = (root: string = join(process.cwd(), "node_modules", ".cache", "eventcore")) =>
  join(root, `pglite-${pgliteVersion()}-initialised`)

/** A new cluster's dump, made here. */
const freshDump = async (dataDir?: string): Promise<Blob> => {
  const db = await PGlite.create(dataDir === undefined ? {} : { dataDir })
  try {
    return await db.dumpDataDir("none")
  } finally {
    await db.close()
  }
}

/**
 * Makes the cache in `cache` if it is not there: the directory PGlite
 * created (`data`, for copies) and its dump (`data.tar`). Test files
 * starting at once may each make it: the first rename wins, whole.
 */
export const makeCache = async (cache: string): Promise<void> => {
  if (existsSync(cache)) return
  const building = `${cache}-${process.pid}`
  rmSync(building, { recursive: true, force: true })
  mkdirSync(building, { recursive: true })
  const dump = await freshDump(join(building, "data"))
  writeFileSync(join(building, "data.tar"), new Uint8Array(await dump.arrayBuffer()))
  try {
    renameSync(building, cache)
  } catch (error) {
    if (!existsSync(cache)) throw error
    rmSync(building, { recursive: true, force: true })
  }
}

let made: Promise<Blob> | undefined

/** The initialised cluster's dump: `PGlite.create({ loadDataDir: await initialisedDump() })` is a new database. */
export const initialisedDump = (): Promise<Blob> => {
  made ??= (async () => {
    const cache = cacheOf()
    try {
      await makeCache(cache)
      return new Blob([readFileSync(join(cache, "data.tar"))])
    } catch {
      return freshDump()
    }
  })()
  return made
}
