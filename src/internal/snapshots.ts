/**
 * A store's snapshots as commands use them (`Snapshots`, storeContract.ts):
 * saves run in fibers of their own, so that a command never waits for one,
 * and tests and applications shutting down can wait for them.
 */
import { createHash } from "node:crypto"
import { Effect, Fiber } from "effect"
import type { StreamId } from "../StreamId.js"
import type { SnapshotStore, Snapshots } from "./storeContract.js"
import { withSpan } from "./tracing.js"

/** `store`'s snapshots, its reads in spans with the store's `attributes`, as `readStream`'s are. */
export const makeSnapshots = (store: SnapshotStore, attributes: Record<string, unknown>): Snapshots => {
  const running = new Set<Fiber.RuntimeFiber<void>>()
  const logged = new Set<string>()
  return {
    ...store,
    load: (request) =>
      store.load(request).pipe(
        withSpan(
          "eventcore.load_snapshot",
          () => ({
            kind: "client",
            attributes: {
              ...attributes,
              "eventcore.command": request.command,
              "eventcore.stream_count": request.streams.length
            }
          }),
          (load) => ({
            "eventcore.snapshot_usable": load.usable,
            "eventcore.event_count": load.tails.reduce((sum, tail) => sum + tail.events.length, 0)
          })
        )
      ),
    // A daemon: the save outlives the command that started it, whatever ends
    // the command's scope, and never keeps its caller waiting.
    inBackground: (work) =>
      Effect.flatMap(Effect.forkDaemon(work), (fiber) =>
        Effect.sync(() => {
          running.add(fiber)
          fiber.addObserver(() => running.delete(fiber))
        })
      ),
    awaitWrites: Effect.suspend(() => Fiber.awaitAll([...running])).pipe(Effect.asVoid),
    once: (key, log) =>
      Effect.suspend(() => {
        if (logged.has(key)) return Effect.void
        logged.add(key)
        return log
      })
  }
}

/**
 * The key of a command's snapshot: the streams it declared, in order, hashed.
 * Ids are up to 255 characters and a command may declare many; the hash keeps
 * the primary key's entries small, and the snapshot's own list of streams
 * tells a collision apart.
 */
export const snapshotKey = (streams: ReadonlyArray<StreamId>): string =>
  createHash("sha256").update(JSON.stringify(streams)).digest("hex")
