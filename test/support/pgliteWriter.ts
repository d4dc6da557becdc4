/**
 * A process that owns a PGlite data directory, for test/pgliteLock.test.ts:
 * bundled (./bundle.ts), `node <bundle> <dataDir> <events> <mode> [<opener>]`
 * opens the store, appends events one by one to the stream "writer" (printing
 * `acked <n>` after each acknowledged append), and then, by mode:
 * - `exit`: appends `events`, then exits;
 * - `hold`: appends `events`, prints `ready`, and holds the directory until
 *   killed or until its stdin closes;
 * - `keep`: appends one event every 20 ms, as an application at work would,
 *   until its stdin closes (at most `events`), then exits.
 *
 * The opener is the store's `layer` (default), or `client`: an application's
 * own `PGlite.create({ dataDir })` given to `layerFromClient`, closed when the
 * program ends. A store that cannot open prints its error on stderr and exits
 * with code 3.
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect, Either, Layer } from "effect"
import { EventStore, PgliteEventStore, StreamId, StreamWrites } from "../../src/index.js"

const [dataDir, count, mode, opener = "layer"] = process.argv.slice(2) as [
  string,
  string,
  "hold" | "exit" | "keep",
  ("layer" | "client")?
]
const stream = StreamId.unsafeMake("writer")

let stdinClosed = false
const stdinClose =
  mode === "exit"
    ? undefined
    : new Promise<void>((resolve) => {
        process.stdin.on("close", () => {
          stdinClosed = true
          resolve()
        })
        process.stdin.resume()
      })

const store =
  opener === "client"
    ? Layer.unwrapScoped(
        Effect.map(
          Effect.acquireRelease(
            Effect.promise(() => PGlite.create({ dataDir })),
            (client) => Effect.promise(() => client.close())
          ),
          (client) => PgliteEventStore.layerFromClient(client)
        )
      )
    : PgliteEventStore.layer({ dataDir })

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  process.stdout.write(`open ${process.pid}\n`)
  for (let n = 1; n <= Number(count) && !(mode === "keep" && stdinClosed); n++) {
    const writes = Either.getOrThrow(
      Either.flatMap(
        StreamWrites.expect(StreamWrites.empty, stream, "any"),
        StreamWrites.append({ streamId: stream, eventType: "Written", data: { pid: process.pid, n } })
      )
    )
    yield* store.append(writes)
    process.stdout.write(`acked ${n}\n`)
    if (mode === "keep") yield* Effect.sleep("20 millis")
  }
  if (mode === "hold") {
    process.stdout.write("ready\n")
    yield* Effect.promise(() => stdinClose ?? Promise.resolve())
  }
}).pipe(Effect.provide(store))

Effect.runPromiseExit(program).then((exit) => {
  if (exit._tag === "Failure") {
    const error = exit.cause._tag === "Fail" ? exit.cause.error : exit.cause
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(3)
  }
})
