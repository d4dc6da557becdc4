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
 */
import net from "node:net"

const readyForQuery = 0x5a // 'Z'

export interface WireCounter {
  /** The server's URL, rewritten to go through the proxy. */
  readonly url: string
  /** Round trips so far (server answers after client sends), over every connection through the proxy. */
  readonly roundTrips: () => number
  /** Round trips so far over the connections whose startup named `applicationName`. */
  readonly roundTripsOf: (applicationName: string) => number
  /** ReadyForQuery messages so far, over every connection through the proxy. */
  readonly exchanges: () => number
  readonly close: () => Promise<void>
}

export const wireCounter = async (serverUrl: string): Promise<WireCounter> => {
  const target = new URL(serverUrl)
  let exchanges = 0
  let roundTrips = 0
  const byApplication = new Map<string, number>()
  const sockets = new Set<net.Socket>()
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname)
    sockets.add(client).add(upstream)
    let pending: Buffer = Buffer.alloc(0)
    let first = true
    /** Whether the client has sent something the server has not answered yet. */
    let awaiting = false
    /** The application_name of the connection's startup message, once seen. */
    let application: string | undefined
    upstream.on("data", (chunk: Buffer) => {
      client.write(chunk)
      if (awaiting) {
        roundTrips += 1
        if (application !== undefined) byApplication.set(application, (byApplication.get(application) ?? 0) + 1)
      }
      awaiting = false
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      // An answer to SSLRequest is one untyped byte ('N' or 'S').
      if (first && pending.length >= 1 && (pending[0] === 0x4e || pending[0] === 0x53) && pending.length === 1) {
        pending = Buffer.alloc(0)
        return
      }
      first = false
      // Each message: a type byte, then its length (which counts itself), then the payload.
      while (pending.length >= 5) {
        const end = 1 + pending.readInt32BE(1)
        if (pending.length < end) break
        if (pending[0] === readyForQuery) exchanges += 1
        pending = pending.subarray(end)
      }
    })
    client.on("data", (chunk: Buffer) => {
      // The startup message: its parameters as NUL-terminated names and values.
      if (application === undefined && chunk.includes("user\0")) {
        const parameters = chunk.toString("latin1").split("\0")
        const at = parameters.indexOf("application_name")
        application = at === -1 ? "" : (parameters[at + 1] ?? "")
      }
      awaiting = true
      upstream.write(chunk)
    })
    const closeBoth = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on("close", closeBoth).on("error", closeBoth)
    upstream.on("close", closeBoth).on("error", closeBoth)
  })
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
  const { port } = proxy.address() as net.AddressInfo
  const url = new URL(serverUrl)
  url.hostname = "127.0.0.1"
  url.port = String(port)
  return {
    url: url.toString(),
    roundTrips: () => roundTrips,
    roundTripsOf: (applicationName) => byApplication.get(applicationName) ?? 0,
    exchanges: () => exchanges,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        proxy.close(() => resolve())
      })
  }
}
