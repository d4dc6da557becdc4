/**
 * The real `eventcore` command line against the PostgreSQL server at
 * DATABASE_URL, spawned as a user would run it (the PGlite commands are in
 * test/cli.test.ts, which runs beside the suites that share the server).
 */
import { Context, Effect, Layer } from "effect"
import { EventStore, PostgresEventStore, type RecordedEvent, StreamId } from "eventcore"
import { writesOf } from "eventcore/testing"
import postgres from "postgres"
import { afterAll, beforeAll, expect, it } from "vitest"
import { cli, linesOf, start, type TailedEvent, waitForOutput } from "./support/cli.js"
import { databaseUrl, describeServer, usePostgresTemplate } from "./support/postgres.js"

describeServer("eventcore CLI on PostgreSQL", () => {
  const server = usePostgresTemplate()
  let url: string
  const name = `eventcore_cli_${Date.now()}`
  afterAll(() => server.adminClient().unsafe(`drop database if exists "${name}" with (force)`))
  beforeAll(async () => {
    await server.adminClient().unsafe(`create database "${name}"`)
    const target = new URL(databaseUrl as string)
    target.pathname = `/${name}`
    url = target.toString()
  })

  it("the demo passes its invariant check on a server reached through DATABASE_URL", async () => {
    const run = await cli(["demo", "--accounts", "4", "--transfers", "60", "--concurrency", "6"], { DATABASE_URL: url })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("eventcore bank demo on PostgreSQL at 127.0.0.1")
    expect(run.stdout).toMatch(/ok {4}read model equals balances +4 rows, caught up /)
    expect(run.stdout).toContain("all invariants hold")
    const streams = await cli(["streams", "--url", url])
    expect(streams.stdout.trim().split("\n")).toHaveLength(4)
  }, 120_000)

  /** A store over a fresh database, open until the scope ends, and a function that appends one event to a stream. */
  const freshStore = Effect.gen(function* () {
    const { url, database } = yield* server.freshDatabase
    const store = Context.get(yield* Layer.build(PostgresEventStore.layer({ url })), EventStore.EventStore)
    const append = (streamId: string, eventType: string, data: Record<string, unknown> = {}) =>
      Effect.runPromise(
        Effect.map(
          store.append(
            writesOf({ streamId: StreamId.unsafeMake(streamId), expected: "any", events: [{ eventType, data }] })
          ),
          (result) => result.events[0] as RecordedEvent
        )
      )
    return { url, database, append }
  })

  it(
    "tail --follow prints, in log order and filtered, the events another connection appends while it runs; SIGINT exits 130",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url, append } = yield* freshStore
            yield* Effect.promise(async () => {
              const wanted = [await append("order-1", "Placed", { n: 1 })]
              await append("invoice-1", "Placed") // another prefix
              await append("order-2", "Cancelled") // another type
              const following = start(
                ["tail", "--follow", "--json", "--type", "Placed", "--type", "Shipped", "--prefix", "order-"],
                {
                  DATABASE_URL: url
                }
              )
              try {
                await waitForOutput(following, (stdout) => linesOf(stdout).length >= 1)
                // Appended while it follows: found by its polling, from another process.
                wanted.push(await append("order-1", "Shipped", { n: 2 }))
                await append("order-3", "Cancelled")
                wanted.push(await append("order-3", "Placed", { n: 3 }))
                await waitForOutput(following, (stdout) => linesOf(stdout).length >= 3)
              } finally {
                following.child.kill("SIGINT")
              }
              const run = await following.done
              expect(run.stderr).toBe("")
              expect(run).toMatchObject({ code: 130, signal: null })
              const printed = linesOf(run.stdout).map((line) => JSON.parse(line) as TailedEvent)
              // Only the wanted ones: the others come before the last of them in log order, so they would be printed.
              expect(
                printed.map(({ streamId, eventType, position, globalPosition, data }) => ({
                  streamId,
                  eventType,
                  position,
                  globalPosition,
                  data
                }))
              ).toEqual(
                wanted.map(({ streamId, eventType, position, globalPosition, data }) => ({
                  streamId,
                  eventType,
                  position,
                  globalPosition: globalPosition.toString(),
                  data
                }))
              )
            })
          })
        )
      ),
    120_000
  )

  it(
    "status names the transaction holding committed events back (pid, database), counts them, and says when none are",
    () =>
      Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { url, database, append } = yield* freshStore
            const client = yield* Effect.acquireRelease(
              Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
              (client) => Effect.promise(() => client.end())
            )
            yield* Effect.promise(async () => {
              const readable = await append("order-1", "Placed")
              const blocker = await client.reserve()
              let held: RecordedEvent
              let pid: number
              try {
                await blocker`begin`
                pid = Number((await blocker`select pg_backend_pid() as pid`)[0]?.pid)
                await blocker`select pg_current_xact_id()`
                // Committed after the blocker's transaction began: held back until it ends.
                held = await append("order-1", "Shipped")
                const [human, json] = await Promise.all([
                  cli(["status", "--url", url]),
                  cli(["status", "--json", "--url", url])
                ])
                for (const run of [human, json]) {
                  expect(run.stderr).toBe("")
                  expect(run.code).toBe(0)
                }
                expect(JSON.parse(json.stdout)).toMatchObject({
                  schema: "eventcore",
                  migrations: { pending: [], unknown: 0 },
                  head: held.position,
                  readable: readable.position,
                  heldBack: 1,
                  heldBy: { pid, database, state: "idle in transaction", openForSeconds: expect.any(Number) }
                })
                expect(human.stdout).toContain(`log head     ${held.position} (the last committed event)\n`)
                expect(human.stdout).toContain(
                  `readable     ${readable.position} (the last event readers can read now)\n`
                )
                expect(human.stdout).toContain(
                  "held back    1 committed event, readable once the transaction holding them ends\n"
                )
                expect(human.stdout).toMatch(
                  new RegExp(
                    `^held by {6}pid ${pid} in database ${database}, idle in transaction, open for \\d+ s( \\(.+\\))?$`,
                    "m"
                  )
                )
                await blocker`rollback`
              } finally {
                blocker.release()
              }
              const after = await cli(["status", "--url", url])
              expect(after.stderr).toBe("")
              expect(after.code).toBe(0)
              expect(after.stdout).toContain(`log head     ${held.position} (the last committed event)\n`)
              expect(after.stdout).toContain(`readable     ${held.position} (the last event readers can read now)\n`)
              expect(after.stdout).toContain("held back    none: every committed event is readable\n")
              expect(after.stdout).not.toContain("held by")
            })
          })
        )
      ),
    120_000
  )
})
