/**
 * A backend terminated while it has unread input: the server's kernel resets
 * the connection, and postgres.js sees `error` (ECONNRESET) some time before
 * `close`. A query dispatched to the connection in between (the test issues it
 * the moment the socket reports its error) must still settle. This is what
 * stalled `npm run soak` forever; see `ErrorWithCloseSocket` in
 * src/PostgresEventStore.ts.
 */
import net from "node:net"
import { Context, Effect, Layer } from "effect"
import { EventStore, PostgresEventStore, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { expect, it } from "vitest"
import { databaseUrl, describeServer, usePostgresTemplate } from "../support/postgres.js"

const url = databaseUrl ?? ""

type Outcome = "resolved" | "rejected" | "pending"

/**
 * Where `query` stands once `closed` has resolved and the event loop has turned:
 * postgres.js rejects what it will reject while it handles the socket's close,
 * so a query still pending then is pending for good. No duration is assumed.
 */
const settledBy = (query: Promise<unknown>, closed: Promise<void>): Promise<Outcome> =>
  Promise.race([
    query.then(
      () => "resolved" as const,
      () => "rejected" as const
    ),
    closed.then(() => new Promise<Outcome>((resolve) => setImmediate(() => resolve("pending"))))
  ])

/**
 * Wraps a socket factory so that the test sees each socket error as it happens,
 * before any socket (the store's included) can hold it back, and each close once
 * its listeners (postgres.js's) have handled it.
 */
const onRawEvents =
  (open: (options: never) => net.Socket, onError: () => void, onClosed: () => void) =>
  (options: never): net.Socket => {
    const socket = open(options)
    const emit = socket.emit as (this: net.Socket, ...args: Array<unknown>) => boolean
    socket.emit = function (this: net.Socket, event: string | symbol, ...args: Array<unknown>) {
      if (event === "error") onError()
      const handled = emit.call(this, event, ...args)
      if (event === "close") onClosed()
      return handled
    } as typeof socket.emit
    return socket
  }

const plainSocket = (options: never) => {
  const { host, port } = options as { host: Array<string>; port: Array<number> }
  return net.connect(port[0] ?? 5432, host[0] ?? "localhost")
}

/**
 * One connection: a long query, a pipelined one too big for the backend to
 * have read, then the backend is terminated; a third query is issued the moment
 * the socket reports its error, before its close.
 */
const terminateWithUnreadInput = async (open: (options: never) => net.Socket) => {
  let late: Promise<Outcome> | undefined
  let closed = () => {}
  const closing = new Promise<void>((resolve) => {
    closed = resolve
  })
  const sql: postgres.Sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    socket: onRawEvents(
      open,
      () => {
        late ??= settledBy(sql`select 1 as late`, closing)
      },
      () => closed()
    )
  } as postgres.Options<Record<string, never>>)
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [row] = await sql<Array<{ pid: number }>>`select pg_backend_pid() as pid`
    const pid = row?.pid ?? 0
    // Long enough never to end by itself: the backend is terminated in it.
    const first = sql`select pg_sleep(30)`.then(
      () => "resolved",
      (error: { code?: string }) => error.code
    )
    // 12 kB: more than the 8 kB a busy backend reads ahead, so it exits with
    // unread input and the server's kernel resets the connection.
    const pipelined = sql.unsafe(`select length('${"x".repeat(12_000)}') as n`).catch(() => {})
    // Terminated once it is inside pg_sleep, with the pipelined query sent behind it.
    while (
      (
        await admin`select from pg_stat_activity where pid = ${pid} and state = 'active' and query like 'select pg_sleep%'`
      ).length === 0
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await admin`select pg_terminate_backend(${pid})`
    const firstError = await first
    await pipelined
    return { firstError, late: await late }
  } finally {
    await sql.end({ timeout: 0 })
    await admin.end()
  }
}

/** The kernel's reset is not certain on every run: try again if the backend closed cleanly. */
const withReset = async (open: (options: never) => net.Socket) => {
  let outcome = await terminateWithUnreadInput(open)
  for (let attempt = 1; attempt < 4 && outcome.firstError !== "ECONNRESET"; attempt++) {
    outcome = await terminateWithUnreadInput(open)
  }
  return outcome
}

describeServer("a backend terminated with unread input (ECONNRESET before close)", () => {
  it("a plain socket: the query issued between error and close never settles in postgres.js 3.4.9 (upstream defect; drop the workaround once this fails)", async () => {
    const outcome = await withReset(plainSocket)
    expect(outcome).toEqual({ firstError: "ECONNRESET", late: "pending" })
  }, 40_000)

  it("with the store's socket: that query settles (it fails, and the pool reconnects)", async () => {
    const outcome = await withReset(PostgresEventStore.socketFactory() as (options: never) => net.Socket)
    expect(outcome).toEqual({ firstError: "ECONNRESET", late: "rejected" })
  }, 40_000)
})

/**
 * A TCP proxy to the server that, once armed, lets the next connection start
 * up and then terminates its backend (`pg_terminate_backend`, a real one) the
 * moment the client sends its first statement, which it keeps from the
 * backend. With postgres.js's default `fetch_types` that statement is the
 * catalog query opening every connection: its rejection is unhandled (Node
 * exits) and its 57P01 is replayed onto the first query after the reconnect
 * (porsager/postgres#1192, #1223). The store's pool sends no such query.
 */
const terminatingProxy = async (target: URL, admin: postgres.Sql) => {
  let armed = false
  const trapped: Array<{ readonly pid: number; readonly statement: string }> = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
    }
    let pid: number | undefined
    let ready = false
    let fromServer = Buffer.alloc(0)
    upstream.on("data", (chunk: Buffer) => {
      // Startup: BackendKeyData ('K') names the backend, ReadyForQuery ('Z') ends it.
      if (!ready) {
        fromServer = Buffer.concat([fromServer, chunk])
        while (!ready && fromServer.length >= 5 && fromServer.length >= 1 + fromServer.readUInt32BE(1)) {
          if (fromServer[0] === 0x4b) pid = fromServer.readUInt32BE(5)
          if (fromServer[0] === 0x5a) ready = true
          fromServer = fromServer.subarray(1 + fromServer.readUInt32BE(1))
        }
      }
      client.write(chunk)
    })
    client.on("data", (chunk: Buffer) => {
      if (ready && armed && pid !== undefined) {
        armed = false
        trapped.push({ pid, statement: chunk.toString("latin1").replace(/[^ -~]+/g, " ") })
        // A postgres.js query runs once awaited (or caught).
        admin`select pg_terminate_backend(${pid})`.catch(() => {})
        return
      }
      upstream.write(chunk)
    })
    upstream.on("close", () => client.end())
    client.on("close", () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    url: Object.assign(new URL(target.toString()), { hostname: "127.0.0.1", port: String(port) }).toString(),
    arm: () => {
      armed = true
    },
    trapped,
    /** Whether every connection through the proxy has closed, on both sides. */
    idle: () => sockets.size === 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

describeServer("a backend terminated while its connection starts up", () => {
  const server = usePostgresTemplate()

  const pools = {
    "the store's own pool": (url: string) =>
      Effect.map(Layer.build(PostgresEventStore.layer({ url, maxConnections: 1 })), Context.get(EventStore.EventStore)),
    "a pool the application owns, opened with poolOptions": (url: string) =>
      Effect.gen(function* () {
        const client = postgres(url, {
          ...PostgresEventStore.poolOptions(),
          max: 1,
          onnotice: () => {},
          connection: { application_name: "eventcore" }
        })
        yield* Effect.addFinalizer(() => Effect.promise(() => client.end()))
        return Context.get(yield* Layer.build(PostgresEventStore.layerFromClient(client)), EventStore.EventStore)
      })
  }

  it.each(Object.entries(pools))(
    "%s: no unhandled rejection (no type fetch to lose), and the store recovers on its next operations",
    async (_, openStore) => {
      const unhandled: Array<unknown> = []
      const record = (reason: unknown) => unhandled.push(reason)
      process.on("unhandledRejection", record)
      try {
        const outcomes = await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              const { url: databaseUrl } = yield* server.freshDatabase
              const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} })
              yield* Effect.addFinalizer(() => Effect.promise(() => admin.end()))
              const proxy = yield* Effect.promise(() => terminatingProxy(new URL(databaseUrl), admin))
              yield* Effect.addFinalizer(() => Effect.promise(() => proxy.close()))
              const store = yield* openStore(proxy.url)
              const streamId = StreamId.unsafeMake("account-1")
              yield* store.append(writesOf({ streamId, expected: "no_stream", events: testEvents(2) }))

              // Close the pool's connection so that the next operation opens one, then trap that one.
              proxy.arm()
              yield* Effect.promise(
                () =>
                  admin`select pg_terminate_backend(pid) from pg_stat_activity
                  where datname = current_database() and application_name = 'eventcore'`
              )
              // The pool has seen it closed once the proxy has: postgres.js's socket closes before the proxy's.
              while (!proxy.idle()) yield* Effect.sleep("10 millis")

              const outcomes: Array<string> = []
              for (let attempt = 0; attempt < 5; attempt++) {
                const read = yield* Effect.either(store.readStream(streamId))
                outcomes.push(read._tag === "Right" ? `read ${read.right.version}` : read.left._tag)
                if (read._tag === "Right") break
              }
              const appended = yield* store.append(writesOf({ streamId, expected: 2, events: testEvents(1) }))
              outcomes.push(`append ${appended.streamVersions.get(streamId)}`)
              // Let a stray rejection surface before the scope closes the pool.
              yield* Effect.sleep("200 millis")
              return { trapped: proxy.trapped.map((t) => t.statement.includes("pg_type")), outcomes }
            })
          )
        )
        expect(unhandled).toEqual([])
        // The trapped statement was the store's own, not a catalog query.
        expect(outcomes.trapped).toEqual([false])
        expect(outcomes.outcomes.at(-2)).toBe("read 2")
        expect(outcomes.outcomes.at(-1)).toBe("append 3")
        // At most two reads fail: the trapped one (CONNECTION_CLOSED), and the
        // next, which postgres.js 3.4.9 fails with the terminated backend's 57P01
        // (it keeps a query's error across a clean close and replays it when the
        // new connection is ready).
        expect(outcomes.outcomes.length).toBeLessThanOrEqual(4)
      } finally {
        process.off("unhandledRejection", record)
      }
    },
    30_000
  )
})
