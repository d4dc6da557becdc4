/**
 * A PGlite cluster as PGlite leaves a directory it has just created (initdb
 * done, nothing of eventcore's in it yet), for tests whose subject is not how
 * a data directory comes to be: PGlite's initdb costs each new database 4-8 s
 * of CPU on two cores, where a copy of its result takes 0.3 s and loading its
 * dump 1 s. Whatever opens the copy (eventcore's migrations included) does so
 * as it would have on a directory it had created.
 *
 * Made once per PGlite version, in node_modules/.cache next to the bundles
 * (./bundle.ts), and shared by the test files and the runs that follow, as the
 * testing kit makes its own (src/testing/initialisedPglite.ts).
 */
import { cpSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { cacheOf, makeCache } from "../../src/testing/initialisedPglite.js"

const cache = cacheOf(join(import.meta.dirname, "..", "..", "node_modules", ".cache", "eventcore-test"))
/** The directory itself: never opened, only copied (opening writes to it). */
const dataDir = join(cache, "data")
/** The same cluster as `dumpDataDir` writes it, for `PGlite.create({ loadDataDir })`. */
const dumpFile = join(cache, "data.tar")

let made: Promise<void> | undefined
const ready = () => {
  made ??= makeCache(cache)
  return made
}

/** Makes `target` (and its missing parents) a copy of the initialised cluster; returns `target`. */
export const initialisedDataDir = async (target: string): Promise<string> => {
  await ready()
  cpSync(dataDir, target, { recursive: true })
  return target
}

/** The initialised cluster's dump: `PGlite.create({ loadDataDir: await initialisedDump() })` is a new database. */
export const initialisedDump = async (): Promise<Blob> => {
  await ready()
  return new Blob([readFileSync(dumpFile)])
}
