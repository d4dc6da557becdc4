import { describe, expect, it } from "@effect/vitest"
import { Clock, Data, Effect, Exit, Fiber, Layer, Metric, Option, Schedule, Schema, TestClock } from "effect"
import { Command, EventStore, execute, InMemoryEventStore, StreamId, StreamWrites, VersionConflict } from "eventcore"
import { writesOf } from "eventcore/testing"
import {
  AccountEvent,
  accountStream,
  applyAccountEvent,
  balanceOf,
  Deposit,
  InsufficientFunds,
  initialState,
  MoneyDeposited,
  Open,
  Transfer
} from "../src/demo/domain.js"
import { retryCounter } from "../src/execute.js"
import { interceptStore, makeRecordingLogger, makeRecordingTracer } from "./support/recording.js"

const store = EventStore.EventStore

const versionOf = (streamId: StreamId.StreamId) =>
  Effect.flatMap(store, (s) => s.readStream(streamId)).pipe(
    Effect.map((read) => read.version),
    Effect.catchTag("StreamNotFound", () => Effect.succeed(0))
  )

const openWith = (account: string, amount: number) =>
  Effect.zipRight(
    execute(Open, { account, owner: account }),
    amount > 0 ? Effect.asVoid(execute(Deposit, { account, amount })) : Effect.void
  )

/** Appends a deposit straight to the store, as a concurrent writer would. */
const interfere = (s: EventStore.EventStore, account: string, amount = 1) =>
  s.append(
    writesOf({
      streamId: accountStream(account),
      expected: "any",
      events: [
        { eventType: "MoneyDeposited", data: Schema.encodeSync(MoneyDeposited)({ _tag: "MoneyDeposited", amount }) }
      ]
    })
  )

const withStore = <A, E>(
  effect: Effect.Effect<A, E, EventStore.EventStore>,
  hooks: Parameters<typeof interceptStore>[0] = {}
) => Effect.provide(effect, interceptStore(hooks).pipe(Layer.provide(InMemoryEventStore.layer)))

const noRetry = Schedule.stop

/** Only transfers involve two participants. */
const isTransfer = (writes: StreamWrites.StreamWrites) => StreamWrites.participants(writes).length === 2

describe("execute", () => {
  it("without options, its requirements are the store's and the command's, even where an outer type is expected", async () => {
    // Inside Effect.all an unconstrained retry requirement was inferred as any,
    // and providing the store then did not type-check for runPromise.
    const [opened, deposited] = await Effect.runPromise(
      Effect.all([
        execute(Open, { account: "typed", owner: "T" }),
        execute(Deposit, { account: "typed", amount: 5 })
      ]).pipe(Effect.provide(InMemoryEventStore.layer))
    )
    expect([opened.attempts, deposited.events.length]).toEqual([1, 1])
  })

  it.live("a transfer moves money between two accounts in one atomic append", () =>
    withStore(
      Effect.gen(function* () {
        yield* openWith("alice", 100)
        yield* openWith("bob", 5)
        const result = yield* execute(Transfer, { from: "alice", to: "bob", amount: 30 })
        expect(result.attempts).toBe(1)
        expect(result.events.map((e) => [e.streamId, e.eventType, e.data])).toEqual([
          [accountStream("alice"), "TransferSent", { to: "bob", amount: 30 }],
          [accountStream("bob"), "TransferReceived", { from: "alice", amount: 30 }]
        ])
        expect(result.streamVersions).toEqual(
          new Map([
            [accountStream("alice"), 3],
            [accountStream("bob"), 3]
          ])
        )
        expect(yield* balanceOf("alice")).toBe(70)
        expect(yield* balanceOf("bob")).toBe(35)
      })
    )
  )

  it.live("a conflict on the destination retries from the read and succeeds", () => {
    let injected = false
    return withStore(
      Effect.gen(function* () {
        yield* openWith("alice", 100)
        yield* openWith("bob", 0)
        injected = true
        const result = yield* execute(Transfer, { from: "alice", to: "bob", amount: 40 })
        expect(result.attempts).toBe(2)
        // The retry read the interfering deposit: bob has it and the transfer.
        expect(yield* balanceOf("bob")).toBe(47)
        expect(yield* balanceOf("alice")).toBe(60)
        expect(yield* versionOf(accountStream("bob"))).toBe(3)
      }),
      {
        beforeAppend: (s, _writes, n) => {
          if (!injected || n > 5) return Effect.void
          injected = false
          return Effect.asVoid(interfere(s, "bob", 7))
        }
      }
    )
  })

  it.live("concurrent transfers over few accounts neither create nor destroy money, and never overdraw", () =>
    withStore(
      Effect.gen(function* () {
        const accounts = ["a", "b", "c", "d"]
        for (const account of accounts) yield* openWith(account, 1_000)
        const latch = yield* Effect.makeLatch(false)
        let seed = 42
        const random = () => {
          seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
          return seed / 2_147_483_648
        }
        const transfers = Array.from({ length: 16 }, () =>
          Array.from({ length: 20 }, () => {
            const from = accounts[Math.floor(random() * 4)] as string
            const to = accounts[Math.floor(random() * 4)] as string
            return { from, to: from === to ? (accounts[(accounts.indexOf(from) + 1) % 4] as string) : to }
          }).map((t) => ({ ...t, amount: 1 + Math.floor(random() * 400) }))
        )
        const retry = Schedule.spaced("1 millis").pipe(Schedule.intersect(Schedule.recurs(200)))
        const fibers = yield* Effect.forEach(transfers, (batch) =>
          Effect.fork(
            latch.await.pipe(
              Effect.zipRight(
                Effect.forEach(batch, (input) =>
                  execute(Transfer, input, { retry }).pipe(
                    Effect.map((r) => ({ ok: true as const, attempts: r.attempts })),
                    Effect.catchTag("InsufficientFunds", () => Effect.succeed({ ok: false as const, attempts: 1 }))
                  )
                )
              )
            )
          )
        )
        yield* latch.open
        const outcomes = (yield* Fiber.joinAll(fibers)).flat()
        const balances = yield* Effect.forEach(accounts, balanceOf)
        expect(balances.reduce((a, b) => a + b, 0)).toBe(4_000)
        for (const balance of balances) expect(balance).toBeGreaterThanOrEqual(0)
        // The test is only meaningful if transfers really raced and some were refused.
        expect(outcomes.reduce((n, o) => n + o.attempts, 0)).toBeGreaterThan(outcomes.length)
        expect(outcomes.some((o) => o.ok)).toBe(true)
        expect(outcomes.some((o) => !o.ok)).toBe(true)
      }),
      // Yielding after each read lets other fibers commit between a command's read and its append.
      { afterRead: Effect.yieldNow() }
    )
  )

  it.live("a domain error fails at once, without retrying, and writes nothing", () => {
    let reads = 0
    return withStore(
      Effect.gen(function* () {
        yield* openWith("poor", 10)
        yield* openWith("rich", 10)
        reads = 0
        const error = yield* Effect.flip(execute(Transfer, { from: "poor", to: "rich", amount: 11 }))
        expect(error).toEqual(new InsufficientFunds({ account: "poor", balance: 10, requested: 11 }))
        // One attempt: each of the two accounts read once.
        expect(reads).toBe(2)
        expect(yield* versionOf(accountStream("poor"))).toBe(2)
        expect(yield* versionOf(accountStream("rich"))).toBe(2)
      }),
      { onRead: () => reads++ }
    )
  })

  it.live("an event for a stream the command did not read fails with UndeclaredStream and writes nothing", () => {
    const Sneaky = Command.make({
      name: "Sneaky",
      event: AccountEvent,
      streams: (_: undefined) => [accountStream("read")],
      initialState,
      apply: applyAccountEvent,
      decide: () =>
        Effect.succeed([
          { streamId: accountStream("read"), event: MoneyDeposited.make({ amount: 1 }) },
          { streamId: accountStream("unread"), event: MoneyDeposited.make({ amount: 1 }) }
        ])
    })
    return withStore(
      Effect.gen(function* () {
        const error = yield* Effect.flip(execute(Sneaky, undefined))
        expect(error).toMatchObject({ _tag: "UndeclaredStream", streamId: accountStream("unread") })
        expect(yield* versionOf(accountStream("read"))).toBe(0)
        expect(yield* versionOf(accountStream("unread"))).toBe(0)
      })
    )
  })

  it.live("retries stop when the schedule ends and fail with the last VersionConflict", () => {
    let appends = 0
    return withStore(
      Effect.gen(function* () {
        yield* openWith("hot", 100)
        yield* openWith("cold", 0)
        appends = 0
        const error = yield* Effect.flip(
          execute(Transfer, { from: "hot", to: "cold", amount: 1 }, { retry: Schedule.recurs(2) })
        )
        expect(error).toBeInstanceOf(VersionConflict)
        expect(error).toMatchObject({ streamId: accountStream("hot") })
        expect(appends).toBe(3)
        // Three interfering deposits landed, the transfer never did.
        expect(yield* balanceOf("hot")).toBe(103)
        expect(yield* balanceOf("cold")).toBe(0)
      }),
      {
        beforeAppend: (s, writes) => {
          if (!isTransfer(writes)) return Effect.void
          appends++
          return Effect.asVoid(interfere(s, "hot"))
        }
      }
    )
  })

  it.live("the default schedule retries 4 times, then reports 5 attempts worth of conflicts", () => {
    let transfers = 0
    return withStore(
      Effect.gen(function* () {
        yield* openWith("x", 100)
        yield* openWith("y", 0)
        const error = yield* Effect.flip(execute(Transfer, { from: "x", to: "y", amount: 1 }))
        expect(error._tag).toBe("VersionConflict")
        expect(transfers).toBe(5)
      }),
      {
        beforeAppend: (s, writes) => {
          if (!isTransfer(writes)) return Effect.void
          transfers++
          return Effect.asVoid(interfere(s, "y"))
        }
      }
    )
  })

  it.effect("the default schedule waits about 10, 20, 40 and 80 ms (±20%) before the retries", () => {
    const attemptedAt: Array<number> = []
    return withStore(
      Effect.gen(function* () {
        yield* openWith("w", 100)
        yield* openWith("v", 0)
        const fiber = yield* Effect.fork(execute(Transfer, { from: "w", to: "v", amount: 1 }))
        yield* TestClock.adjust("1 second")
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error._tag).toBe("VersionConflict")
        const waits = attemptedAt.slice(1).map((at, i) => at - (attemptedAt[i] ?? Number.NaN))
        expect(waits).toHaveLength(4)
        waits.forEach((wait, i) => {
          const nominal = 10 * 2 ** i
          expect(wait).toBeGreaterThanOrEqual(0.8 * nominal)
          expect(wait).toBeLessThanOrEqual(1.2 * nominal)
        })
      }),
      {
        beforeAppend: (s, writes) =>
          isTransfer(writes)
            ? Effect.flatMap(Clock.currentTimeMillis, (now) => {
                attemptedAt.push(now)
                return Effect.asVoid(interfere(s, "v"))
              })
            : Effect.void
      }
    )
  })

  it.live("attempts count the conflicts that were retried", () => {
    let conflictsLeft = 3
    return withStore(
      Effect.gen(function* () {
        yield* openWith("m", 100)
        yield* openWith("n", 0)
        const result = yield* execute(Transfer, { from: "m", to: "n", amount: 10 }, { retry: Schedule.recurs(10) })
        expect(result.attempts).toBe(4)
        expect(yield* balanceOf("n")).toBe(13)
      }),
      {
        beforeAppend: (s, writes) => {
          if (!isTransfer(writes) || conflictsLeft === 0) return Effect.void
          conflictsLeft--
          return Effect.asVoid(interfere(s, "n"))
        }
      }
    )
  })

  describe("dynamic discovery", () => {
    // A "team" stream names its members; the command reads the team, discovers
    // the members' streams from it and pays each member.
    const TeamEvent = Schema.Union(
      Schema.TaggedStruct("MemberAdded", { member: Schema.String }),
      Schema.TaggedStruct("Paid", { amount: Schema.Int })
    )
    type TeamEvent = typeof TeamEvent.Type
    // A literal id: validating it here, at collection time, would make StreamId's code static for Stryker.
    const team = "team-1" as StreamId.StreamId
    const member = (name: string) => StreamId.unsafeMake(`member-${name}`)
    const PayTeam = Command.make({
      name: "PayTeam",
      event: TeamEvent,
      streams: () => [team],
      initialState: { members: [] as ReadonlyArray<string>, paid: 0 },
      apply: (state, event: TeamEvent) =>
        event._tag === "MemberAdded"
          ? { ...state, members: [...state.members, event.member] }
          : { ...state, paid: state.paid + event.amount },
      discover: (state) => state.members.map(member),
      decide: (state) =>
        Effect.succeed(
          state.members.map((name) => ({
            streamId: member(name),
            event: TeamEvent.members[1].make({ amount: 10 })
          }))
        )
    })
    const seedTeam = Effect.flatMap(store, (s) =>
      s.append(
        writesOf(
          {
            streamId: team,
            expected: "no_stream",
            events: ["ann", "ben"].map((m) => ({ eventType: "MemberAdded", data: { member: m } }))
          },
          { streamId: member("ann"), expected: "no_stream", events: [{ eventType: "Paid", data: { amount: 1 } }] }
        )
      )
    )

    it.live("reads each declared and discovered stream once per attempt and writes to discovered streams", () => {
      const reads: Array<string> = []
      return withStore(
        Effect.gen(function* () {
          yield* seedTeam
          reads.length = 0
          const result = yield* execute(PayTeam, undefined)
          expect(reads).toEqual([team, member("ann"), member("ben")])
          expect(result.streamVersions).toEqual(
            new Map([
              [team, 2],
              [member("ann"), 2],
              [member("ben"), 1]
            ])
          )
        }),
        { onRead: (id) => reads.push(id) }
      )
    })

    it.live("a discovered stream that changed since the read makes the attempt conflict", () => {
      let armed = false
      return withStore(
        Effect.gen(function* () {
          yield* seedTeam
          armed = true
          const error = yield* Effect.flip(execute(PayTeam, undefined, { retry: noRetry }))
          expect(error).toMatchObject({ _tag: "VersionConflict", streamId: member("ben"), expected: 0, actual: 1 })
          expect(yield* versionOf(member("ann"))).toBe(1)
          expect(yield* versionOf(team)).toBe(2)
        }),
        {
          beforeAppend: (s) => {
            if (!armed) return Effect.void
            armed = false
            return Effect.asVoid(
              s.append(
                writesOf({
                  streamId: member("ben"),
                  expected: "any",
                  events: [{ eventType: "Paid", data: { amount: 5 } }]
                })
              )
            )
          }
        }
      )
    })
  })

  it.live("events that no longer decode fail with EventDecodeError naming the event", () =>
    withStore(
      Effect.gen(function* () {
        const s = yield* store
        yield* s.append(
          writesOf({
            streamId: accountStream("legacy"),
            expected: "no_stream",
            events: [
              { eventType: "AccountOpened", data: { owner: "old" } },
              { eventType: "MoneyDeposited", data: { cents: 5 } }
            ]
          })
        )
        const error = yield* Effect.flip(execute(Deposit, { account: "legacy", amount: 1 }))
        expect(error).toMatchObject({
          _tag: "EventDecodeError",
          streamId: accountStream("legacy"),
          streamVersion: 2,
          eventType: "MoneyDeposited"
        })
      })
    )
  )

  it.live("an event type the schema does not know fails with UnknownEventType and writes nothing", () =>
    withStore(
      Effect.gen(function* () {
        const s = yield* store
        yield* s.append(
          writesOf({
            streamId: accountStream("retired"),
            expected: "no_stream",
            events: [
              { eventType: "AccountOpened", data: { owner: "old" } },
              { eventType: "AccountFrozen", data: { reason: "retired event type" } }
            ]
          })
        )
        const error = yield* Effect.flip(execute(Deposit, { account: "retired", amount: 1 }))
        expect(error).toMatchObject({
          _tag: "UnknownEventType",
          streamId: accountStream("retired"),
          streamVersion: 2,
          eventType: "AccountFrozen"
        })
        expect(yield* versionOf(accountStream("retired"))).toBe(2)
      })
    )
  )

  it.live("events the schema cannot encode fail with EventEncodeError and write nothing", () => {
    // The event is built as a plain object, skipping the validation `make` would do.
    const Careless = Command.make({
      name: "Careless",
      event: AccountEvent,
      streams: (_: undefined) => [accountStream("enc")],
      initialState,
      apply: applyAccountEvent,
      decide: () =>
        Effect.succeed([{ streamId: accountStream("enc"), event: { _tag: "MoneyDeposited" as const, amount: 1.5 } }])
    })
    return withStore(
      Effect.gen(function* () {
        yield* execute(Open, { account: "enc", owner: "o" })
        const error = yield* Effect.flip(execute(Careless, undefined))
        expect(error).toMatchObject({
          _tag: "EventEncodeError",
          streamId: accountStream("enc"),
          eventType: "MoneyDeposited"
        })
        expect(yield* versionOf(accountStream("enc"))).toBe(1)
      })
    )
  })

  it.live("metadata given to execute is stored with every event", () =>
    withStore(
      Effect.gen(function* () {
        yield* openWith("meta-a", 10)
        yield* openWith("meta-b", 0)
        const result = yield* execute(
          Transfer,
          { from: "meta-a", to: "meta-b", amount: 1 },
          { metadata: { correlationId: "req-7" } }
        )
        const [first, second] = result.events.map((e) => e.metadata)
        expect(first).toEqual({ correlationId: "req-7", causationId: expect.stringMatching(/^[0-9a-f-]{36}$/) })
        expect(second).toEqual(first)
      })
    )
  )

  it.live("each retry is logged at warning level with the attempt and the conflicting stream, inside a span", () => {
    const { logs, layer: loggerLayer } = makeRecordingLogger()
    const { spans, layer: tracerLayer } = makeRecordingTracer()
    let conflictsLeft = 2
    return withStore(
      Effect.gen(function* () {
        yield* openWith("log-a", 10)
        yield* openWith("log-b", 0)
        logs.length = 0
        spans.length = 0
        yield* execute(Transfer, { from: "log-a", to: "log-b", amount: 1 })
        const warnings = logs.filter((l) => l.level === "WARN")
        expect(warnings.map((w) => w.annotations.attempt)).toEqual([2, 3])
        expect(warnings[0]?.annotations).toMatchObject({ command: "Transfer", stream: accountStream("log-b") })
        const executeSpan = spans.find((s) => s.name === "eventcore.execute")
        expect(executeSpan?.attributes.get("eventcore.command")).toBe("Transfer")
        expect(executeSpan?.attributes.get("eventcore.attempts")).toBe(3)
        expect(executeSpan && Exit.isSuccess(executeSpan.exit as Exit.Exit<unknown, unknown>)).toBe(true)
        const transferAppends = spans.filter(
          (s) =>
            s.name === "eventcore.append" &&
            s.parentName === "eventcore.execute" &&
            s.attributes.get("eventcore.stream_count") === 2
        )
        expect(transferAppends).toHaveLength(3)
      }).pipe(Effect.provide(Layer.merge(loggerLayer, tracerLayer))),
      {
        beforeAppend: (s, writes) => {
          if (!isTransfer(writes) || conflictsLeft === 0) return Effect.void
          conflictsLeft--
          return Effect.asVoid(interfere(s, "log-b"))
        }
      }
    )
  })
})

describe("execute, edge cases", () => {
  it.live("a command that decides nothing appends nothing and reports the versions it read", () => {
    let appends = 0
    const Nothing = Command.make({
      name: "Nothing",
      event: AccountEvent,
      streams: (_: undefined) => [accountStream("idle"), accountStream("never")],
      initialState,
      apply: applyAccountEvent,
      decide: () => Effect.succeed([])
    })
    return withStore(
      Effect.gen(function* () {
        yield* openWith("idle", 5)
        appends = 0
        const result = yield* execute(Nothing, undefined)
        expect(result).toEqual({
          attempts: 1,
          events: [],
          streamVersions: new Map([
            [accountStream("idle"), 2],
            [accountStream("never"), 0]
          ])
        })
        expect(appends).toBe(0)
      }),
      { beforeAppend: () => Effect.sync(() => void appends++) }
    )
  })

  it.live("an event for an unread stream is refused as undeclared before it is encoded", () => {
    const Sneaky = Command.make({
      name: "SneakyInvalid",
      event: AccountEvent,
      streams: (_: undefined) => [accountStream("read")],
      initialState,
      apply: applyAccountEvent,
      // An amount the schema refuses to encode, for a stream the command never read.
      decide: () =>
        Effect.succeed([
          { streamId: accountStream("elsewhere"), event: { _tag: "MoneyDeposited", amount: -1 } as never }
        ])
    })
    return withStore(
      Effect.gen(function* () {
        const error = yield* Effect.flip(execute(Sneaky, undefined))
        expect(error).toMatchObject({ _tag: "UndeclaredStream", streamId: accountStream("elsewhere") })
      })
    )
  })

  it.live("an event whose encoded form is not an object is stored as encoded and read back", () => {
    // Encoded as a tuple: ["Moved", x, y].
    const Moved = Schema.TaggedStruct("Moved", { x: Schema.Number, y: Schema.Number })
    const MovedAsTuple = Schema.transform(Schema.Tuple(Schema.Literal("Moved"), Schema.Number, Schema.Number), Moved, {
      strict: true,
      decode: ([, x, y]) => Moved.make({ x, y }),
      encode: ({ x, y }) => ["Moved", x, y] as const
    })
    const point = StreamId.unsafeMake("point")
    const Move = Command.make({
      name: "Move",
      event: MovedAsTuple,
      streams: (_: { readonly dx: number }) => [point],
      initialState: { x: 0, moves: 0 },
      apply: (state, event) => ({ x: event.x, moves: state.moves + 1 }),
      decide: (state, { dx }) => Effect.succeed([{ streamId: point, event: Moved.make({ x: state.x + dx, y: 0 }) }])
    })
    return withStore(
      Effect.gen(function* () {
        const first = yield* execute(Move, { dx: 2 })
        expect(first.events.map((e) => [e.eventType, e.data])).toEqual([["Moved", ["Moved", 2, 0]]])
        const second = yield* execute(Move, { dx: 3 })
        expect(second.events.map((e) => e.data)).toEqual([["Moved", 5, 0]])
      })
    )
  })

  it.live("events encoded as a string or as null are stored as encoded and read back", () => {
    const Named = Schema.TaggedStruct("Named", { name: Schema.String })
    const NamedAsString = Schema.transform(Schema.String, Named, {
      strict: true,
      decode: (name) => Named.make({ name }),
      encode: ({ name }) => name
    })
    const Cleared = Schema.TaggedStruct("Cleared", {})
    const ClearedAsNull = Schema.transform(Schema.Null, Cleared, {
      strict: true,
      decode: () => Cleared.make({}),
      encode: () => null
    })
    const label = StreamId.unsafeMake("label")
    const Relabel = Command.make({
      name: "Relabel",
      event: Schema.Union(NamedAsString, ClearedAsNull),
      streams: (_: { readonly name: string | null }) => [label],
      initialState: { names: [] as ReadonlyArray<string | null> },
      apply: (state, event) => ({ names: [...state.names, event._tag === "Named" ? event.name : null] }),
      decide: (state, { name }) =>
        Effect.succeed([
          {
            streamId: label,
            event: name === null ? Cleared.make({}) : Named.make({ name: `${state.names.length}:${name}` })
          }
        ])
    })
    return withStore(
      Effect.gen(function* () {
        const first = yield* execute(Relabel, { name: "ab" })
        expect(first.events.map((e) => [e.eventType, e.data])).toEqual([["Named", "0:ab"]])
        const second = yield* execute(Relabel, { name: null })
        expect(second.events.map((e) => [e.eventType, e.data])).toEqual([["Cleared", null]])
        // The third decision folds both stored events back through the schema.
        const third = yield* execute(Relabel, { name: "cd" })
        expect(third.events.map((e) => e.data)).toEqual(["2:cd"])
      })
    )
  })

  it.live("a domain error that is not an object (a string, null, undefined) fails at once, without retrying", () => {
    let decisions = 0
    const refuseWith = (error: string | null | undefined) =>
      Command.make({
        name: "RefuseWith",
        event: AccountEvent,
        streams: (_: undefined) => [accountStream("plain")],
        initialState,
        apply: applyAccountEvent,
        decide: () =>
          Effect.suspend(() => {
            decisions++
            return Effect.fail(error)
          })
      })
    return withStore(
      Effect.gen(function* () {
        expect(yield* Effect.flip(execute(refuseWith("no"), undefined))).toBe("no")
        expect(yield* Effect.flip(execute(refuseWith(null), undefined))).toBeNull()
        const exit = yield* Effect.exit(execute(refuseWith(undefined), undefined))
        expect(exit).toEqual(Exit.fail(undefined))
        expect(decisions).toBe(3)
      })
    )
  })

  it.live("each retry counts in eventcore_command_retries and logs what happened", () => {
    const { logs, layer: loggerLayer } = makeRecordingLogger()
    let conflictsLeft = 1
    return withStore(
      Effect.gen(function* () {
        yield* openWith("m-a", 10)
        yield* openWith("m-b", 0)
        logs.length = 0
        const count = Effect.map(Metric.value(retryCounter), (state) => state.count)
        const before = yield* count
        const result = yield* execute(Transfer, { from: "m-a", to: "m-b", amount: 1 })
        expect(result.attempts).toBe(2)
        expect(yield* count).toBe(before + 1)
        const key = (yield* Metric.snapshot).find(
          (pair) => pair.metricKey.name === "eventcore_command_retries"
        )?.metricKey
        expect(key?.description).toEqual(Option.some("command attempts re-run after a version conflict"))
        expect(logs.filter((l) => l.level === "WARN").map((l) => l.message)).toEqual([
          ["eventcore: version conflict, running the command again"]
        ])
      }).pipe(Effect.provide(loggerLayer)),
      {
        beforeAppend: (s, writes) => {
          if (!isTransfer(writes) || conflictsLeft === 0) return Effect.void
          conflictsLeft--
          return Effect.asVoid(interfere(s, "m-b"))
        }
      }
    )
  })

  it.live("discovery goes on until a round finds no new stream", () => {
    // A chain: each link's stream names the next; the command reads to its end.
    const Link = Schema.TaggedStruct("Link", { next: Schema.String })
    const link = (name: string) => StreamId.unsafeMake(`link-${name}`)
    const Walk = Command.make({
      name: "Walk",
      event: Link,
      streams: (_: undefined) => [link("a")],
      initialState: { seen: [] as ReadonlyArray<string> },
      apply: (state, event) => ({ seen: [...state.seen, event.next] }),
      discover: (state) => state.seen.map(link),
      decide: (state) =>
        Effect.succeed(state.seen.length === 3 ? [] : [{ streamId: link("a"), event: Link.make({ next: "x" }) }])
    })
    return withStore(
      Effect.gen(function* () {
        const s = yield* store
        for (const [from, to] of [
          ["a", "b"],
          ["b", "c"],
          ["c", "d"]
        ] as const) {
          yield* s.append(
            writesOf({
              streamId: link(from),
              expected: "no_stream",
              events: [{ eventType: "Link", data: { next: to } }]
            })
          )
        }
        const result = yield* execute(Walk, undefined)
        expect([...result.streamVersions.keys()]).toEqual([link("a"), link("b"), link("c"), link("d")])
        expect(result.events).toEqual([])
      })
    )
  })
})

describe("Command.make", () => {
  class Refused extends Data.TaggedError("Refused")<{ readonly reason: string }> {}
  it("infers the input, state and domain error types from the definition", () => {
    const Refuse = Command.make({
      name: "Refuse",
      event: AccountEvent,
      streams: (input: { readonly account: string }) => [accountStream(input.account)],
      initialState,
      apply: applyAccountEvent,
      decide: () => Effect.fail(new Refused({ reason: "no" }))
    })
    const program: Effect.Effect<
      unknown,
      Refused | VersionConflict | { readonly _tag: string },
      EventStore.EventStore
    > = execute(Refuse, { account: "x" })
    expect(Refuse.name).toBe("Refuse")
    expect(Effect.isEffect(program)).toBe(true)
  })
})
