/**
 * The counting proxy of wire.ts, in a process of its own: argv host and port
 * of the server; it sends `{ port }` once listening, answers "counts" with
 * what it counted, and exits on "close".
 */
import net from "node:net"

const readyForQuery = 0x5a // 'Z'

const [host = "127.0.0.1", serverPort = "5432"] = process.argv.slice(2)
let exchanges = 0
let roundTrips = 0
const byApplication: Record<string, number> = {}
const sockets = new Set<net.Socket>()

const proxy = net.createServer((client) => {
  const upstream = net.connect(Number(serverPort), host)
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
      if (application !== undefined) byApplication[application] = (byApplication[application] ?? 0) + 1
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

proxy.listen(0, "127.0.0.1", () => process.send?.({ port: (proxy.address() as net.AddressInfo).port }))
process.on("message", (request) => {
  if (request === "counts") process.send?.({ roundTrips, exchanges, byApplication: { ...byApplication } })
  if (request === "close") {
    for (const socket of sockets) socket.destroy()
    proxy.close(() => process.exit(0))
  }
})
