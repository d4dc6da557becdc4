/**
 * postgres.js's sockets, made to survive lost connections: an error is
 * reported together with the socket's close, and a projection's session
 * never reopens. Each workaround cites the upstream issue it works around.
 */
import net from "node:net"
import type postgres from "postgres"

/**
 * A socket that reports an error together with its close, never before it.
 *
 * postgres.js 3.4.9 rejects a connection's queries when its socket emits
 * `error` (ECONNRESET: a backend terminated while it had unread input), but
 * moves the connection out of the pool only on `close`, which Node emits
 * later, in the close phase of the event loop. A query dispatched to the
 * connection in between (a retry started when the first query failed, or one
 * pipelined behind it) is queued on a dead socket, and `close` with
 * `hadError` set rejects nothing (`closed()` in its connection.js), so the query
 * never settles: under `pg_terminate_backend` this stalled `npm run soak`
 * forever, holding its pool slot. The stale in-flight query left behind by the
 * error is the one porsager/postgres#1130 and #1142 describe.
 *
 * Held back until `close`, the error reaches postgres.js when the queries it
 * must reject are all queued, and it rejects them. Plain TCP and Unix sockets
 * only: with `ssl`, postgres.js wraps this socket in a TLS socket of its own.
 */
export class ErrorWithCloseSocket extends net.Socket {
  private heldError: unknown = undefined

  override emit(event: string | symbol, ...args: Array<unknown>): boolean {
    if (event === "error") {
      this.heldError ??= args[0]
      return true
    }
    if (event === "close" && this.heldError !== undefined) {
      const error = this.heldError
      this.heldError = undefined
      // postgres.js removes its listeners from this socket when it upgrades to TLS.
      if (this.listenerCount("error") > 0) super.emit("error", error)
    }
    return super.emit(event, ...args)
  }
}

/**
 * postgres.js's `socket` option: opens an `ErrorWithCloseSocket` to the
 * configured host (taking several hosts in turn) or Unix socket path. A pool
 * you own gets it, with `fetch_types: false`, from `poolOptions`.
 */
export const socketFactory = () => {
  let nextHost = 0
  return (options: {
    readonly host: ReadonlyArray<string>
    readonly port: ReadonlyArray<number>
    readonly path?: string | false
  }) => {
    const socket = new ErrorWithCloseSocket()
    // Statements sent one behind the other without waiting (a projection's batch, its compare-and-set
    // and its commit) go out at once: with Nagle's algorithm (Node's default), a small write behind a
    // large one waits for the server's acknowledgement, which the server delays until it answers the
    // large one, a round trip in all but name.
    socket.setNoDelay(true)
    if (typeof options.path === "string" && options.path !== "") return socket.connect(options.path)
    const index = nextHost++ % options.host.length
    const host = options.host[index] ?? "localhost"
    // postgres.js reads these to name the server in errors and for TLS.
    return Object.assign(socket.connect(options.port[index] ?? options.port[0] ?? 5432, host), {
      host,
      port: options.port[index]
    })
  }
}

/**
 * What a postgres.js pool needs for the store to survive lost connections:
 * the `socketFactory` socket, and no type fetch. Spread it into the options of
 * a pool you own before giving it to `layerFromClient`:
 * `postgres(url, { ...PostgresEventStore.poolOptions(), max: 20 })`.
 *
 * Typed as postgres.js's options although `socket` is missing from its types.
 */
export const poolOptions = (): postgres.Options<Record<string, never>> =>
  ({
    socket: socketFactory(),
    // No catalog query on each new connection. postgres.js 3.4.9 runs it before
    // the connection's first query and drops its promise: a backend terminated
    // (or the query cancelled) meanwhile rejects it unhandled, which exits Node,
    // and replays its error onto the first query after the reconnect
    // (porsager/postgres#1192, #1205, #1223). It only teaches postgres.js array
    // types, and no statement of the store, the migrator or the admin queries
    // sends or reads an array (test/faults/terminated.test.ts).
    fetch_types: false
  }) as postgres.Options<Record<string, never>>

/**
 * A session's sockets: the first opens as the pool's do, every later one fails
 * at once. postgres.js opens a closed connection again for the next query,
 * silently: a session whose backend ended in the middle of a batch would run
 * the rest of it, the checkpoint's compare-and-set included, in autocommit on a
 * new connection without its lock, and the events handled before would be lost
 * from the read model. Refused, every later statement fails instead, so the
 * batch rolls back whole and the instance owns its name again on a new session.
 */
export const firstConnectionOnly = () => {
  const open = socketFactory()
  let opened = false
  return (options: Parameters<typeof open>[0]) => {
    if (!opened) {
      opened = true
      return open(options)
    }
    const refused = new ErrorWithCloseSocket()
    // After postgres.js has attached its listeners (it does so once the factory's promise resolves).
    setImmediate(() =>
      refused.destroy(new Error("the projection's database session was lost, and a session is never reopened"))
    )
    return refused
  }
}
