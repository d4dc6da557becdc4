/**
 * A process that owns a PGlite data directory, for test/pgliteLock.test.ts:
 * bundled (./bundle.ts), `node <bundle> <dataDir> <events> <hold|exit>` opens the store, appends
 * the events one by one to the stream "writer" (printing `acked <n>` after each
 * acknowledged append), then either exits or holds the directory until killed
 * or until its stdin closes. A store that cannot open prints its error on
 * stderr and exits with code 3.
 */
import { Effect, Either } from "effect"
import { EventStore, PgliteEventStore, StreamId, StreamWrites } from "../../src/index.js"

const [dataDir, count, mode] = process.argv.slice(2) as [string, string, "hold" | "exit"]
const stream = StreamId.unsafeMake("writer")

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  process.stdout.write(`open ${process.pid}\n`)
  for (let n = 1; n <= Number(count); n++) {
    const writes = Either.getOrThrow(
      Either.flatMap(
        StreamWrites.expect(StreamWrites.empty, stream, "any"),
        StreamWrites.append({ streamId: stream, eventType: "Written", data: { pid: process.pid, n } })
      )
    )
    yield* store.append(writes)
    process.stdout.write(`acked ${n}\n`)
  }
  if (mode === "hold") {
    process.stdout.write("ready\n")
    yield* Effect.async<void>((resume) => {
      process.stdin.on("close", () => resume(Effect.void))
      process.stdin.resume()
    })
  }
}).pipe(Effect.provide(PgliteEventStore.layer({ dataDir })))

Effect.runPromiseExit(program).then((exit) => {
  if (exit._tag === "Failure") {
    const error = exit.cause._tag === "Fail" ? exit.cause.error : exit.cause
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(3)
  }
})
