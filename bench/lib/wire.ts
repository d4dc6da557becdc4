/**
 * Counts round trips on the wire: a TCP proxy in front of the PostgreSQL
 * server that counts, per connection, each time the server answers after the
 * client has sent something (a turn of the conversation, i.e. a round trip:
 * the client waits for that answer). It also counts ReadyForQuery messages,
 * which end each Sync'ed exchange.
 *
 * The two differ when a client waits without a Sync: postgres.js sends a
 * statement that has parameters but is not prepared as Parse/Describe/Flush,
 * waits for the description, then sends Bind/Execute/Sync: two round trips,
 * one ReadyForQuery, and one statement for its `debug` hook.
 *
 * The proxy runs in a process of its own (wire-proxy.ts): in the measured
 * process, it would read what the client sends only when that process's event
 * loop got to it, and could see an answer arrive before statements the client
 * had already sent behind the first, counting a round trip the client never
 * waited for.
 */
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"

/** What the proxy has counted so far, over every connection through it. */
export interface WireCounts {
  readonly roundTrips: number
  readonly exchanges: number
  /** Round trips by the application_name of the connections' startup messages. */
  readonly byApplication: Readonly<Record<string, number>>
}

export interface WireCounter {
  /** The server's URL, rewritten to go through the proxy. */
  readonly url: string
  readonly counts: () => Promise<WireCounts>
  readonly close: () => Promise<void>
}

const proxyScript = fileURLToPath(new URL("./wire-proxy.ts", import.meta.url))

export const wireCounter = async (serverUrl: string): Promise<WireCounter> => {
  const target = new URL(serverUrl)
  // The parent's execArgv carries tsx's loader: the child runs TypeScript as the bench does.
  const child: ChildProcess = fork(proxyScript, [target.hostname, target.port || "5432"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const replies: Array<(message: unknown) => void> = []
  child.on("message", (message) => replies.shift()?.(message))
  const ask = <A>(request: string) =>
    new Promise<A>((resolve) => {
      replies.push(resolve as (message: unknown) => void)
      child.send(request)
    })
  const port = await new Promise<number>((resolve, reject) => {
    replies.push((message) => resolve((message as { port: number }).port))
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`the wire proxy exited (${code}) before listening`)))
  })
  const url = new URL(serverUrl)
  url.hostname = "127.0.0.1"
  url.port = String(port)
  return {
    url: url.toString(),
    counts: () => ask<WireCounts>("counts"),
    close: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.send("close")
      await exited
    }
  }
}
