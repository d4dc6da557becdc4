/**
 * A process that holds a data directory's lock and opens nothing, for
 * test/pgliteLock.test.ts: bundled (./bundle.ts), `node <bundle> <dataDir>`
 * takes the lock, prints `held`, and keeps it until its stdin closes.
 */
import { Effect } from "effect"
import { lockDataDir } from "../../src/pglite/dataDirLock.js"

const [dataDir] = process.argv.slice(2) as [string]

Effect.runPromiseExit(
  Effect.scoped(
    Effect.gen(function* () {
      yield* lockDataDir(dataDir)
      process.stdout.write("held\n")
      yield* Effect.async<void>((resume) => {
        process.stdin.on("close", () => resume(Effect.void))
        process.stdin.resume()
      })
    })
  )
).then((exit) => {
  if (exit._tag === "Failure") {
    process.stderr.write(`${exit.cause}\n`)
    process.exit(3)
  }
})
