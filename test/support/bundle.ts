/**
 * A script the tests run as a process of its own, bundled with its sources
 * into one ES module (the npm packages stay external) and run by plain Node:
 * under tsx every process paid 1.3-3.7 s of CPU more to start, which the
 * tests that start many (the CLI's, the data-directory lock's, the
 * projections' across processes) paid over and over on two cores.
 *
 * Built once per test file, inside the project so that Node finds the
 * packages, at the depth where the CLI finds `drizzle/` and package.json as
 * it does in the build.
 */
import { renameSync } from "node:fs"
import { join } from "node:path"
import { build } from "esbuild"

const root = join(import.meta.dirname, "..", "..")

/** Bundles `entry` (relative to the project's root) and returns the path of the module to run. */
export const bundle = async (entry: string, name: string): Promise<string> => {
  const output = join(root, "node_modules", ".cache", "eventcore-test", `${name}.mjs`)
  const building = `${output.slice(0, -".mjs".length)}-${process.pid}.mjs`
  await build({
    entryPoints: [join(root, entry)],
    outfile: building,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "error"
  })
  // Test files running at once each build the same sources: the rename replaces it whole.
  renameSync(building, output)
  return output
}
