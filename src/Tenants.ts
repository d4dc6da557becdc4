/**
 * A database per tenant: each tenant's streams live in a PostgreSQL database
 * of their own, with its own pool, global log and projection checkpoints.
 *
 * Writes scale by tenant this way, because tenants share nothing: no lock, no
 * log, no checkpoint. What cannot be shared is refused rather than attempted:
 * an append is atomic, and its expected versions checked, within one database
 * only, so a tenant's store refuses, before any database call, an append or a
 * read that names a stream `tenantOf` gives to another tenant (or to none).
 * See docs/scaling.md.
 *
 * @example
 * const tenants = Tenants.layer({
 *   tenants: { acme: { url: acmeUrl }, globex: { url: globexUrl } },
 *   tenantOf: (streamId) => streamId.split("/")[0]
 * })
 * execute(Deposit, input).pipe(Tenants.provide("acme"), Effect.provide(tenants))
 * Tenants.each(() => Projection.run(Balances)) // one projection per tenant, each in its own database
 */
import { Context, Effect, Layer, Stream } from "effect"
import * as EventStore from "./EventStore.js"
import { CrossTenantAccess, StoreError, UnknownTenant } from "./errors.js"
import { type StoreExtras, snapshotsKey } from "./internal/storeContract.js"
import * as PostgresEventStore from "./PostgresEventStore.js"
import type { ReadModelStore } from "./Projection.js"
import type { StreamId } from "./StreamId.js"
import * as StreamWrites from "./StreamWrites.js"

/** What a tenant's store provides: the `EventStore` and, for projections with a read model, the `ReadModelStore`. */
export type TenantContext = Context.Context<EventStore.EventStore | ReadModelStore>

export interface Tenants {
  /** The tenants, in the order of the configuration's keys (`Object.keys`). */
  readonly names: ReadonlyArray<string>
  /** The tenant's store, to provide to an effect (see `provide`); `UnknownTenant` for a name not configured. */
  readonly context: (tenant: string) => Effect.Effect<TenantContext, UnknownTenant>
}

export const Tenants: Context.Tag<Tenants, Tenants> = Context.GenericTag<Tenants>("eventcore/Tenants")

export interface TenantsConfig {
  /** Every tenant's database, by tenant name. */
  readonly tenants: Readonly<Record<string, PostgresEventStore.PostgresConfig>>
  /**
   * The tenant a stream belongs to, `undefined` for none. It must be a pure
   * function of the id (usually a prefix of it): the stores call it to refuse
   * every other tenant's streams.
   */
  readonly tenantOf: (streamId: StreamId) => string | undefined
}

/**
 * Stores opened at once while the layer is built. Each opening costs a few
 * round trips (connect, check the schema and the server's transaction ids), so
 * hundreds of tenants are not opened one by one; nor all at once, which would
 * open as many connections in the same instant.
 */
const openConcurrency = 16

/**
 * Opens every tenant's store with `PostgresEventStore.layer` (a pool, checks,
 * and migrations with `autoMigrate`), and closes them all on release. Fails
 * with the `StoreError` of the first tenant whose store cannot open, its
 * message naming the tenant, so a misconfigured tenant stops the application
 * at start rather than at its first request. An empty `tenants` is refused.
 *
 * Connections: every tenant has a pool of its own, so the servers see up to
 * tenants × `maxConnections`, plus one per running projection or reactor.
 */
export const layer = (config: TenantsConfig): Layer.Layer<Tenants, StoreError> =>
  Layer.scoped(
    Tenants,
    Effect.gen(function* () {
      const names = Object.keys(config.tenants)
      if (names.length === 0) {
        return yield* new StoreError({
          operation: "connect",
          message: "Tenants.layer was given no tenants: configure at least one tenant's database in `tenants`."
        })
      }
      const contexts = yield* Effect.forEach(
        names,
        (tenant) =>
          Layer.build(PostgresEventStore.layer(config.tenants[tenant] as PostgresEventStore.PostgresConfig)).pipe(
            Effect.mapError(
              (error) =>
                new StoreError({
                  operation: error.operation,
                  message: `Tenant ${JSON.stringify(tenant)}: ${error.message}`,
                  cause: error.cause
                })
            ),
            Effect.map((context) => [tenant, guarded(tenant, config.tenantOf, context)] as const)
          ),
        { concurrency: openConcurrency }
      )
      // A Map, not the configuration's object: "constructor" or "__proto__" must not find a tenant.
      const byName = new Map<string, TenantContext>(contexts)
      return Tenants.of({
        names,
        context: (tenant) => {
          const context = byName.get(tenant)
          return context === undefined
            ? Effect.fail(new UnknownTenant({ tenant, known: names }))
            : Effect.succeed(context)
        }
      })
    })
  )

const describeOwner = (owner: string | undefined) =>
  owner === undefined ? "belongs to no tenant (tenantOf gave none)" : `belongs to tenant ${JSON.stringify(owner)}`

/**
 * The tenant's context, its store wrapped to refuse other tenants' streams,
 * in reads, appends and the first read of a command with snapshots. The
 * global log (`readAll`, `streamAll`, `subscribe`) is the tenant's own and
 * passes through, as does the projection backend (`Projection.run` needs it).
 */
const guarded = (
  tenant: string,
  tenantOf: (streamId: StreamId) => string | undefined,
  context: TenantContext
): TenantContext => {
  const store: EventStore.EventStore & StoreExtras = Context.get(context, EventStore.EventStore)
  const foreign = (streamId: StreamId): CrossTenantAccess | undefined => {
    const owner = tenantOf(streamId)
    return owner === tenant ? undefined : new CrossTenantAccess({ streamId, streamTenant: owner, storeTenant: tenant })
  }
  const readRefused = (refusal: CrossTenantAccess) =>
    new StoreError({
      operation: "read_stream",
      message: `Cannot read stream ${JSON.stringify(refusal.streamId)} in the store of tenant ${JSON.stringify(tenant)}: the stream ${describeOwner(refusal.streamTenant)}, and its events are not in this tenant's database (read here, it would look empty). Read it with the store of its tenant (Tenants.provide).`,
      cause: refusal
    })
  const appendRefused = (refusal: CrossTenantAccess) =>
    new StoreError({
      operation: "append",
      message: `Cannot append with stream ${JSON.stringify(refusal.streamId)} in the store of tenant ${JSON.stringify(tenant)}: the stream ${describeOwner(refusal.streamTenant)}. An append is atomic, and its expected versions checked, within one database only, and each tenant has a database of its own: write each tenant's streams in appends of their own. Nothing was written.`,
      cause: refusal
    })
  const snapshots = store[snapshotsKey]
  const wrapped: EventStore.EventStore & StoreExtras = {
    // With the store's symbol-keyed parts (the projection backend, the log's horizon), which
    // `Projection.run`, `waitFor` and `waitForLog` need.
    ...store,
    // A command with snapshots reads its declared streams with its snapshot, not through `readStream`:
    // refused the same way, or it would decide on the empty streams it finds here. (Streams it discovers
    // go through `readStream` first, so a snapshot covering them was written after that read passed.)
    ...(snapshots === undefined
      ? {}
      : {
          [snapshotsKey]: {
            ...snapshots,
            load: (request) =>
              Effect.suspend(() => {
                for (const streamId of request.streams) {
                  const refusal = foreign(streamId)
                  if (refusal !== undefined) return Effect.fail(readRefused(refusal))
                }
                return snapshots.load(request)
              })
          }
        }),
    readStream: (streamId, options) =>
      Effect.suspend(() => {
        const refusal = foreign(streamId)
        return refusal === undefined ? store.readStream(streamId, options) : Effect.fail(readRefused(refusal))
      }),
    streamEvents: (streamId, options) =>
      Stream.suspend(() => {
        const refusal = foreign(streamId)
        return refusal === undefined ? store.streamEvents(streamId, options) : Stream.fail(readRefused(refusal))
      }),
    append: (writes) =>
      Effect.suspend(() => {
        // Every participant, read-only ones included: their versions are checked in this database too.
        const streams = [
          ...StreamWrites.participants(writes).map(([streamId]) => streamId),
          ...StreamWrites.events(writes).map((event) => event.streamId)
        ]
        for (const streamId of streams) {
          const refusal = foreign(streamId)
          if (refusal !== undefined) return Effect.fail(appendRefused(refusal))
        }
        return store.append(writes)
      })
  }
  return Context.add(context, EventStore.EventStore, wrapped)
}

/**
 * Runs `effect` with the tenant's store: its commands, reads and projections
 * go to that tenant's database. Fails with `UnknownTenant` for a name the
 * layer was not configured with.
 */
export const provide =
  (tenant: string) =>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | UnknownTenant, Tenants | Exclude<R, EventStore.EventStore | ReadModelStore>> =>
    Effect.flatMap(Tenants, (tenants) =>
      Effect.flatMap(tenants.context(tenant), (context) => Effect.provide(effect, context))
    )

/**
 * Runs `f` for every tenant with that tenant's store provided (all at once by
 * default), and gives the results in the order of `names`. A projection per
 * tenant: `Tenants.each(() => Projection.run(Balances))`, each with its own
 * checkpoint in its own database. As with `Effect.forEach`, the first failure
 * interrupts the others: to keep tenants independent, handle a tenant's
 * failure inside `f`.
 */
export const each = <A, E, R>(
  f: (tenant: string) => Effect.Effect<A, E, R>,
  options?: { readonly concurrency?: number | "unbounded" }
): Effect.Effect<Array<A>, E, Tenants | Exclude<R, EventStore.EventStore | ReadModelStore>> =>
  Effect.flatMap(Tenants, (tenants) =>
    Effect.forEach(
      tenants.names,
      (tenant) =>
        Effect.flatMap(
          // Every name in `names` has a context: the failure cannot happen.
          Effect.orDie(tenants.context(tenant)),
          (context) => Effect.provide(f(tenant), context)
        ),
      { concurrency: options?.concurrency ?? "unbounded" }
    )
  )
