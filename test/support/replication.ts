/**
 * A PostgreSQL 15 primary and a hot standby streaming from it, which the test
 * starts and owns (from the machine's binaries, through .ci/replication.sh), so
 * it can crash the primary and promote the standby without touching the
 * machine's shared server.
 */
import { execFileSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import postgres from "postgres"
import { afterAll, beforeAll } from "vitest"

const script = join(import.meta.dirname, "..", "..", ".ci", "replication.sh")

const run = (...args: Array<string>) =>
  execFileSync(script, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

export const useReplication = () => {
  let parent: string | undefined
  let dir = ""
  let primary = ""
  let standby = ""

  const ready = (url: string) => {
    if (url === "") throw new Error("the primary and standby are not started (useReplication's beforeAll)")
    return url
  }

  // The directory is made here, not when the suite is collected: a skipped suite leaves nothing behind.
  beforeAll(() => {
    parent = mkdtempSync(join(tmpdir(), "eventcore-repl-"))
    // The servers run as an unprivileged user, who must be able to reach their directory.
    chmodSync(parent, 0o755)
    dir = join(parent, "pg")
    const urls = new Map(
      run("start", dir)
        .trim()
        .split("\n")
        .map((line) => line.split(" ") as [string, string])
    )
    primary = urls.get("primary") ?? ""
    standby = urls.get("standby") ?? ""
    ready(primary)
    ready(standby)
  }, 120_000)
  afterAll(() => {
    if (parent === undefined) return
    run("stop", dir)
    rmSync(parent, { recursive: true, force: true })
  })

  return {
    primaryUrl: () => ready(primary),
    standbyUrl: () => ready(standby),
    /** Stops the primary at once, as a crash would: no checkpoint, its clients cut off. */
    crashPrimary: () => {
      run("crash-primary", dir)
    },
    /** Promotes the standby; returns once it is out of recovery and takes writes. */
    promote: () => {
      run("promote", dir)
    },
    /** Waits until the standby has replayed all the WAL the primary has written (the primary must run). */
    waitReplay: () => {
      run("wait-replay", dir)
    }
  }
}

/** A connection of its own to `url`, closed with the scope. */
export const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
    (client) => Effect.promise(() => client.end({ timeout: 1 }))
  )

/** `url` with its database replaced by `database`: the same database on the primary or the standby. */
export const inDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
