/**
 * A backend terminated while it has unread input: the server's kernel resets
 * the connection, and postgres.js sees `error` (ECONNRESET) some time before
 * `close`. A query dispatched to the connection in between (the test issues it
 * the moment the socket reports its error) must still settle. This is what
 * stalled `npm run soak` forever; see `ErrorWithCloseSocket` in
 * src/PostgresEventStore.ts.
 */
import net from "node:net"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { expect, it } from "vitest"
import { databaseUrl, describeServer } from "../support/postgres.js"

const url = databaseUrl ?? ""

type Outcome = "resolved" | "rejected" | "pending"

const settleWithin = (query: Promise<unknown>, ms: number): Promise<Outcome> =>
  Promise.race([
    query.then(
      () => "resolved" as const,
      () => "rejected" as const
    ),
    new Promise<Outcome>((resolve) => setTimeout(() => resolve("pending"), ms))
  ])

/**
 * Wraps a socket factory so that the test sees each socket error as it happens,
 * before any socket (the store's included) can hold it back.
 */
const onRawError =
  (open: (options: never) => net.Socket, then: () => void) =>
  (options: never): net.Socket => {
    const socket = open(options)
    const emit = socket.emit as (this: net.Socket, ...args: Array<unknown>) => boolean
    socket.emit = function (this: net.Socket, event: string | symbol, ...args: Array<unknown>) {
      if (event === "error") then()
      return emit.call(this, event, ...args)
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
  const sql: postgres.Sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    socket: onRawError(open, () => {
      late ??= settleWithin(sql`select 1 as late`, 3_000)
    })
  } as postgres.Options<Record<string, never>>)
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [row] = await sql<Array<{ pid: number }>>`select pg_backend_pid() as pid`
    const first = sql`select pg_sleep(5)`.then(
      () => "resolved",
      (error: { code?: string }) => error.code
    )
    // 12 kB: more than the 8 kB a busy backend reads ahead, so it exits with
    // unread input and the server's kernel resets the connection.
    const pipelined = sql.unsafe(`select length('${"x".repeat(12_000)}') as n`).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 300))
    await admin`select pg_terminate_backend(${row?.pid ?? 0})`
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
