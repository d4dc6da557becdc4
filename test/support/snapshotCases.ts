/**
 * Snapshots of command state against a store, shared by the in-memory and
 * PGlite suite (test/snapshots.test.ts) and the PostgreSQL one
 * (test/postgres/snapshots.test.ts). The domain is a ledger: accounts whose
 * state is a balance and the versions folded, and a transfer that reads two
 * accounts and discovers a third (the fee account an account names).
 */
import { Deferred, Effect, Metric, Schedule, Schema, type Scope } from "effect"
import {
  Command,
  EventSchema,
  EventStore,
  type ExpectedVersion,
  execute,
  type NewEvent,
  Snapshot,
  StreamId,
  StreamWrites
} from "eventcore"
import { expect, it } from "vitest"
import { snapshotKey } from "../../src/internal/snapshots.js"
import { type StoredSnapshot, type StoreExtras, snapshotsKey } from "../../src/internal/storeContract.js"

/** Runs `body` against a fresh, empty store. */
export type WithStore = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore | Scope.Scope>) => Promise<A>

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Int })
const Withdrawn = Schema.TaggedStruct("Withdrawn", { amount: Schema.Int })
const FeeAccountNamed = Schema.TaggedStruct("FeeAccountNamed", { account: Schema.String })
const LedgerEvent = Schema.Union(Deposited, Withdrawn, FeeAccountNamed)
type LedgerEvent = typeof LedgerEvent.Type

/** Per stream, its balance and the versions folded, in order: any change of order or a lost event shows. */
const Ledger = Schema.Struct({
  accounts: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ balance: Schema.Int, versions: Schema.Array(Schema.Int) })
  }),
  feeAccount: Schema.optional(Schema.String)
})
type Ledger = typeof Ledger.Type

const emptyLedger: Ledger = { accounts: {} }

/** How many events the commands of a test folded, by name: what a snapshot saves. */
const folds = new Map<string, number>()
const foldsOf = (name: string) => folds.get(name) ?? 0

const applyLedger = (name: string) => (state: Ledger, event: LedgerEvent, recorded: Command.Recorded) => {
  folds.set(name, foldsOf(name) + 1)
  if (event._tag === "FeeAccountNamed") return { ...state, feeAccount: event.account }
  const account = state.accounts[recorded.streamId] ?? { balance: 0, versions: [] }
  const delta = event._tag === "Deposited" ? event.amount : -event.amount
  return {
    ...state,
    accounts: {
      ...state.accounts,
      [recorded.streamId]: { balance: account.balance + delta, versions: [...account.versions, recorded.streamVersion] }
    }
  }
}

interface Payment {
  readonly from: StreamId.StreamId
  readonly to: StreamId.StreamId
  readonly amount: number
}

let commands = 0

/**
 * A payment between two accounts, paying a fee of 1 to the account `from`
 * names (discovered), with snapshots as `snapshot` says (none when absent).
 * Each call makes a command of a name of its own; `seen` collects the states
 * it decided on.
 */
const payment = (options: { readonly snapshot?: Snapshot.Snapshot<Ledger>; readonly name?: string } = {}) => {
  const name = options.name ?? `Payment${++commands}`
  const seen: Array<Ledger> = []
  const command = Command.make({
    name,
    event: LedgerEvent,
    streams: (input: Payment) => [input.from, input.to],
    initialState: emptyLedger,
    apply: applyLedger(name),
    discover: (state) => (state.feeAccount === undefined ? [] : [StreamId.unsafeMake(state.feeAccount)]),
    decide: (state, input) =>
      Effect.sync(() => {
        seen.push(state)
        if (input.amount === 0) return []
        const fee =
          state.feeAccount === undefined
            ? []
            : [{ streamId: StreamId.unsafeMake(state.feeAccount), event: Deposited.make({ amount: 1 }) }]
        return [
          { streamId: input.from, event: Withdrawn.make({ amount: input.amount + fee.length }) },
          { streamId: input.to, event: Deposited.make({ amount: input.amount }) },
          ...fee
        ]
      }),
    ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot })
  })
  return { command, seen, name }
}

const snapshotOf = (version = 1, events = 100) => Snapshot.make({ state: Ledger, version, after: { events } })

const id = (name: string) => StreamId.unsafeMake(name)

/** Appends `count` deposits of 1 to `stream` without a command, in appends of up to 500. */
const deposit = (stream: StreamId.StreamId, count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    for (let done = 0; done < count; done += 500) {
      const n = Math.min(500, count - done)
      let writes = yield* StreamWrites.expect(StreamWrites.empty, stream, "any" as ExpectedVersion.ExpectedVersion)
      for (let i = 0; i < n; i++) {
        const event: NewEvent = { streamId: stream, eventType: "Deposited", data: { amount: 1 } }
        writes = yield* StreamWrites.append(writes, event)
      }
      yield* store.append(writes)
    }
  })

const written = (name: string) =>
  Metric.value(Snapshot.writtenCounter.pipe(Metric.tagged("command", name))).pipe(Effect.map((state) => state.count))

const ignored = (name: string, reason: string) =>
  Metric.value(Snapshot.ignoredCounter.pipe(Metric.tagged("command", name), Metric.tagged("reason", reason))).pipe(
    Effect.map((state) => state.count)
  )

const snapshotsOfStore = Effect.map(EventStore.EventStore, (store) => {
  const snapshots = (store as EventStore.EventStore & StoreExtras)[snapshotsKey]
  if (snapshots === undefined) throw new Error("the store keeps no snapshots")
  return snapshots
})

/** The state a command without snapshots decides on, for the same input: the full fold. */
const fullFold = (input: Payment) =>
  Effect.gen(function* () {
    const reference = payment()
    yield* execute(reference.command, { ...input, amount: 0 })
    return reference.seen[0]
  })

export const defineSnapshotTests = (withFreshStore: WithStore) => {
  // Every test waits for the snapshots it started writing before its store goes.
  const withStore: WithStore = (body) => withFreshStore(Effect.zipLeft(body, Snapshot.awaitWrites))
  it("reads the snapshot and only the events after it, to the state a full fold gives", () =>
    withStore(
      Effect.gen(function* () {
        const { command, seen, name } = payment({ snapshot: snapshotOf() })
        const input = { from: id("acc-a"), to: id("acc-b"), amount: 0 }
        yield* deposit(input.from, 250)
        yield* deposit(input.to, 30)

        yield* execute(command, input)
        expect(foldsOf(name)).toBe(280)
        yield* Snapshot.awaitWrites
        expect(yield* written(name)).toBe(1)

        yield* deposit(input.from, 7)
        yield* deposit(input.to, 3)
        yield* execute(command, input)
        // Only the 10 events after the snapshot were folded, and the state is the full fold's.
        expect(foldsOf(name)).toBe(290)
        expect(seen[1]).toEqual(yield* fullFold(input))
        expect(seen[1]?.accounts["acc-a"]?.balance).toBe(257)
        yield* Snapshot.awaitWrites
        expect(yield* written(name)).toBe(1)
      })
    ))

  it("writes no snapshot before the policy's events, and one when folding took longer than its duration", () =>
    withStore(
      Effect.gen(function* () {
        const short = payment({ snapshot: snapshotOf(1, 100) })
        const input = { from: id("short-a"), to: id("short-b"), amount: 0 }
        yield* deposit(input.from, 60)
        yield* execute(short.command, input)
        yield* Snapshot.awaitWrites
        expect(yield* written(short.name)).toBe(0)

        const slow = payment({
          snapshot: Snapshot.make({ state: Ledger, version: 1, after: { events: 1_000_000, duration: "0 millis" } })
        })
        yield* execute(slow.command, input)
        yield* Snapshot.awaitWrites
        expect(yield* written(slow.name)).toBe(1)
      })
    ))

  it("appends with the streams' current versions, and detects a conflict when a stream moved after the snapshot was read", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const input = { from: id("moved-a"), to: id("moved-b"), amount: 5 }
        yield* deposit(input.from, 150)
        const { command, name } = payment({ snapshot: snapshotOf() })
        yield* execute(command, { ...input, amount: 0 })
        yield* Snapshot.awaitWrites
        expect(yield* written(name)).toBe(1)

        // Moved after the snapshot, before the command: read in the same statement as the snapshot.
        yield* deposit(input.from, 4)
        const first = yield* execute(command, input)
        expect(first.attempts).toBe(1)
        expect(first.events.map((event) => [event.streamId, event.streamVersion])).toEqual([
          ["moved-a", 155],
          ["moved-b", 1]
        ])

        // Moved while the command decides: the append's check refuses it, the retry folds the new event.
        let moved = false
        const racing = payment({ snapshot: snapshotOf(), name })
        const racer = Command.make({
          ...racing.command,
          decide: (state, payment: Payment) =>
            Effect.gen(function* () {
              if (!moved) {
                moved = true
                yield* store
                  .append(
                    yield* StreamWrites.append(yield* StreamWrites.expect(StreamWrites.empty, input.from, 155), {
                      streamId: input.from,
                      eventType: "Deposited",
                      data: { amount: 100 }
                    })
                  )
                  .pipe(Effect.orDie)
              }
              return yield* racing.command.decide(state, payment)
            })
        })
        const second = yield* execute(racer, input)
        expect(second.attempts).toBe(2)
        expect(second.streamVersions.get(input.from)).toBe(157)
        expect(racing.seen.at(-1)?.accounts["moved-a"]?.balance).toBe(150 + 4 - 5 + 100)
      })
    ))

  it("ignores a snapshot of another state version, folds in full, and replaces it", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id("bump-a"), to: id("bump-b"), amount: 0 }
        yield* deposit(input.from, 120)
        const v1 = payment({ snapshot: snapshotOf(1) })
        yield* execute(v1.command, input)
        yield* Snapshot.awaitWrites

        const v2 = payment({ snapshot: snapshotOf(2), name: v1.name })
        const before = foldsOf(v1.name)
        yield* execute(v2.command, input)
        expect(foldsOf(v1.name) - before).toBe(120)
        expect(yield* ignored(v1.name, "version")).toBeGreaterThanOrEqual(1)
        yield* Snapshot.awaitWrites

        // The version 2 snapshot replaced version 1's, whatever it covers: the next run folds nothing.
        const after = foldsOf(v1.name)
        yield* execute(v2.command, input)
        expect(foldsOf(v1.name) - after).toBe(0)
        expect(v2.seen.at(-1)).toEqual(yield* fullFold(input))
      })
    ))

  it("ignores a snapshot whose event schema read events otherwise", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id("schema-a"), to: id("schema-b"), amount: 0 }
        yield* deposit(input.from, 110)
        const before = payment({ snapshot: snapshotOf() })
        yield* execute(before.command, input)
        yield* Snapshot.awaitWrites

        // A later release reads events of a type it no longer has past them: stored events may decode otherwise.
        const evolved = Command.make({
          ...before.command,
          event: EventSchema.evolve(LedgerEvent, { ignored: ["InterestAccrued"] })
        })
        const folded = foldsOf(before.name)
        yield* execute(evolved, input)
        expect(foldsOf(before.name) - folded).toBe(110)
        expect(yield* ignored(before.name, "version")).toBeGreaterThanOrEqual(1)
      })
    ))

  it("ignores a snapshot that does not decode, never failing the command", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id("undecodable-a"), to: id("undecodable-b"), amount: 0 }
        yield* deposit(input.from, 100)
        const first = payment({ snapshot: snapshotOf() })
        yield* execute(first.command, input)
        yield* Snapshot.awaitWrites

        // The same name and version, but a state schema that refuses what was stored.
        const Stricter = Schema.Struct({ ...Ledger.fields, feeAccount: Schema.String })
        const strict = payment({
          name: first.name,
          snapshot: Snapshot.make({
            state: Schema.transform(Stricter, Ledger, {
              strict: true,
              decode: (a) => a,
              encode: (a) => ({ ...a, feeAccount: a.feeAccount ?? "" })
            }),
            version: 1
          }) as Snapshot.Snapshot<Ledger>
        })
        const folded = foldsOf(first.name)
        yield* execute(strict.command, input)
        expect(foldsOf(first.name) - folded).toBe(100)
        expect(strict.seen[0]).toEqual(yield* fullFold(input))
        expect(yield* ignored(first.name, "undecodable")).toBeGreaterThanOrEqual(1)
      })
    ))

  it("ignores a snapshot that covers more events than a stream holds, or was stored for other streams", () =>
    withStore(
      Effect.gen(function* () {
        const snapshots = yield* snapshotsOfStore
        const input = { from: id("restored-a"), to: id("restored-b"), amount: 0 }
        yield* deposit(input.from, 20)
        const { command, seen, name } = payment({ snapshot: snapshotOf() })
        const eventVersions = "Deposited@1 FeeAccountNamed@1 Withdrawn@1"
        const stored = (streams: StoredSnapshot["streams"]): StoredSnapshot => ({
          command: name,
          key: snapshotKey([input.from, input.to]),
          stateVersion: 1,
          eventVersions,
          streams,
          state: { accounts: { "restored-a": { balance: 1_000_000, versions: [] } } }
        })

        // As after a restore from an older backup: the snapshot is ahead of the stream.
        expect(
          yield* snapshots.save(
            stored([
              [input.from, 25],
              [input.to, 0]
            ])
          )
        ).toBe(true)
        yield* execute(command, input)
        expect(foldsOf(name)).toBe(20)
        expect(seen[0]).toEqual(yield* fullFold(input))
        expect(yield* ignored(name, "streams")).toBe(1)

        // The same key, another list of streams (what a hash collision would look like).
        yield* snapshots.clear(name)
        yield* snapshots.save(
          stored([
            [id("restored-c"), 3],
            [input.to, 0]
          ])
        )
        yield* execute(command, input)
        expect(foldsOf(name)).toBe(40)
        expect(seen[1]).toEqual(seen[0])
        expect(yield* ignored(name, "streams")).toBe(2)

        // A discovered stream the snapshot covers further than it goes, read after the declared ones.
        yield* snapshots.clear(name)
        yield* snapshots.save(
          stored([
            [input.from, 20],
            [input.to, 0],
            [id("restored-fees"), 7]
          ])
        )
        yield* execute(command, input)
        expect(foldsOf(name)).toBe(60)
        expect(seen[2]).toEqual(seen[0])
        expect(yield* ignored(name, "streams")).toBe(3)
      })
    ))

  it("reads streams whose ids hold quotes, backslashes, commas, braces and NULL-looking text", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id('acc "a", {b}'), to: id('acc\\b\\"NULL'), amount: 0 }
        yield* deposit(input.from, 120)
        yield* deposit(input.to, 3)
        const { command, seen, name } = payment({ snapshot: snapshotOf() })
        yield* execute(command, input)
        yield* Snapshot.awaitWrites
        yield* deposit(input.to, 2)
        const folded = foldsOf(name)
        yield* execute(command, input)
        expect(foldsOf(name) - folded).toBe(2)
        expect(seen[1]).toEqual(yield* fullFold(input))
        expect(seen[1]?.accounts[input.to]?.balance).toBe(5)
      })
    ))

  it("covers discovered streams: their events after the snapshot are folded, and their versions checked", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const input = { from: id("multi-a"), to: id("multi-b"), amount: 0 }
        const fees = id("multi-fees")
        yield* store.append(
          yield* StreamWrites.append(yield* StreamWrites.expect(StreamWrites.empty, input.from, "no_stream"), {
            streamId: input.from,
            eventType: "FeeAccountNamed",
            data: { account: fees }
          })
        )
        yield* deposit(input.from, 60)
        yield* deposit(input.to, 40)
        yield* deposit(fees, 50)
        const { command, seen, name } = payment({ snapshot: snapshotOf() })
        yield* execute(command, input)
        expect(foldsOf(name)).toBe(151)
        yield* Snapshot.awaitWrites

        const snapshots = yield* snapshotsOfStore
        const load = yield* snapshots.load({
          command: name,
          key: snapshotKey([input.from, input.to]),
          stateVersion: 1,
          eventVersions: "",
          streams: [input.from, input.to]
        })
        expect(load.found?.streams).toEqual([
          ["multi-a", 61],
          ["multi-b", 40],
          ["multi-fees", 50]
        ])

        yield* deposit(fees, 2)
        yield* deposit(input.to, 1)
        const expected = yield* fullFold(input)
        const paid = yield* execute(command, { ...input, amount: 3 })
        expect(foldsOf(name)).toBe(154)
        expect(seen[1]).toEqual(expected)
        expect(paid.events.map((event) => [event.streamId, event.streamVersion])).toEqual([
          ["multi-a", 62],
          ["multi-b", 42],
          ["multi-fees", 53]
        ])
      })
    ))

  it("never replaces a snapshot with an older one, whatever order concurrent writers finish in", () =>
    withStore(
      Effect.gen(function* () {
        const snapshots = yield* snapshotsOfStore
        const stream = id("race-a")
        const start = yield* Deferred.make<void>()
        const at = (version: number): StoredSnapshot => ({
          command: "Race",
          key: "k",
          stateVersion: 1,
          eventVersions: "Deposited@1",
          streams: [[stream, version]],
          state: { version }
        })
        const versions = Array.from({ length: 40 }, (_, i) => ((i * 17) % 40) + 1)
        yield* Effect.forEach(
          versions,
          (version) => Deferred.await(start).pipe(Effect.zipRight(snapshots.save(at(version)))),
          {
            concurrency: "unbounded"
          }
        ).pipe(
          Effect.fork,
          Effect.tap(() => Deferred.succeed(start, undefined)),
          Effect.flatMap((fiber) => fiber.await)
        )
        const load = yield* snapshots.load({
          command: "Race",
          key: "k",
          stateVersion: 1,
          eventVersions: "Deposited@1",
          streams: [stream]
        })
        expect(load.found?.streams).toEqual([["race-a", 40]])
        expect(load.found?.state).toEqual({ version: 40 })
        // An older one afterwards is refused, and says so.
        expect(yield* snapshots.save(at(39))).toBe(false)
      })
    ))

  it("keeps the newest snapshot while many commands run on the same streams at once", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id("busy-a"), to: id("busy-b"), amount: 1 }
        yield* deposit(input.from, 500)
        const { command, name } = payment({ snapshot: snapshotOf(1, 1) })
        yield* Effect.forEach(
          Array.from({ length: 16 }),
          () =>
            execute(command, input, {
              retry: Schedule.spaced("2 millis").pipe(Schedule.intersect(Schedule.recurs(100)))
            }),
          { concurrency: 8 }
        )
        yield* Snapshot.awaitWrites
        // Every command wrote 2 events: the last read saw all but the last command's.
        const folded = foldsOf(name)
        yield* execute(command, { ...input, amount: 0 })
        expect(foldsOf(name) - folded).toBeLessThanOrEqual(2)
        expect((yield* written(name)) > 0).toBe(true)
      })
    ))

  it("clears the snapshots of a command, after which it folds in full again", () =>
    withStore(
      Effect.gen(function* () {
        const input = { from: id("clear-a"), to: id("clear-b"), amount: 0 }
        yield* deposit(input.from, 100)
        const { command, name } = payment({ snapshot: snapshotOf() })
        const other = payment({ snapshot: snapshotOf() })
        yield* execute(command, input)
        yield* execute(other.command, input)
        yield* Snapshot.awaitWrites

        expect(yield* Snapshot.clear(command)).toBe(1)
        const folded = foldsOf(name)
        yield* execute(command, input)
        expect(foldsOf(name) - folded).toBe(100)
        yield* Snapshot.awaitWrites
        expect(yield* Snapshot.clear()).toBe(2)
      })
    ))
}
