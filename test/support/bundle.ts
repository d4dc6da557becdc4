/**
 * A script the tests run as a process of its own, bundled with its sources
 * and the npm packages it imports into one ES module and run by plain Node:
 * under tsx every process paid 1.3-3.7 s of CPU more to start, which the
 * tests that start many (the CLI's, the data-directory lock's, the
 * projections' across processes) paid over and over on two cores. Loading
 * effect, drizzle-orm and postgres.js from their hundreds of files cost each
 * process another 0.6-0.8 s of CPU. PGlite stays external: it finds its WASM
 * and data files next to its own modules.
 *
 * Kept inside the project so that Node finds PGlite, at the depth where the
 * CLI finds `drizzle/` and package.json as it does in the build. A bundle
 * (1 s of CPU to build) is named after the content of every file it was made
 * of, so the test files of a run, and the runs that follow, build it again
 * only once one of those has changed.
 */
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { build } from "esbuild"

const root = join(import.meta.dirname, "..", "..")
const cache = join(root, "node_modules", ".cache", "eventcore-test")

/**
 * Node's options for a bundled script that opens PGlite: V8 compiles PGlite's
 * WebAssembly with its baseline compiler only. A test's process lives for
 * seconds, too short for the optimising compiler's background work on PGlite's
 * hot functions to pay back: it cost each process 0.7-1.5 s of CPU (a third of
 * a read command's) and made none faster, the demo and a 400-event writer
 * included.
 */
export const nodeOptions: ReadonlyArray<string> = ["--liftoff-only"]

/** The bundle of `name` made of these files (relative to the root) as they are now; undefined if one is gone. */
const builtFrom = (name: string, inputs: ReadonlyArray<string>) => {
  const hash = createHash("sha256")
  for (const input of inputs) {
    const path = join(root, input)
    if (!existsSync(path)) return undefined
    hash.update(`${input}\0`).update(readFileSync(path))
  }
  return join(cache, `${name}-${hash.digest("hex").slice(0, 16)}.mjs`)
}

/** Bundles `entry` (relative to the project's root), unless done already, and returns the path of the module to run. */
export const bundle = async (entry: string, name: string): Promise<string> => {
  const inputsFile = join(cache, `${name}.inputs.json`)
  if (existsSync(inputsFile)) {
    const built = builtFrom(name, JSON.parse(readFileSync(inputsFile, "utf8")) as ReadonlyArray<string>)
    if (built !== undefined && existsSync(built)) return built
  }
  const building = join(cache, `${name}-${process.pid}.mjs`)
  const { metafile } = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: building,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["@electric-sql/pglite"],
    metafile: true,
    logLevel: "error"
  })
  const inputs = Object.keys(metafile.inputs).sort()
  const output = builtFrom(name, inputs) as string
  // Test files starting at once may each build it: each rename replaces a file whole.
  renameSync(building, output)
  writeFileSync(`${inputsFile}.${process.pid}`, JSON.stringify(inputs))
  renameSync(`${inputsFile}.${process.pid}`, inputsFile)
  for (const file of readdirSync(cache)) {
    if (new RegExp(`^${name}-[0-9a-f]{16}\\.mjs$`).test(file) && join(cache, file) !== output) {
      rmSync(join(cache, file), { force: true })
    }
  }
  return output
}
