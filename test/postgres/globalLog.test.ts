/**
 * The global log on a PostgreSQL server, where transactions really run side by
 * side: a transaction that commits late is never skipped, readers following
 * busy writers see every event once in one order, a transaction left open is
 * reported instead of skipped, and a store restored into another cluster is
 * refused.
 */
import { randomUUID } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Fiber, Layer, Metric, Queue, Stream } from "effect"
import { EventStore, LogMessage, LogPosition, PostgresEventStore, type RecordedEvent, StreamId } from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"
import { makeRecordingLogger } from "../support/recording.js"

const id = StreamId.unsafeMake

/** The store of a layer built in the current scope. */
const storeIn = (layer: Layer.Layer<EventStore.EventStore, unknown>) =>
  Effect.map(Layer.build(layer), Context.get(EventStore.EventStore))

/** A connection of its own, closed with the scope. */
const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
    (client) => Effect.promise(() => client.end({ timeout: 1 }))
  )

/** A transaction on its own connection that holds a transaction id until `end` commits it. */
const openTransaction = (url: string) =>
  Effect.gen(function* () {
    const client = yield* connection(url)
    const reserved = yield* Effect.promise(() => client.reserve())
    yield* Effect.addFinalizer(() => Effect.sync(() => reserved.release()))
    yield* Effect.promise(() => reserved`begin`)
    const [row] = yield* Effect.promise(
      () => reserved`select pg_current_xact_id()::text as xid, pg_backend_pid() as pid`
    )
    return {
      reserved,
      xid: BigInt(row?.xid as string),
      pid: row?.pid as number,
      end: Effect.promise(() => reserved`commit`)
    }
  })

/**
 * Reads after `after` until `count` events have come: a transaction running
 * elsewhere on the server (another test's) may hold the readable head back for
 * a moment, never past an event.
 */
const readUntil = (store: EventStore.EventStore, after: LogPosition.LogPosition, count: number) =>
  Effect.gen(function* () {
    const events: Array<RecordedEvent> = []
    let position = after
    while (events.length < count) {
      const page = yield* store.readAll({ after: position })
      events.push(...page.events)
      position = page.position
      if (page.caughtUp && events.length < count) yield* Effect.sleep("10 millis")
    }
    return events
  }).pipe(Effect.timeout("30 seconds"))

/** Reads the whole readable log, page by page. */
const readLog = (store: EventStore.EventStore, after = LogPosition.start) =>
  Effect.map(Stream.runCollect(store.streamAll({ after, pageSize: 7 })), Chunk.toArray)

describeServer("the global log on PostgreSQL", () => {
  const server = usePostgresTemplate()

  it.live("a transaction that commits late is not skipped: readers wait before it, then read it", () =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      const store = yield* storeIn(PostgresEventStore.layer({ url }))
      const first = (yield* store.append(
        writesOf({ streamId: id("early"), expected: "no_stream", events: testEvents(1) })
      )).events[0] as RecordedEvent
      // Readable once, readable for ever: the horizon only moves forward.
      yield* readUntil(store, LogPosition.start, 1)

      // A raw insert whose transaction stays open: it takes a transaction id, and a global position, first.
      const late = yield* openTransaction(url)
      yield* Effect.promise(
        () => late.reserved`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
          values (${randomUUID()}, 'late', 1, 'Late', '{}')`
      )
      // A later append commits first, with a later transaction and a later global position.
      const after = (yield* store.append(
        writesOf({ streamId: id("after"), expected: "no_stream", events: testEvents(1) })
      )).events[0] as RecordedEvent
      expect(after.position > LogPosition.make(late.xid, 0n)).toBe(true)

      // Readers stop before the open transaction: the committed append waits behind it.
      const held = yield* store.readAll()
      expect(held.events).toEqual([first])
      expect(held.caughtUp).toBe(true)
      expect(held.position < LogPosition.make(late.xid, 0n)).toBe(true)
      const again = yield* store.readAll({ after: held.position })
      expect(again.events).toEqual([])
      expect(again.position).toBe(held.position)

      yield* late.end
      const resumed = yield* readUntil(store, held.position, 2)
      expect(resumed.map((e) => e.streamId)).toEqual(["late", "after"])
      expect(resumed[1]).toEqual(after)
      expect(resumed[0]?.globalPosition).toBeLessThan(after.globalPosition)
      expect(yield* readLog(store)).toEqual([first, ...resumed])
    }).pipe(Effect.scoped)
  )

  it.live("two readers following twelve writers (appends and raw inserts) see every event once, in one order", () =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      const store = yield* storeIn(PostgresEventStore.layer({ url, maxConnections: 16 }))
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => postgres(url, { max: 4, onnotice: () => {} })),
        (client) => Effect.promise(() => client.end({ timeout: 1 }))
      )
      const writers = 12
      const rounds = 25
      let writing = true

      const total = (writers / 4) * 3 * rounds * 2 + (writers / 4) * rounds
      // Readers poll with readAll in small pages while the writers run, until
      // they have read as many events as were written (a transaction elsewhere
      // on the server may hold the head back for a while: they wait for it).
      const follower = Effect.gen(function* () {
        const seen: Array<RecordedEvent> = []
        let position = LogPosition.start
        while (writing || seen.length < total) {
          const page = yield* store.readAll({ after: position, maxCount: 5 })
          seen.push(...page.events)
          expect(page.position >= position).toBe(true)
          position = page.position
          if (page.caughtUp) yield* Effect.sleep("2 millis")
        }
        return seen
      }).pipe(Effect.timeout("60 seconds"))
      const readers = yield* Effect.forEach([0, 1], () => Effect.fork(follower))

      const latch = yield* Effect.makeLatch(false)
      const fibers = yield* Effect.forEach(
        Array.from({ length: writers }, (_, w) => w),
        (w) =>
          Effect.fork(
            latch.await.pipe(
              Effect.zipRight(
                Effect.forEach(
                  Array.from({ length: rounds }, (_, r) => r),
                  (r) =>
                    w % 4 === 3
                      ? // Raw inserts in transactions that hold their id a while before committing.
                        Effect.promise(() =>
                          raw.begin(async (tx) => {
                            await tx`select pg_current_xact_id()`
                            await tx`select pg_sleep(${(r % 3) / 1000})`
                            await tx`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
                            values (${randomUUID()}, ${`raw-${w}`}, ${r + 1}, 'Raw', '{}')`
                          })
                        )
                      : Effect.asVoid(
                          store.append(
                            writesOf(
                              { streamId: id(`writer-${w}`), expected: r, events: testEvents(1, r) },
                              { streamId: id(`shared-${r % 5}`), expected: "any", events: testEvents(1, r) }
                            )
                          )
                        )
                )
              )
            )
          )
      )
      yield* latch.open
      yield* Fiber.joinAll(fibers)
      writing = false
      const seen = yield* Fiber.joinAll(readers)

      const log = yield* readLog(store)
      expect(log).toHaveLength(total)
      expect(new Set(log.map((e) => e.eventId)).size).toBe(total)
      expect(log.every((e, i) => i === 0 || (log[i - 1] as RecordedEvent).position < e.position)).toBe(true)
      for (const events of seen) expect(events).toEqual(log)
    }).pipe(Effect.scoped)
  )

  it.live(
    "a transaction left open anywhere on the server is named in a warning, counted by the gauge, and waited for",
    () =>
      Effect.gen(function* () {
        const { url } = yield* server.freshDatabase
        const { url: otherUrl, database: otherDatabase } = yield* server.freshDatabase
        const store = yield* storeIn(PostgresEventStore.layer({ url }))
        const recording = makeRecordingLogger()
        const queue = yield* Queue.unbounded<LogMessage.LogMessage>()
        yield* Effect.forkScoped(
          Stream.runForEach(store.subscribe({ stallWarning: "300 millis" }), (message) =>
            Queue.offer(queue, message)
          ).pipe(Effect.provide(recording.layer))
        )
        expect((yield* Queue.take(queue))._tag).toBe("CaughtUp")

        // An idle transaction in another database, holding its transaction id.
        const blocker = yield* openTransaction(otherUrl)
        const held = (yield* store.append(
          writesOf({ streamId: id("held"), expected: "no_stream", events: testEvents(1) })
        )).events[0] as RecordedEvent

        const warning = yield* Effect.gen(function* () {
          for (;;) {
            const found = recording.logs.find(
              (log) => log.level === "WARN" && String(log.message).includes("holds the global log back")
            )
            if (found !== undefined) return found
            yield* Effect.sleep("50 millis")
          }
        }).pipe(Effect.timeout("20 seconds"))
        expect(warning.annotations).toMatchObject({
          pid: blocker.pid,
          database: otherDatabase,
          state: "idle in transaction"
        })
        expect(warning.annotations.openForSeconds).toBeGreaterThanOrEqual(0)
        expect((yield* Metric.value(EventStore.heldBackGauge)).value).toBeGreaterThan(0.2)
        expect(yield* Queue.size(queue)).toBe(0)

        yield* blocker.end
        const delivered = yield* Queue.take(queue).pipe(Effect.timeout("10 seconds"))
        expect(delivered).toEqual(LogMessage.Event({ event: held }))
        expect((yield* Queue.take(queue))._tag).toBe("CaughtUp")
        expect((yield* Metric.value(EventStore.heldBackGauge)).value).toBe(0)
        expect(recording.logs.some((log) => String(log.message).includes("no longer held back"))).toBe(true)
      }).pipe(Effect.scoped)
  )

  it.live("interrupted subscriptions give back every pool permit: a pool of one still appends", () =>
    Effect.gen(function* () {
      const { url } = yield* server.freshDatabase
      const store = yield* storeIn(PostgresEventStore.layer({ url, maxConnections: 1, acquireTimeout: "5 seconds" }))
      for (let round = 0; round < 5; round++) {
        const fibers = yield* Effect.forEach([0, 1, 2], () => Effect.fork(Stream.runDrain(store.subscribe())))
        yield* Effect.sleep(`${20 + round * 15} millis`)
        yield* Effect.forEach(fibers, Fiber.interrupt)
        const appended = yield* store.append(
          writesOf({ streamId: id("pool"), expected: round === 0 ? "no_stream" : round, events: testEvents(1) })
        )
        expect(appended.streamVersions.get(id("pool"))).toBe(round + 1)
      }
    }).pipe(Effect.scoped)
  )

  describe("restore safety", () => {
    it.live("a store whose events carry transaction ids ahead of the server is refused, saying how to fix it", () =>
      Effect.gen(function* () {
        const { url } = yield* server.freshDatabase
        const client = yield* connection(url)
        // As if restored from a cluster 23 epochs ahead.
        yield* Effect.promise(
          () => client`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data, transaction_id)
            values (${randomUUID()}, 'restored', 1, 'Restored', '{}', '99999999999')`
        )
        const attempts: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
          Effect.scoped(storeIn(PostgresEventStore.layer({ url }))),
          PostgresEventStore.migrate({ url })
        ]
        for (const attempt of attempts) {
          const exit = yield* Effect.exit(attempt)
          expect(Exit.isFailure(exit)).toBe(true)
          const error = (Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined) as
            | { readonly _tag: string; readonly message: string }
            | undefined
          expect(error?._tag).toBe("StoreError")
          expect(error?.message).toContain("written by transactions up to 99999999999")
          expect(error?.message).toContain("pg_resetwal --epoch=24")
        }
      }).pipe(Effect.scoped)
    )

    it.live("a store written by this server opens", () =>
      Effect.gen(function* () {
        const { url } = yield* server.freshDatabase
        const store = yield* storeIn(PostgresEventStore.layer({ url }))
        yield* store.append(writesOf({ streamId: id("ok"), expected: "no_stream", events: testEvents(2) }))
        const reopened = yield* storeIn(PostgresEventStore.layer({ url }))
        expect((yield* readUntil(reopened, LogPosition.start, 2)).length).toBe(2)
      }).pipe(Effect.scoped)
    )
  })
})
