/**
 * One process owns a PGlite data directory. PGlite itself takes no lock: two
 * processes that open one directory both run, each with its own buffers, and
 * lose or duplicate acknowledged events between them.
 *
 * On Linux the lock is a Unix socket in the abstract namespace, and on Windows
 * a named pipe, both named after the directory's real path: the kernel lets
 * one process listen on a name, and frees it when that process ends, however
 * it ends (`kill -9` included). So there is nothing stale to clean up, no pid
 * that could be reused, and no heartbeat that could lapse during a long call:
 * a live holder cannot lose the lock, and a dead one cannot keep it. The holder
 * answers a connection with its pid and since when it has held the lock, which
 * is how a second opener can name it. The lock never touches the directory, and
 * is named alike before and after the directory exists, so an opener takes it
 * first and then creates the directory (`createDataDir`).
 *
 * Elsewhere (macOS, the BSDs) there is no such name, so the lock is a file in
 * the temporary directory, named after the directory's real path like the
 * socket (so a copy of the data directory is not locked with it), created
 * exclusively with the holder's pid, host and start. A file whose process is gone on this host is taken over; one
 * whose process is alive is never taken, even if that pid was reused by another
 * program since (then the message says which file to remove). Two processes
 * taking over the same stale file at the same instant could both succeed: only
 * the kernel's names close that window.
 */
import { createHash } from "node:crypto"
import { mkdirSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from "node:fs"
import net from "node:net"
import { hostname, tmpdir } from "node:os"
import { basename, dirname, join, resolve } from "node:path"
import { Effect, type Scope } from "effect"
import { StoreError } from "../errors.js"

interface Holder {
  readonly pid: number
  readonly since: string
  readonly host?: string
}

export type Mechanism = "socket" | "file"

/** The mechanism this platform supports (see above). */
export const platformMechanism: Mechanism =
  process.platform === "linux" || process.platform === "win32" ? "socket" : "file"

/** The directory's real path, also before it exists (its parent's real path and its name). */
const realPathOf = (dataDir: string): string => {
  const absolute = resolve(dataDir)
  try {
    return realpathSync(absolute)
  } catch {
    const parent = dirname(absolute)
    return parent === absolute ? absolute : join(realPathOf(parent), basename(absolute))
  }
}

/** The name of a directory's lock: the same for every path that leads to it. */
const lockNameOf = (path: string) => `eventcore-pglite-${createHash("sha256").update(path).digest("hex").slice(0, 40)}`

const socketNameOf = (path: string) =>
  process.platform === "win32" ? `\\\\?\\pipe\\${lockNameOf(path)}` : `\0${lockNameOf(path)}`

/** The lock file of the `file` mechanism for `dataDir`. */
export const lockFileOf = (dataDir: string) => join(tmpdir(), `${lockNameOf(realPathOf(dataDir))}.lock`)

const inUse = (dataDir: string, holder: Holder | undefined, detail = "") =>
  new StoreError({
    operation: "open",
    message:
      holder === undefined
        ? `The PGlite data directory ${dataDir} is in use by another process${detail}. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory.`
        : `The PGlite data directory ${dataDir} is in use by process ${holder.pid}${holder.pid === process.pid ? " (this process: another store still has it open)" : ""}${holder.host !== undefined && holder.host !== hostname() ? ` on ${holder.host}` : ""}, since ${holder.since}${detail}. One process owns an embedded data directory: stop that process first, or inspect a copy of the directory.`
  })

const lockError = (dataDir: string, cause: unknown) =>
  new StoreError({
    operation: "open",
    message: `Cannot lock the PGlite data directory ${dataDir}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/** Asks the holder of a lock socket who it is; undefined if nobody answers within two seconds. */
const askHolder = (name: string): Promise<Holder | undefined> =>
  new Promise((resolve) => {
    const socket = net.connect(name)
    let reply = ""
    const done = (holder: Holder | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(holder)
    }
    const timer = setTimeout(() => done(undefined), 2_000)
    socket.setEncoding("utf8")
    socket.on("data", (chunk) => {
      reply += chunk
    })
    socket.on("end", () => {
      try {
        done(JSON.parse(reply) as Holder)
      } catch {
        done(undefined)
      }
    })
    socket.on("error", () => done(undefined))
  })

const listen = (server: net.Server, name: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off("listening", onListening)
      reject(error)
    }
    const onListening = () => {
      server.off("error", onError)
      resolve()
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(name)
  })

const isCode = (error: unknown, code: string) => (error as { code?: unknown } | undefined)?.code === code

/** Whether a process with this pid exists here (EPERM: it does, under another user). */
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return !isCode(error, "ESRCH")
  }
}

/**
 * Who holds a name: the holder writes it to a file in the temporary directory
 * as soon as it has the name, so that a second opener can say so at once even
 * while the holder's thread is busy in a long PGlite call; failing that, the
 * holder answers on its socket.
 */
const holderOf = async (name: string, infoFile: string): Promise<Holder | undefined> => {
  try {
    const holder = JSON.parse(readFileSync(infoFile, "utf8")) as Holder
    if (isAlive(holder.pid)) return holder
  } catch {
    // not written yet, or left by a holder that was killed: ask
  }
  return askHolder(name)
}

const acquireSocket = (dataDir: string, path: string) => {
  const name = socketNameOf(path)
  const infoFile = join(tmpdir(), `${lockNameOf(path)}.json`)
  return Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const self: Holder = { pid: process.pid, since: new Date().toISOString() }
        // A holder that has just released its name may still be reached for a
        // moment: ask again, then try again, a few times.
        for (let attempt = 0; ; attempt++) {
          const server = net.createServer((socket) => {
            // An asker that gave up must not take the holder down with it.
            socket.on("error", () => {})
            socket.end(JSON.stringify(self))
          })
          try {
            await listen(server, name)
            server.unref()
            writeFileSync(infoFile, JSON.stringify(self))
            return { server, self }
          } catch (error) {
            server.close()
            if (!isCode(error, "EADDRINUSE")) throw lockError(dataDir, error)
            const holder = await holderOf(name, infoFile)
            if (holder !== undefined || attempt === 4) throw inUse(dataDir, holder)
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        }
      },
      catch: (error) => (error instanceof StoreError ? error : lockError(dataDir, error))
    }),
    ({ server, self }) =>
      Effect.async<void>((resume) => {
        try {
          const written = JSON.parse(readFileSync(infoFile, "utf8")) as Holder
          if (written.pid === self.pid && written.since === self.since) unlinkSync(infoFile)
        } catch {
          // already gone
        }
        server.close(() => resume(Effect.void))
      })
  )
}

const acquireFile = (dataDir: string) => {
  const file = lockFileOf(dataDir)
  const readHolder = (): Holder | undefined => {
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Holder
    } catch {
      return undefined
    }
  }
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const self = { pid: process.pid, since: new Date().toISOString(), host: hostname() }
        for (let attempt = 0; ; attempt++) {
          try {
            writeFileSync(file, JSON.stringify(self), { flag: "wx" })
            return self
          } catch (error) {
            if (!isCode(error, "EEXIST")) throw lockError(dataDir, error)
            const holder = readHolder()
            const gone = holder !== undefined && holder.host === hostname() && !isAlive(holder.pid)
            if (!gone || attempt === 4) {
              throw inUse(
                dataDir,
                holder,
                holder !== undefined && holder.host === hostname()
                  ? ` (if that process is not eventcore, the lock is stale: remove ${file})`
                  : ` (the lock file ${file} cannot be checked from this host)`
              )
            }
            unlinkSync(file)
          }
        }
      },
      catch: (error) => (error instanceof StoreError ? error : lockError(dataDir, error))
    }),
    (self) =>
      Effect.sync(() => {
        const holder = readHolder()
        if (holder?.pid === self.pid && holder.since === self.since) unlinkSync(file)
      })
  )
}

/**
 * Takes the lock on `dataDir` for the scope, before anything opens the
 * directory; fails at once with a `StoreError` naming the holder if another
 * process (or another store in this one) has it.
 */
export const lockDataDir = (
  dataDir: string,
  mechanism: Mechanism = platformMechanism
): Effect.Effect<void, StoreError, Scope.Scope> => {
  const path = realPathOf(dataDir)
  return mechanism === "socket" ? Effect.asVoid(acquireSocket(dataDir, path)) : Effect.asVoid(acquireFile(dataDir))
}

/**
 * Creates `dataDir` and its missing parents, once its lock is held. The lock's
 * name stays the same: a directory that does not exist yet is named by its
 * nearest existing ancestor's real path and the names below it, and the
 * directories created here are those very names, not links.
 */
export const createDataDir = (dataDir: string): Effect.Effect<void, StoreError> =>
  Effect.try({
    try: () => {
      mkdirSync(dataDir, { recursive: true })
    },
    catch: (cause) =>
      new StoreError({
        operation: "open",
        message: `Cannot open PGlite in ${dataDir}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })
