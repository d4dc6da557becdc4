/**
 * Personal data on every store: sealed on append, opened on every read path,
 * erased for good. `dumpTables`, for the SQL stores, gives the text of every
 * row of eventcore's tables, for the scan that finds no plaintext.
 */
import { Chunk, Effect, Either, Fiber, Schema, type Scope, Stream } from "effect"
import {
  Command,
  EventSchema,
  EventStore,
  execute,
  type LogMessage,
  type LogPosition,
  PersonalData,
  Projection,
  Snapshot,
  StreamId,
  StreamWrites
} from "eventcore"
import { expect, it } from "vitest"

export type WithStore = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore | Scope.Scope>) => Promise<A>

const Address = Schema.Struct({ street: Schema.String, city: Schema.String })

const AccountOpened = Schema.TaggedStruct("AccountOpened", {
  accountId: Schema.String,
  holder: PersonalData.field(Schema.String, { subject: "accountId" }),
  address: PersonalData.field(Address, { subject: "accountId" })
})
const HolderRenamed = Schema.TaggedStruct("HolderRenamed", {
  accountId: Schema.String,
  holder: PersonalData.field(Schema.String, { subject: "accountId" })
})
const Deposited = Schema.TaggedStruct("Deposited", { accountId: Schema.String, amount: Schema.Number })
const AccountEvent = Schema.Union(AccountOpened, HolderRenamed, Deposited)
type AccountEvent = typeof AccountEvent.Type

/** Values no other test writes, so a scan for them finds only these. */
const holder = "Ada Zelinski-4471"
const street = "17 Quirrelpath Lane"
const city = "Vexmoor-9"

const streamOf = (accountId: string) => StreamId.unsafeMake(`account-${accountId}`)

const State = Schema.Struct({
  holder: Schema.NullOr(Schema.Union(Schema.String, PersonalData.Erased)),
  balance: Schema.Number
})
type State = typeof State.Type

const evolve = (state: State, event: AccountEvent): State => {
  switch (event._tag) {
    case "AccountOpened":
    case "HolderRenamed":
      return { ...state, holder: event.holder }
    case "Deposited":
      return { ...state, balance: state.balance + event.amount }
  }
}

const OpenAccount = Command.make({
  name: "OpenAccount",
  event: AccountEvent,
  streams: (input: { readonly accountId: string; readonly holder: string }) => [streamOf(input.accountId)],
  initialState: { holder: null, balance: 0 } as State,
  apply: evolve,
  decide: (_state, input) =>
    Effect.succeed([
      {
        streamId: streamOf(input.accountId),
        event: AccountOpened.make({ accountId: input.accountId, holder: input.holder, address: { street, city } })
      }
    ])
})

const RenameHolder = Command.make({
  name: "RenameHolder",
  event: AccountEvent,
  streams: (input: { readonly accountId: string; readonly holder: string }) => [streamOf(input.accountId)],
  initialState: { holder: null, balance: 0 } as State,
  apply: evolve,
  decide: (_state, input) =>
    Effect.succeed([
      {
        streamId: streamOf(input.accountId),
        event: HolderRenamed.make({ accountId: input.accountId, holder: input.holder })
      }
    ])
})

/** A deposit whose folded state (the holder's name included) is snapshotted after every event. */
const Deposit = Command.make({
  name: "Deposit",
  event: AccountEvent,
  streams: (input: { readonly accountId: string; readonly amount: number }) => [streamOf(input.accountId)],
  initialState: { holder: null, balance: 0 } as State,
  apply: evolve,
  snapshot: Snapshot.make({ state: State, version: 1, after: { events: 1 } }),
  decide: (state, input) =>
    state.holder === null
      ? Effect.fail(new Error("no such account"))
      : Effect.succeed([
          {
            streamId: streamOf(input.accountId),
            event: Deposited.make({ accountId: input.accountId, amount: input.amount })
          }
        ])
})

const decode = EventSchema.decode(AccountEvent)

const erased = (subject: string) => ({ $erased: { subject } })

/**
 * Every event of the global log, read with readAll, streamAll and subscribe,
 * which must agree, once it is readable `through` the test's last append (a
 * transaction running elsewhere on the server holds the log back meanwhile).
 */
const wholeLog = (through: LogPosition.LogPosition | undefined) =>
  Effect.gen(function* () {
    if (through !== undefined) yield* EventStore.waitForLog(through, { timeout: "60 seconds" })
    const store = yield* EventStore.EventStore
    const read = yield* store.readAll({ maxCount: 10_000 })
    const streamed = Chunk.toReadonlyArray(yield* Stream.runCollect(store.streamAll()))
    const followed = Chunk.toReadonlyArray(
      yield* store.subscribe().pipe(
        Stream.takeUntil((message: LogMessage.LogMessage) => message._tag === "CaughtUp"),
        Stream.runCollect
      )
    ).flatMap((message) => (message._tag === "Event" ? [message.event] : []))
    expect(streamed).toEqual(read.events)
    expect(followed).toEqual(read.events)
    return read.events
  })

export const definePersonalDataTests = (
  withStore: WithStore,
  dumpTables?: Effect.Effect<string, unknown, EventStore.EventStore | Scope.Scope>
) => {
  it("gives back the values written on every read path, and holds them only as ciphertext", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const opened = yield* execute(OpenAccount, { accountId: "a1", holder })
        expect(opened.events[0]?.data).toMatchObject({ holder, address: { street, city } })
        expect(opened.events[0]?.metadata[PersonalData.subjectsMetadataKey]).toEqual(["a1"])

        const read = yield* store.readStream(streamOf("a1"))
        expect(read.events[0]?.data).toEqual({ accountId: "a1", holder, address: { street, city } })
        const paged = Chunk.toReadonlyArray(yield* Stream.runCollect(store.streamEvents(streamOf("a1"))))
        expect(paged).toEqual(read.events)
        const log = yield* wholeLog(opened.events[0]?.position)
        expect(log).toEqual(read.events)
        expect(yield* decode(read.events[0] as never)).toEqual([
          AccountOpened.make({ accountId: "a1", holder, address: { street, city } })
        ])
        // A command folds the values.
        yield* execute(Deposit, { accountId: "a1", amount: 5 })

        if (dumpTables !== undefined) {
          yield* Snapshot.awaitWrites
          const text = yield* dumpTables
          // The events hold ciphertext; the snapshot (a cache) holds the folded state, name included.
          expect(text).toContain('"$personal"')
          expect(text.split(holder).length - 1).toBe(1)
          expect(text).not.toContain(street)
        }
      })
    ))

  it("erases a subject: every read path gives the erased value, commands still fold, and the log says so", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* execute(OpenAccount, { accountId: "a1", holder })
        yield* execute(OpenAccount, { accountId: "a2", holder: "Bo Other" })
        yield* execute(Deposit, { accountId: "a1", amount: 5 })
        yield* Snapshot.awaitWrites

        const erasure = yield* PersonalData.erase("a1", { by: "dpo@bank.example" })
        expect(erasure).toMatchObject({ subject: "a1", erasedBy: "dpo@bank.example", already: false })
        expect(erasure.snapshotsRemoved).toBeGreaterThanOrEqual(1)

        const read = yield* store.readStream(streamOf("a1"))
        expect(read.events[0]?.data).toEqual({ accountId: "a1", holder: erased("a1"), address: erased("a1") })
        const [event] = (yield* decode(read.events[0] as never)) as ReadonlyArray<typeof AccountOpened.Type>
        expect(PersonalData.isErased(event?.holder)).toBe(true)
        expect(event?.holder).toEqual(new PersonalData.Erased({ subject: "a1" }))
        const paged = Chunk.toReadonlyArray(yield* Stream.runCollect(store.streamEvents(streamOf("a1"))))
        expect(paged).toEqual(read.events)

        const log = yield* wholeLog(erasure.position)
        expect(log.find((e) => e.eventId === read.events[0]?.eventId)).toEqual(read.events[0])
        // The other subject's values are untouched.
        expect((yield* store.readStream(streamOf("a2"))).events[0]?.data).toMatchObject({ holder: "Bo Other" })
        // The erasure is an event of the log, free of personal data, where projections and reactors see it.
        const recorded = log.filter((e) => e.eventType === "SubjectErased")
        expect(recorded.map((e) => [e.streamId, e.data, e.position])).toEqual([
          [PersonalData.erasureStream, { subject: "a1" }, erasure.position]
        ])

        // Commands fold the erased value and go on.
        const deposit = yield* execute(Deposit, { accountId: "a1", amount: 7 })
        expect(deposit.events).toHaveLength(1)

        // Erasing again changes nothing and records nothing.
        const again = yield* PersonalData.erase("a1", { by: "someone else" })
        expect(again).toMatchObject({ already: true, erasedBy: "dpo@bank.example", snapshotsRemoved: 0 })
        expect(
          (yield* wholeLog(deposit.events[0]?.position)).filter((e) => e.eventType === "SubjectErased")
        ).toHaveLength(1)

        if (dumpTables !== undefined) {
          yield* Snapshot.awaitWrites
          const text = yield* dumpTables
          expect(text).not.toContain(holder)
          expect(text).not.toContain(street)
          expect(text).not.toContain(city)
          // The other subject's values, still sealed.
          expect(text).toContain('"$personal"')
        }
      })
    ))

  it("a projection reads the values, sees the erasure, and rebuilds after it from the erased values", () =>
    withStore(
      Effect.gen(function* () {
        const seen: Array<string> = []
        const Holders = Projection.make({
          name: "holders",
          event: Schema.Union(AccountOpened, PersonalData.SubjectErasedEvent),
          handle: (event) =>
            Effect.sync(() => {
              if (event._tag === "SubjectErased") seen.push(`erasure of ${event.subject}`)
              else seen.push(PersonalData.isErased(event.holder) ? `erased ${event.holder.subject}` : event.holder)
            })
        })
        const opened = yield* execute(OpenAccount, { accountId: "a1", holder })
        const runner = yield* Effect.fork(Projection.run(Holders))
        yield* Projection.waitFor(Holders, opened.events[0]?.position as never)
        expect(seen).toEqual([holder])

        const erasure = yield* PersonalData.erase("a1", { by: "dpo" })
        yield* Projection.waitFor(Holders, erasure.position as never)
        expect(seen).toEqual([holder, "erasure of a1"])

        yield* Projection.rebuild(Holders)
        yield* Effect.repeat(Effect.sleep("10 millis"), { until: () => seen.length >= 4 })
        yield* Fiber.interrupt(runner)
        expect(seen).toEqual([holder, "erasure of a1", "erased a1", "erasure of a1"])
      })
    ))

  it("refuses to write personal data of an erased subject, and an event whose subject cannot be found", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* execute(OpenAccount, { accountId: "a1", holder })
        yield* PersonalData.erase("a1", { by: "dpo" })
        const renamed = yield* Effect.either(execute(RenameHolder, { accountId: "a1", holder: "Ada Again" }))
        expect(renamed).toEqual(Either.left(new PersonalData.SubjectErased({ subject: "a1" })))
        expect((yield* store.readStream(streamOf("a1"))).version).toBe(1)

        const stream = streamOf("raw")
        const writes = Either.getOrThrow(
          StreamWrites.append(Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, stream, "any")), {
            streamId: stream,
            eventType: "HolderRenamed",
            data: { holder: { $personal: { value: "No Subject", subjectOf: "accountId" } } }
          })
        )
        const refused = yield* Effect.flip(store.append(writes))
        expect(refused._tag).toBe("InvalidPersonalData")
        expect(yield* Effect.either(store.readStream(stream))).toMatchObject({ _tag: "Left" })
      })
    ))

  it("seals values written raw with a literal subject, as the schema's do", () =>
    withStore(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const stream = streamOf("raw")
        const writes = Either.getOrThrow(
          StreamWrites.append(Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, stream, "no_stream")), {
            streamId: stream,
            eventType: "Note",
            data: { text: PersonalData.value("s-9", { said: "secret words" }), plain: 1 }
          })
        )
        yield* store.append(writes)
        expect((yield* store.readStream(stream)).events[0]?.data).toEqual({ text: { said: "secret words" }, plain: 1 })
        yield* PersonalData.erase("s-9", { by: "dpo" })
        expect((yield* store.readStream(stream)).events[0]?.data).toEqual({ text: erased("s-9"), plain: 1 })
      })
    ))
}
