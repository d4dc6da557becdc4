/**
 * A store's snapshots as commands use them (`Snapshots`, storeContract.ts):
 * saves run in fibers of their own, so that a command never waits for one,
 * and tests and applications shutting down can wait for them.
 */
import { createHash } from "node:crypto"
import { Effect, Fiber } from "effect"
import type { StreamId } from "../StreamId.js"
import type { SnapshotStore, Snapshots } from "./storeContract.js"

export const makeSnapshots = (store: SnapshotStore): Snapshots => {
  const running = new Set<Fiber.RuntimeFiber<void>>()
  const logged = new Set<string>()
  return {
    ...store,
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
