/**
 * Projections and reactors against a SQL store, shared by the PGlite suite
 * (test/projections.test.ts) and the PostgreSQL one
 * (test/postgres/projectionsShared.test.ts): the read model is the bank's
 * balances, in a Drizzle table beside eventcore's tables.
 */
import { eq, sql } from "drizzle-orm"
import { Data, Effect, Either, Fiber, Schedule, Schema, type Scope } from "effect"
import { EventStore, execute, LogPosition, Projection, Reactor, type RecordedEvent, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import { describe, expect, it } from "vitest"
import { AccountEvent, accountStream, Deposit, MoneyDeposited, Open, Transfer } from "../../src/demo/domain.js"
import { Balances, balances } from "../../src/demo/readModel.js"
import type { Database } from "../../src/sql/driver.js"
import { type ReadModelError, upsertBalance } from "../support/balances.js"

/** Runs `body` against a fresh store whose database has the bank's read-model table; `db` reaches that table. */
export type WithDatabase = <A, E>(
  body: (db: Database) => Effect.Effect<A, E, EventStore.EventStore | Projection.ReadModelStore | Scope.Scope>
) => Promise<A>

/** The balances the read model holds, by account. */
export const readModel = (db: Database) =>
  Effect.promise(async () =>
    Object.fromEntries(
      (await db.select().from(balances).orderBy(balances.account)).map((row) => [row.account, row.cents])
    )
  )

/**
 * What the store holds, read with SQL rather than through the global log: the
 * log's readable head can be held back for a moment by a transaction still
 * running (a projection's batch among them), and these must see everything.
 */
const everyEvent = (db: Database) =>
  Effect.promise(() =>
    db.execute<{
      transaction_id: string
      global_position: string
      stream_id: string
      event_type: string
      data: { amount?: number }
    }>(
      // Ordered by the columns, qualified: unqualified, the names would mean the text output columns.
      sql`select e.transaction_id::text, e.global_position::text, e.stream_id, e.event_type, e.data
          from eventcore.events e order by e.transaction_id, e.global_position`
    )
  ).pipe(Effect.map((result) => (Array.isArray(result) ? result : (result as unknown as { rows: Array<never> }).rows)))

/** The balances folded from the account streams. */
export const folded = (db: Database) =>
  Effect.map(everyEvent(db), (rows) => {
    const result: Record<string, number> = {}
    for (const row of rows) {
      if (!row.stream_id.startsWith("account-")) continue
      const account = row.stream_id.slice("account-".length)
      const amount = row.data.amount ?? 0
      result[account] =
        (result[account] ?? 0) +
        (row.event_type === "TransferSent" ? -amount : row.event_type === "AccountOpened" ? 0 : amount)
    }
    return result
  })

/** The position of the last event written. */
export const lastWritten = (db: Database) =>
  Effect.map(everyEvent(db), (rows) => {
    const last = rows.at(-1)
    return last === undefined
      ? LogPosition.start
      : LogPosition.make(BigInt(last.transaction_id), BigInt(last.global_position))
  })

/** The position of the readable head, in a store where nothing else runs (the in-memory store). */
export const lastPosition = Effect.flatMap(EventStore.EventStore, (store) =>
  Effect.gen(function* () {
    let position = LogPosition.start
    for (;;) {
      const page = yield* store.readAll({ after: position })
      position = page.position
      if (page.caughtUp) return position
    }
  })
)

/** Until `Projection.status` satisfies `done` (an ended session's lock is freed by the server a moment later). */
const statusUntil = (done: (rows: ReadonlyArray<Projection.ProjectionStatus>) => boolean) =>
  Effect.gen(function* () {
    for (;;) {
      const rows = yield* Projection.status
      if (done(rows)) return rows
      yield* Effect.sleep("50 millis")
    }
  }).pipe(Effect.timeout("10 seconds"))

/** Until the first row of `Projection.status` says `status`. */
const statusBecomes = (status: string) =>
  Effect.map(
    statusUntil((rows) => rows[0]?.status === status),
    (rows) => rows[0]
  )

/** The instances the checkpoint's row lists as standing by, read with SQL. */
const standbyEntries = (db: Database) =>
  Effect.promise(() =>
    db.execute<{ instance: string }>(
      sql`select jsonb_object_keys(standbys) as instance from eventcore.projections order by 1`
    )
  ).pipe(
    Effect.map((result) =>
      (Array.isArray(result) ? result : (result as unknown as { rows: Array<{ instance: string }> }).rows).map(
        (row) => row.instance
      )
    )
  )

export const openAll = (accounts: ReadonlyArray<readonly [string, number]>) =>
  Effect.forEach(accounts, ([account, cents]) =>
    execute(Open, { account, owner: account, ...(cents > 0 ? { initialDeposit: cents } : {}) })
  )

export const defineProjectionTests = (withDatabase: WithDatabase) => {
  describe("a projection", () => {
    it("keeps the read model equal to the fold of the streams, and waitFor reads one's own writes", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([
            ["alice", 100],
            ["bob", 0]
          ])
          yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 3 }))
          const transfer = yield* execute(Transfer, { from: "alice", to: "bob", amount: 30 })
          yield* Projection.waitFor(Balances, (transfer.events.at(-1) as RecordedEvent).position)
          expect(yield* readModel(db)).toEqual({ alice: 70, bob: 30 })
          for (let i = 0; i < 20; i++)
            yield* execute(Deposit, { account: i % 2 === 0 ? "alice" : "bob", amount: i + 1 })
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          expect(yield* readModel(db)).toEqual(yield* folded(db))
          const [status] = yield* Projection.status
          expect(status).toMatchObject({ name: "bank-balances", kind: "projection", status: "running", lag: 0 })
          expect(status?.owner).toMatch(/\/\d+\//)
        })
      ))

    it("waitFor a head past its last event completes once nothing of its own lies before it", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([["carol", 10]])
          yield* Effect.forkScoped(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          // Events it does not handle, and transactions elsewhere that move the horizon on.
          const store = yield* EventStore.EventStore
          yield* store.append(
            writesOf({ streamId: StreamId.unsafeMake("audit-1"), expected: "no_stream", events: testEvents(3) })
          )
          for (let i = 0; i < 3; i++)
            yield* Effect.promise(() => db.transaction((tx) => tx.execute(sql`select pg_current_xact_id()`)))
          const head = yield* lastPosition
          expect(head > (yield* lastWritten(db))).toBe(true)
          yield* Projection.waitFor(Balances, head, { timeout: "5 seconds" })
          // A position its own next event is not yet handled at still waits.
          const deposit = yield* execute(Deposit, { account: "carol", amount: 5 })
          yield* Projection.waitFor(Balances, (deposit.events.at(-1) as RecordedEvent).position)
          expect(yield* readModel(db)).toEqual({ carol: 15 })
          const pending = LogPosition.make(LogPosition.parts(head).transaction + 1_000_000n, 0n)
          const timedOut = yield* Effect.either(Projection.waitFor(Balances, pending, { timeout: "300 millis" }))
          expect(timedOut).toEqual(Either.left(expect.objectContaining({ _tag: "ProjectionTimeout" })))
        })
      ))

    it("applies every event once across restarts: interrupted runs resume from their checkpoint", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([
            ["a", 1000],
            ["b", 1000]
          ])
          for (let round = 0; round < 6; round++) {
            const runner = yield* Effect.fork(Projection.run(Balances, { batchSize: 2 }))
            for (let i = 0; i < 5; i++)
              yield* execute(Transfer, { from: round % 2 ? "a" : "b", to: round % 2 ? "b" : "a", amount: 7 })
            yield* Effect.sleep(`${round * 7} millis`)
            yield* Fiber.interrupt(runner)
          }
          yield* Effect.forkScoped(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          expect(yield* readModel(db)).toEqual(yield* folded(db))
        })
      ))

    it("one instance runs; another stands by, says so, and takes over when the first ends", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([["solo", 5]])
          const first = yield* Effect.fork(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          const second = yield* Effect.fork(Projection.run(Balances))
          const [running, standby, ...more] = yield* statusUntil((rows) => rows.length === 2)
          expect(more).toEqual([])
          expect(running).toMatchObject({ name: "bank-balances", status: "running", lag: 0 })
          expect(standby).toEqual({
            name: "bank-balances",
            kind: "projection",
            status: "standby",
            position: running?.position,
            lag: 0,
            owner: expect.stringMatching(/\/\d+\//),
            updatedAt: expect.any(Date)
          })
          expect(standby?.owner).not.toBe(running?.owner)
          yield* execute(Deposit, { account: "solo", amount: 5 })
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          yield* Fiber.interrupt(first)
          yield* execute(Deposit, { account: "solo", amount: 5 })
          yield* Projection.waitFor(Balances, yield* lastWritten(db), { timeout: "10 seconds" })
          // The one that stood by runs, and stands by no longer.
          const afterTakeover = yield* Projection.status
          expect(afterTakeover).toEqual([expect.objectContaining({ status: "running", owner: standby?.owner, lag: 0 })])
          yield* Fiber.interrupt(second)
          expect(yield* readModel(db)).toEqual({ solo: 15 })
          yield* statusBecomes("stopped")
          expect(yield* standbyEntries(db)).toEqual([])
        })
      ))

    it("an instance that stops standing by is no longer reported; nor one that ended without saying so", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([["wait", 5]])
          yield* Effect.forkScoped(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          // As an instance that died standing by leaves it: listed, its lock gone with it.
          yield* Effect.promise(() =>
            db.execute(
              sql`update eventcore.projections set standbys = standbys || '{"gone/1/dead00": "2026-01-01T00:00:00Z"}'`
            )
          )
          expect((yield* Projection.status).map((row) => row.status)).toEqual(["running"])
          const waiting = yield* Effect.fork(Projection.run(Balances))
          const [, standby] = yield* statusUntil((rows) => rows.length === 2)
          expect(standby?.status).toBe("standby")
          // Standing by cleared what the one that died left.
          expect(yield* standbyEntries(db)).toEqual([standby?.owner])
          yield* Fiber.interrupt(waiting)
          expect((yield* Projection.status).map((row) => row.status)).toEqual(["running"])
          expect(yield* standbyEntries(db)).toEqual([])
        })
      ))

    it("its lag counts only the events it handles: caught up, a filtered projection lags 0", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* openAll([["lag", 10]])
          const runner = yield* Effect.fork(Projection.run(Balances))
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          // Events it does not handle: other types, inside its prefix and out, and one of its types outside it.
          const audit = StreamId.unsafeMake("audit-1")
          yield* store.append(writesOf({ streamId: audit, expected: "no_stream", events: testEvents(3) }))
          const notes = StreamId.unsafeMake("account-notes")
          yield* store.append(writesOf({ streamId: notes, expected: "no_stream", events: testEvents(2) }))
          yield* store.append(
            writesOf({
              streamId: StreamId.unsafeMake("savings-1"),
              expected: "no_stream",
              events: [{ eventType: "MoneyDeposited", data: { amount: 5 } }]
            })
          )
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          expect(yield* Projection.status).toEqual([
            expect.objectContaining({ name: "bank-balances", status: "running", lag: 0 })
          ])
          yield* Fiber.interrupt(runner)
          yield* statusBecomes("stopped")
          // Stopped, it lags by its own events, and by no others.
          yield* execute(Deposit, { account: "lag", amount: 1 })
          yield* store.append(writesOf({ streamId: audit, expected: 3, events: testEvents(2) }))
          yield* store.append(writesOf({ streamId: notes, expected: 2, events: testEvents(1) }))
          yield* execute(Deposit, { account: "lag", amount: 2 })
          expect(yield* Projection.status).toEqual([expect.objectContaining({ status: "stopped", lag: 2 })])
        })
      ))

    it("rebuild resets the read model and replays it to the same state", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([
            ["r1", 50],
            ["r2", 20]
          ])
          yield* Effect.forkScoped(Projection.run(Balances, { batchSize: 1 }))
          yield* execute(Transfer, { from: "r1", to: "r2", amount: 15 })
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          const live = yield* readModel(db)
          // Damage the read model, as a bug in an old handler would have.
          yield* Effect.promise(() => db.update(balances).set({ cents: 0 }).where(eq(balances.account, "r1")))
          yield* Projection.rebuild(Balances)
          yield* Projection.waitFor(Balances, yield* lastWritten(db))
          expect(yield* readModel(db)).toEqual(live)
          expect(live).toEqual({ r1: 35, r2: 35 })
        })
      ))
  })

  describe("a batch whose checkpoint moved before it committed", () => {
    it("is rolled back whole, its writes with it, and handled again from the checkpoint", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([
            ["m1", 30],
            ["m2", 12]
          ])
          let moved = false
          const deposits: Array<string> = []
          // The batch holding the deposit of 7 moves the checkpoint back to the start inside its own
          // transaction, after writing (as a rebuild would between the batch's start and its
          // compare-and-set), once. Had that batch committed, the replay would count everything twice.
          const Moving = Projection.make({
            name: "bank-balances",
            event: AccountEvent,
            handleBatch: (events) =>
              Effect.gen(function* () {
                for (const { event, recorded } of events) yield* upsertBalance(event, recorded)
                const deposit = events.find(({ event }) => event._tag === "MoneyDeposited" && event.amount === 7)
                if (deposit === undefined) return
                deposits.push(deposit.recorded.eventId)
                if (moved) return
                moved = true
                const { db: inBatch } = yield* Projection.ReadModel
                yield* Effect.promise(() =>
                  inBatch.execute(
                    sql`update eventcore.projections set position = ${LogPosition.start} where name = 'bank-balances'`
                  )
                )
              })
          })
          yield* Effect.forkScoped(Projection.run(Moving))
          yield* Projection.waitFor(Moving, yield* lastWritten(db), { timeout: "20 seconds" })
          yield* execute(Deposit, { account: "m1", amount: 7 })
          yield* Projection.waitFor(Moving, yield* lastWritten(db), { timeout: "20 seconds" })
          expect(yield* readModel(db)).toEqual({ m1: 37, m2: 12 })
          // Handled twice, committed once.
          expect(deposits).toHaveLength(2)
          expect(new Set(deposits).size).toBe(1)
        })
      ))
  })

  class Poisoned extends Data.TaggedError("Poisoned")<{ readonly amount: number }> {}

  /** Like Balances, but an amount of 13 cannot be projected. */
  const Fragile = Projection.make({
    name: "fragile",
    event: AccountEvent,
    handle: (event, recorded): Effect.Effect<void, Poisoned | ReadModelError, Projection.ReadModel> =>
      event._tag === "MoneyDeposited" && event.amount === 13
        ? Effect.fail(new Poisoned({ amount: 13 }))
        : upsertBalance(event, recorded)
  })

  describe("a projection whose handler keeps failing", () => {
    const retry = { retry: Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(2))) }
    it("stops with ProjectionFailed at that event, says failed, and resumes there next time", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([["p", 1]])
          yield* execute(Deposit, { account: "p", amount: 2 })
          const poison = (yield* execute(Deposit, { account: "p", amount: 13 })).events[0] as RecordedEvent
          yield* execute(Deposit, { account: "p", amount: 4 })
          const failure = yield* Effect.flip(Projection.run(Fragile, { batchSize: 10, ...retry }))
          expect(failure).toMatchObject({
            _tag: "ProjectionFailed",
            projection: "fragile",
            eventId: poison.eventId,
            position: poison.position
          })
          // Everything before the poison is committed; nothing after it.
          expect(yield* readModel(db)).toEqual({ p: 3 })
          const [status] = yield* Projection.status
          expect(status).toMatchObject({ status: "failed", error: expect.stringContaining("Poisoned") })
          expect((status?.position ?? poison.position) < poison.position).toBe(true)
          const again = yield* Effect.flip(Projection.run(Fragile, retry))
          expect(again._tag).toBe("ProjectionFailed")
          expect(yield* readModel(db)).toEqual({ p: 3 })
        })
      ))

    it("with onError skip, records a dead letter and moves on", () =>
      withDatabase((db) =>
        Effect.gen(function* () {
          yield* openAll([["s", 1]])
          const poison = (yield* execute(Deposit, { account: "s", amount: 13 })).events[0] as RecordedEvent
          yield* execute(Deposit, { account: "s", amount: 4 })
          yield* Effect.forkScoped(Projection.run(Fragile, { onError: "skip", ...retry }))
          yield* Projection.waitFor(Fragile, yield* lastWritten(db))
          expect(yield* readModel(db)).toEqual({ s: 5 })
          const letters = yield* Projection.deadLetters(Fragile)
          expect(letters).toEqual([
            {
              eventId: poison.eventId,
              position: poison.position,
              eventType: "MoneyDeposited",
              error: expect.stringContaining("Poisoned")
            }
          ])
        })
      ))

    it("an event that no longer decodes is such a failure, with the decode error", () =>
      withDatabase(() =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* openAll([["d", 1]])
          const bad = yield* store.append(
            writesOf({
              streamId: accountStream("d"),
              expected: 2,
              events: [{ eventType: "MoneyDeposited", data: { amount: "ten" } }]
            })
          )
          const failure = yield* Effect.flip(Projection.run(Balances, retry))
          expect(failure).toMatchObject({ _tag: "ProjectionFailed", eventId: bad.events[0]?.eventId })
          expect(String((failure as { cause: unknown }).cause)).toContain("amount")
        })
      ))
  })

  describe("reactors", () => {
    it("run commands at least once, and the commands' events carry correlation and causation ids", () =>
      withDatabase(() =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          // Every deposit to "source" is mirrored as a deposit to "mirror".
          const Mirror = Reactor.make({
            name: "mirror",
            event: Schema.Union(MoneyDeposited),
            filter: { streamPrefix: "account-source" },
            handle: (event, recorded) =>
              Effect.asVoid(
                Effect.orDie(execute(Deposit, { account: "mirror", amount: event.amount }, { causedBy: recorded }))
              )
          })
          yield* openAll([
            ["source", 0],
            ["mirror", 0]
          ])
          const deposit = (yield* execute(Deposit, { account: "source", amount: 9 })).events[0] as RecordedEvent
          yield* Effect.forkScoped(Reactor.run(Mirror))
          yield* Projection.waitFor(Mirror, deposit.position)
          const mirrored = (yield* store.readStream(accountStream("mirror"))).events.at(-1) as RecordedEvent
          expect(mirrored.data).toEqual({ amount: 9 })
          expect(deposit.metadata.correlationId).toBe(deposit.metadata.causationId)
          expect(mirrored.metadata).toEqual({
            correlationId: deposit.metadata.correlationId,
            causationId: deposit.eventId
          })
        })
      ))
  })
}
