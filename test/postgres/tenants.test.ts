/**
 * A database per tenant (`Tenants`): each tenant's appends, log, projections
 * and checkpoints in a database of its own, checked with SQL on both
 * databases; appends and reads of another tenant's streams refused before
 * any database call, a command's read with its snapshot included; a tenant
 * whose database cannot open stops the layer.
 */
import { expect, it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Context, Data, Effect, Fiber, Layer, Schema, Stream } from "effect"
import {
  Command,
  CrossTenantAccess,
  EventStore,
  execute,
  Projection,
  type RecordedEvent,
  Snapshot,
  StoreError,
  StreamId,
  Tenants,
  UnknownTenant
} from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { describeServer, urlOf, usePostgresTemplate } from "../support/postgres.js"

const id = StreamId.unsafeMake
const store = EventStore.EventStore

/** A stream's tenant is the part of its id before "/"; an id without "/" belongs to none. */
const tenantOf = (streamId: string) => (streamId.includes("/") ? streamId.split("/")[0] : undefined)

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Int })

/** A deposit into the account `account` (a stream id such as "acme/a"). */
const Deposit = Command.make({
  name: "Deposit",
  event: Deposited,
  streams: (input: { readonly account: string; readonly amount: number }) => [id(input.account)],
  initialState: 0,
  apply: (balance: number, event) => balance + event.amount,
  decide: (_balance, { account, amount }) =>
    Effect.succeed([{ streamId: id(account), event: Deposited.make({ amount }) }])
})

/** `Deposit` with a snapshot of the balance after every event folded; an amount of 0 decides nothing (a read). */
const SnapshotDeposit = Command.make({
  name: "SnapshotDeposit",
  event: Deposited,
  streams: (input: { readonly account: string; readonly amount: number }) => [id(input.account)],
  initialState: 0,
  apply: (balance: number, event) => balance + event.amount,
  decide: (_balance, { account, amount }) =>
    Effect.succeed(amount === 0 ? [] : [{ streamId: id(account), event: Deposited.make({ amount }) }]),
  snapshot: Snapshot.make({ state: Schema.Int, version: 1, after: { events: 1 } })
})

const balances = pgTable("tenant_balances", {
  account: text("account").primaryKey(),
  cents: integer("cents").notNull()
})

class ReadModelError extends Data.TaggedError("ReadModelError")<{ readonly cause: unknown }> {}

/** Every account's balance, in the read-model table of the database of the tenant it runs for. */
const Balances = Projection.make({
  name: "tenant-balances",
  event: Deposited,
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) =>
      Effect.tryPromise({
        try: () =>
          db
            .insert(balances)
            .values({ account: recorded.streamId, cents: event.amount })
            .onConflictDoUpdate({ target: balances.account, set: { cents: sql`${balances.cents} + ${event.amount}` } }),
        catch: (cause) => new ReadModelError({ cause })
      })
    )
})

/** A connection of the test's own, closed with the scope. */
const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => postgres(url, { max: 1, onnotice: () => {} })),
    (client) => Effect.promise(() => client.end({ timeout: 1 }))
  )

/** The stream of every event the database holds, in log order: read with SQL, not through the store. */
const rowsIn = (client: postgres.Sql) =>
  Effect.promise(async () =>
    (
      await client<
        Array<{ stream_id: string }>
      >`select stream_id from eventcore.events order by transaction_id, global_position`
    ).map((row) => row.stream_id)
  )

const lastOf = (events: ReadonlyArray<RecordedEvent>) => {
  const last = events.at(-1)
  if (last === undefined) throw new Error("no event written")
  return last
}

describeServer("a database per tenant", () => {
  const server = usePostgresTemplate()

  /**
   * Two tenants, acme and globex, each on a fresh migrated database: the
   * built `Tenants` context and a raw connection to each database.
   */
  const twoTenants = Effect.gen(function* () {
    const acme = yield* server.freshDatabase
    const globex = yield* server.freshDatabase
    const context = yield* Layer.build(
      Tenants.layer({
        tenants: { acme: { url: acme.url, maxConnections: 4 }, globex: { url: globex.url, maxConnections: 4 } },
        tenantOf
      })
    )
    return {
      context,
      acme: { ...acme, raw: yield* connection(acme.url) },
      globex: { ...globex, raw: yield* connection(globex.url) }
    }
  })

  it.live("each tenant's appends land in its own database only, with a global log of its own", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, acme, globex } = yield* twoTenants
        const inTenants = <A, E>(effect: Effect.Effect<A, E, Tenants.Tenants>) => Effect.provide(effect, context)
        expect(yield* inTenants(Effect.map(Tenants.Tenants, (tenants) => tenants.names))).toEqual(["acme", "globex"])

        yield* inTenants(
          Tenants.provide("acme")(
            Effect.flatMap(store, (s) =>
              s.append(writesOf({ streamId: id("acme/a"), expected: "no_stream", events: testEvents(2) }))
            )
          )
        )
        yield* inTenants(
          Tenants.provide("globex")(
            Effect.flatMap(store, (s) =>
              s.append(writesOf({ streamId: id("globex/a"), expected: "no_stream", events: testEvents(3) }))
            )
          )
        )
        expect(yield* rowsIn(acme.raw)).toEqual(["acme/a", "acme/a"])
        expect(yield* rowsIn(globex.raw)).toEqual(["globex/a", "globex/a", "globex/a"])

        // Each tenant's global log is its own database's, returned in the order of `names`.
        const logs = yield* inTenants(Tenants.each(() => Effect.flatMap(store, (s) => s.readAll())))
        expect(logs.map((log) => log.events.map((event) => event.streamId))).toEqual([
          ["acme/a", "acme/a"],
          ["globex/a", "globex/a", "globex/a"]
        ])
        const tenantsSeen = yield* inTenants(Tenants.each((tenant) => Effect.succeed(tenant)))
        expect(tenantsSeen).toEqual(["acme", "globex"])

        // A command runs against the tenant's store: its read and its append.
        const deposited = yield* inTenants(
          Tenants.provide("acme")(
            Effect.zipRight(
              execute(Deposit, { account: "acme/b", amount: 5 }),
              execute(Deposit, { account: "acme/b", amount: 7 })
            )
          )
        )
        expect(deposited.events.map((event) => [event.streamId, event.streamVersion])).toEqual([["acme/b", 2]])
        expect(yield* rowsIn(acme.raw)).toEqual(["acme/a", "acme/a", "acme/b", "acme/b"])
        expect(yield* rowsIn(globex.raw)).toEqual(["globex/a", "globex/a", "globex/a"])
        const read = yield* inTenants(
          Tenants.provide("globex")(Effect.flatMap(store, (s) => s.readStream(id("globex/a"))))
        )
        expect(read.version).toBe(3)
      })
    )
  )

  it.live("an append or a read naming another tenant's stream is refused before any database call", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, acme, globex } = yield* twoTenants
        const inAcme = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
          Effect.provide(Tenants.provide("acme")(effect), context)

        const both = writesOf(
          { streamId: id("acme/x"), expected: "no_stream", events: testEvents(1) },
          { streamId: id("globex/y"), expected: "no_stream", events: testEvents(1) }
        )
        const refused = yield* Effect.flip(inAcme(Effect.flatMap(store, (s) => s.append(both))))
        expect(refused).toBeInstanceOf(StoreError)
        if (!(refused instanceof StoreError)) return
        expect(refused.operation).toBe("append")
        expect(refused.cause).toBeInstanceOf(CrossTenantAccess)
        expect(refused.cause).toMatchObject({ streamId: "globex/y", streamTenant: "globex", storeTenant: "acme" })
        expect(refused.message).toContain('"globex/y"')
        expect(refused.message).toContain('belongs to tenant "globex"')
        expect(refused.message).toContain('tenant "acme"')
        expect(refused.message).toContain("atomic")
        expect(refused.message).toContain("within one database only")

        // A read-only participant of another tenant is refused too: its version would be checked in the wrong database.
        const readOnly = writesOf(
          { streamId: id("acme/x"), expected: "no_stream", events: testEvents(1) },
          { streamId: id("globex/y"), expected: "any" }
        )
        const readOnlyRefused = yield* Effect.flip(inAcme(Effect.flatMap(store, (s) => s.append(readOnly))))
        expect(readOnlyRefused).toMatchObject({ _tag: "StoreError", operation: "append" })
        expect((readOnlyRefused as StoreError).cause).toMatchObject({ _tag: "CrossTenantAccess", streamId: "globex/y" })

        // A stream of no tenant.
        const orphan = yield* Effect.flip(
          inAcme(
            Effect.flatMap(store, (s) =>
              s.append(writesOf({ streamId: id("orphan"), expected: "any", events: testEvents(1) }))
            )
          )
        )
        expect(orphan.message).toContain("belongs to no tenant")
        expect((orphan as StoreError).cause).toMatchObject({ streamTenant: undefined, storeTenant: "acme" })

        expect(yield* rowsIn(acme.raw)).toEqual([])
        expect(yield* rowsIn(globex.raw)).toEqual([])

        // Reads: in acme's database "globex/y" would be an empty stream, not the tenant's events.
        const readRefused = yield* Effect.flip(inAcme(Effect.flatMap(store, (s) => s.readStream(id("globex/y")))))
        expect(readRefused).toMatchObject({ _tag: "StoreError", operation: "read_stream" })
        expect((readRefused as StoreError).cause).toBeInstanceOf(CrossTenantAccess)
        expect(readRefused.message).toContain('"globex/y"')
        const streamRefused = yield* Effect.flip(
          inAcme(Effect.flatMap(store, (s) => Stream.runCollect(s.streamEvents(id("globex/y")))))
        )
        expect(streamRefused).toMatchObject({ _tag: "StoreError", operation: "read_stream" })

        // The tenant's own streams still go through.
        yield* inAcme(
          Effect.flatMap(store, (s) =>
            s.append(writesOf({ streamId: id("acme/x"), expected: "no_stream", events: testEvents(1) }))
          )
        )
        expect(yield* rowsIn(acme.raw)).toEqual(["acme/x"])

        // Refused without the database: while a transaction holds acme's tables locked, a refusal is
        // immediate, and a read of acme's own stream waits for the lock.
        let unlock = () => {}
        const unlocked = new Promise<void>((resolve) => {
          unlock = resolve
        })
        yield* Effect.addFinalizer(() => Effect.sync(unlock))
        yield* Effect.promise(
          () =>
            new Promise<void>((locked, failed) => {
              acme.raw
                .begin(async (tx) => {
                  await tx`lock table eventcore.events, eventcore.streams in access exclusive mode`
                  locked()
                  await unlocked
                })
                .catch(failed)
            })
        )
        const ownRead = yield* Effect.fork(inAcme(Effect.flatMap(store, (s) => s.readStream(id("acme/x")))))
        // The lock is released below: a refusal that waited for the database would never come, and the
        // deadline only turns that hang into a failure.
        const whileLocked = yield* Effect.all([
          Effect.flip(inAcme(Effect.flatMap(store, (s) => s.append(both)))),
          Effect.flip(inAcme(Effect.flatMap(store, (s) => s.readStream(id("globex/y")))))
        ]).pipe(Effect.timeout("30 seconds"))
        for (const error of whileLocked) expect((error as StoreError).cause).toBeInstanceOf(CrossTenantAccess)
        yield* Effect.sleep("200 millis")
        expect((yield* Fiber.poll(ownRead))._tag).toBe("None")
        unlock()
        expect((yield* Fiber.join(ownRead)).version).toBe(1)
      })
    )
  )

  it.live("a command with snapshots naming another tenant's stream is refused as its read is, and writes nothing", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, acme, globex } = yield* twoTenants
        const inTenant =
          (tenant: string) =>
          <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
            Effect.provide(Tenants.provide(tenant)(effect), context)
        const snapshotsIn = (raw: postgres.Sql) =>
          Effect.promise(async () =>
            (
              await raw<
                Array<{ state: number; streams: unknown }>
              >`select state, streams from eventcore.snapshots order by command`
            ).map((row) => [row.state, row.streams])
          )
        yield* inTenant("globex")(
          Effect.zipRight(execute(SnapshotDeposit, { account: "globex/a", amount: 5 }), Snapshot.awaitWrites)
        )
        yield* inTenant("globex")(
          Effect.zipRight(execute(SnapshotDeposit, { account: "globex/a", amount: 7 }), Snapshot.awaitWrites)
        )
        expect(yield* snapshotsIn(globex.raw)).toEqual([[5, [["globex/a", 1]]]])

        const readRefusal = yield* Effect.flip(
          inTenant("acme")(Effect.flatMap(store, (s) => s.readStream(id("globex/a"))))
        )
        // In acme's database "globex/a" is an empty stream: a deposit would be decided on a balance of 0,
        // and a read (an amount of 0) would succeed with it.
        for (const amount of [3, 0]) {
          const refused = yield* Effect.flip(
            inTenant("acme")(
              Effect.zipRight(execute(SnapshotDeposit, { account: "globex/a", amount }), Snapshot.awaitWrites)
            )
          )
          expect(refused).toBeInstanceOf(StoreError)
          if (!(refused instanceof StoreError)) return
          expect([refused.operation, refused.message]).toEqual(["read_stream", readRefusal.message])
          expect(refused.cause).toBeInstanceOf(CrossTenantAccess)
          const { streamId, streamTenant, storeTenant } = refused.cause as CrossTenantAccess
          expect({ streamId, streamTenant, storeTenant }).toEqual({
            streamId: "globex/a",
            streamTenant: "globex",
            storeTenant: "acme"
          })
        }
        expect(yield* rowsIn(acme.raw)).toEqual([])
        expect(yield* snapshotsIn(acme.raw)).toEqual([])
        expect(yield* rowsIn(globex.raw)).toEqual(["globex/a", "globex/a"])
        expect(yield* snapshotsIn(globex.raw)).toEqual([[5, [["globex/a", 1]]]])

        // The tenant's own streams go through, their snapshots in its own database.
        yield* inTenant("acme")(
          Effect.zipRight(execute(SnapshotDeposit, { account: "acme/a", amount: 2 }), Snapshot.awaitWrites)
        )
        yield* inTenant("acme")(
          Effect.zipRight(execute(SnapshotDeposit, { account: "acme/a", amount: 0 }), Snapshot.awaitWrites)
        )
        expect(yield* snapshotsIn(acme.raw)).toEqual([[2, [["acme/a", 1]]]])
      })
    )
  )

  it.live("an unknown tenant fails with UnknownTenant, listing the known ones", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context } = yield* twoTenants
        const unknown = yield* Effect.flip(
          Effect.provide(Tenants.provide("nope")(Effect.flatMap(store, (s) => s.readAll())), context)
        )
        expect(unknown).toBeInstanceOf(UnknownTenant)
        expect(unknown).toMatchObject({ tenant: "nope", known: ["acme", "globex"] })
        expect(unknown.message).toBe('Unknown tenant "nope": the known tenants are "acme", "globex"')
        // Names of the object's prototype are no tenants.
        const tenants = Context.get(context, Tenants.Tenants)
        expect(yield* Effect.flip(tenants.context("constructor"))).toMatchObject({ _tag: "UnknownTenant" })
      })
    )
  )

  it.live("a projection run for every tenant folds each tenant's events into its own database and checkpoint", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, acme, globex } = yield* twoTenants
        for (const { raw } of [acme, globex]) {
          yield* Effect.promise(
            () => raw`create table tenant_balances (account text primary key, cents integer not null)`
          )
        }
        const inTenants = <A, E>(effect: Effect.Effect<A, E, Tenants.Tenants>) => Effect.provide(effect, context)
        const deposit = (account: string, amount: number) =>
          Tenants.provide(account.split("/")[0] as string)(execute(Deposit, { account, amount }))

        yield* inTenants(deposit("acme/a", 10))
        const projections = yield* Effect.forkScoped(
          inTenants(Tenants.each(() => Projection.run(Balances, { batchSize: 2 })))
        )
        const written = yield* inTenants(
          Effect.all([
            deposit("acme/a", 5),
            deposit("acme/b", 3),
            deposit("globex/a", 7),
            deposit("globex/c", 1),
            deposit("globex/c", 2)
          ])
        )
        const acmeLast = lastOf(written[1].events).position
        const globexLast = lastOf(written[4].events).position
        yield* inTenants(Tenants.provide("acme")(Projection.waitFor(Balances, acmeLast)))
        yield* inTenants(Tenants.provide("globex")(Projection.waitFor(Balances, globexLast)))

        const readModel = (raw: postgres.Sql) =>
          Effect.promise(async () =>
            Object.fromEntries(
              (
                await raw<
                  Array<{ account: string; cents: number }>
                >`select account, cents from tenant_balances order by account`
              ).map((row) => [row.account, row.cents])
            )
          )
        expect(yield* readModel(acme.raw)).toEqual({ "acme/a": 15, "acme/b": 3 })
        expect(yield* readModel(globex.raw)).toEqual({ "globex/a": 7, "globex/c": 3 })

        // Each database holds its own checkpoint, at its own log's position.
        const checkpoint = (raw: postgres.Sql) =>
          Effect.promise(
            async () =>
              (
                await raw<
                  Array<{ name: string; position: string }>
                >`select name, position from eventcore.projections order by name`
              )[0]
          )
        const acmeCheckpoint = yield* checkpoint(acme.raw)
        const globexCheckpoint = yield* checkpoint(globex.raw)
        expect(acmeCheckpoint?.name).toBe("tenant-balances")
        expect(globexCheckpoint?.name).toBe("tenant-balances")
        expect(String(acmeCheckpoint?.position) >= acmeLast).toBe(true)
        expect(String(globexCheckpoint?.position) >= globexLast).toBe(true)

        const statuses = yield* inTenants(Tenants.each(() => Projection.status))
        expect(statuses.map(([status]) => [status?.name, status?.status, status?.lag])).toEqual([
          ["tenant-balances", "running", 0],
          ["tenant-balances", "running", 0]
        ])
        yield* Fiber.interrupt(projections)

        // Run in acme only: globex's status does not take acme's instance (same name, same lock key,
        // another database of the same server) for its own.
        const acmeOnly = yield* Effect.forkScoped(
          inTenants(Tenants.provide("acme")(Projection.run(Balances, { batchSize: 2 })))
        )
        const statusIn = (tenant: string) =>
          Effect.map(inTenants(Tenants.provide(tenant)(Projection.status)), ([status]) => status?.status)
        while ((yield* statusIn("acme")) !== "running") yield* Effect.sleep("20 millis")
        expect(yield* statusIn("globex")).toBe("stopped")
        yield* Fiber.interrupt(acmeOnly)
      })
    )
  )

  it.live("the layer fails at build, naming the tenant, when a tenant's database cannot be opened", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const acme = yield* server.freshDatabase
        const missing = `eventcore_missing_${Date.now()}`
        const failed = yield* Effect.flip(
          Effect.scoped(
            Layer.build(
              Tenants.layer({
                tenants: { acme: { url: acme.url }, globex: { url: urlOf(missing) } },
                tenantOf
              })
            )
          )
        )
        expect(failed).toBeInstanceOf(StoreError)
        expect(failed.message).toContain('Tenant "globex"')
        expect(failed.message).toContain(missing)
        expect(failed.message).not.toContain('Tenant "acme"')

        // The store opened for acme was closed with the failed build: no connection of it is left.
        const admin = server.adminClient()
        const openOnAcme = Effect.promise(
          async () =>
            (
              await admin<
                Array<{ count: number }>
              >`select count(*)::int as count from pg_stat_activity where datname = ${acme.database}`
            )[0]?.count
        )
        // Closed on the client's side at once; the server ends the backends a moment later.
        for (let i = 0; i < 300 && (yield* openOnAcme) !== 0; i++) yield* Effect.sleep("100 millis")
        expect(yield* openOnAcme).toBe(0)

        const empty = yield* Effect.flip(Effect.scoped(Layer.build(Tenants.layer({ tenants: {}, tenantOf }))))
        expect(empty).toBeInstanceOf(StoreError)
        expect(empty.message).toContain("no tenants")
      })
    )
  )
})
