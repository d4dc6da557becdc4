/**
 * The lock a PGlite store holds on its data directory (dataDirLock.ts), shared
 * by the layers over one client.
 */
import type { PGlite } from "@electric-sql/pglite"
import { Effect, Exit, Scope } from "effect"
import type { StoreError } from "../errors.js"
import { lockDataDir } from "./dataDirLock.js"

/**
 * The lock on a data directory, shared by the layers over one client (stores
 * in several schemas of one database), and released by the last of them.
 */
interface Hold {
  users: number
  readonly lock: Scope.CloseableScope
}

/** Clients whose data directory this process holds. */
const holds = new WeakMap<PGlite, Hold>()

/** Records that `client` opened the directory `hold` locks: layers over that client share the hold. */
export const shareHold = (client: PGlite, hold: Hold): void => {
  holds.set(client, hold)
}

/** Holds are taken and given back one at a time: a hold being released is never shared. */
const holding = Effect.unsafeMakeSemaphore(1)

const release = (hold: Hold) =>
  holding.withPermits(1)(Effect.suspend(() => (--hold.users === 0 ? Scope.close(hold.lock, Exit.void) : Effect.void)))

/** Takes the lock on `dataDir` until the scope ends, as a hold the layers over its client can share. */
export const acquireHold = (dataDir: string): Effect.Effect<Hold, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const lock = yield* Scope.make()
      yield* Effect.onExit(Scope.extend(lockDataDir(dataDir), lock), (exit) =>
        Exit.isFailure(exit) ? Scope.close(lock, exit) : Effect.void
      )
      return { users: 1, lock }
    }),
    release
  )

/** The prefixes of `dataDir` that PGlite keeps in memory or in a browser's storage, never in a directory here. */
const notADirectory = ["memory://", "idb://", "opfs-ahp://", "memfs2opfs://"]

/**
 * The directory PGlite keeps a database given this `dataDir` in, read as
 * PGlite reads it: a path, or a `file://` path; none for `memory://` (or a
 * browser's storage) or no `dataDir` at all.
 */
export const directoryIn = (dataDir: string | undefined): string | undefined => {
  if (dataDir === undefined || dataDir === "") return undefined
  if (dataDir.startsWith("file://")) return dataDir.slice("file://".length)
  return notADirectory.some((prefix) => dataDir.startsWith(prefix)) ? undefined : dataDir
}

/**
 * The directory a client keeps its database in: its `dataDir`'s, or, for a
 * client given PGlite's `NodeFS` instead of a `dataDir`, the file system's
 * (it keeps it as `rootDir`).
 */
const directoryOf = (client: PGlite): string | undefined => {
  if (client.dataDir !== undefined && client.dataDir !== "") return directoryIn(client.dataDir)
  const rootDir = (client.fs as { readonly rootDir?: unknown } | undefined)?.rootDir
  return typeof rootDir === "string" ? rootDir : undefined
}

/**
 * Holds the lock on the client's data directory until the scope ends; shares
 * the hold of another layer over the same client.
 */
export const holdDirectoryOf = (client: PGlite): Effect.Effect<void, StoreError, Scope.Scope> =>
  holding.withPermits(1)(
    Effect.suspend(() => {
      const held = holds.get(client)
      if (held !== undefined && held.users > 0) {
        return Effect.acquireRelease(
          Effect.sync(() => {
            held.users++
          }),
          () => release(held)
        )
      }
      const dataDir = directoryOf(client)
      if (dataDir === undefined) return Effect.void
      return Effect.map(acquireHold(dataDir), (hold) => shareHold(client, hold))
    })
  )
