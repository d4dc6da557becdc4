/**
 * Least privilege: migrations run as an owner role, the application as a role
 * that can only read and call the append function: every append takes the
 * function's locks. It reads and writes snapshots of command state, which only
 * the owner clears. The grants are the ones docs/security.md shows.
 */
import { randomUUID } from "node:crypto"
import { Effect, Either, Metric, Schema } from "effect"
import {
  Command,
  EventStore,
  execute,
  PersonalData,
  PostgresEventStore,
  Snapshot,
  StreamId,
  StreamLifecycle,
  StreamWrites
} from "eventcore"
import { testEvents, writesOf } from "eventcore/testing"
import postgres from "postgres"
import { afterAll, beforeAll, expect, it } from "vitest"
import { databaseUrl, describeServer } from "../support/postgres.js"

const suffix = randomUUID().replaceAll("-", "").slice(0, 10)
const owner = `eventcore_owner_${suffix}`
const app = `eventcore_app_${suffix}`
const reader = `eventcore_reader_${suffix}`
const database = `eventcore_privileges_${suffix}`

const urlAs = (role: string) => {
  const url = new URL(databaseUrl ?? "postgres://postgres@127.0.0.1:5432/postgres")
  url.username = role
  url.pathname = `/${database}`
  return url.toString()
}

/** The grants from docs/security.md. */
const grantApplicationRole = (role: string) => `
  grant usage on schema eventcore to ${role};
  grant select on eventcore.events, eventcore.streams to ${role};
  grant execute on function eventcore.append(jsonb) to ${role};
  grant select, insert, update on eventcore.snapshots to ${role};
  grant select, insert on eventcore.subject_keys to ${role};
  grant select on eventcore.erasures to ${role};`

const codeOf = async (run: () => Promise<unknown>) => {
  try {
    await run()
    return "ok"
  } catch (error) {
    return (error as { code?: string }).code
  }
}

describeServer("least privilege", () => {
  let admin: postgres.Sql
  let asOwner: postgres.Sql
  let asApp: postgres.Sql

  beforeAll(async () => {
    admin = postgres(databaseUrl as string, { max: 1, onnotice: () => {} })
    for (const role of [owner, app, reader]) await admin.unsafe(`create role ${role} login`)
    await admin.unsafe(`create database ${database} owner ${owner}`)
    await Effect.runPromise(PostgresEventStore.migrate({ url: urlAs(owner) }))
    asOwner = postgres(urlAs(owner), { max: 1, onnotice: () => {} })
    await asOwner.unsafe(grantApplicationRole(app))
    await asOwner.unsafe(
      `grant usage on schema eventcore to ${reader}; grant select on eventcore.events, eventcore.streams to ${reader}`
    )
    asApp = postgres(urlAs(app), { max: 1, onnotice: () => {} })
  })

  afterAll(async () => {
    await asApp?.end()
    await asOwner?.end()
    await admin.unsafe(`drop database if exists ${database} with (force)`)
    for (const role of [owner, app, reader]) await admin.unsafe(`drop role if exists ${role}`)
    await admin.end()
  })

  const withStoreAs = <A, E>(role: string, effect: Effect.Effect<A, E, EventStore.EventStore>) =>
    Effect.runPromise(
      Effect.either(Effect.provide(effect, PostgresEventStore.layer({ url: urlAs(role), maxConnections: 2 })))
    )

  it("the store works under the application role: atomic appends, read-only participants, conflicts, reads", async () => {
    const a = StreamId.unsafeMake("acct-a")
    const b = StreamId.unsafeMake("acct-b")
    const outcome = await withStoreAs(
      app,
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* store.append(writesOf({ streamId: a, expected: "no_stream", events: testEvents(2) }))
        yield* store.append(
          writesOf({ streamId: b, expected: "no_stream", events: testEvents(1) }, { streamId: a, expected: 2 })
        )
        const conflict = yield* Effect.flip(store.append(writesOf({ streamId: a, expected: 1, events: testEvents(1) })))
        const read = yield* store.readStream(a)
        return { conflict, version: read.version }
      })
    )
    expect(Either.isRight(outcome)).toBe(true)
    if (Either.isRight(outcome)) {
      expect(outcome.right.version).toBe(2)
      expect(outcome.right.conflict).toMatchObject({ _tag: "VersionConflict", streamId: a, expected: 1, actual: 2 })
    }
  })

  it("the application role cannot INSERT (bypassing the append's locks), UPDATE, DELETE or TRUNCATE events, even with the triggers dropped", async () => {
    await asOwner.unsafe("drop trigger eventcore_events_append_only on eventcore.events")
    try {
      expect(
        await codeOf(
          () =>
            asApp`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
              values (gen_random_uuid(), 'forged', 1, 'Forged', '{}')`
        )
      ).toBe("42501")
      expect(await codeOf(() => asApp`update eventcore.events set event_type = 'Forged'`)).toBe("42501")
      expect(await codeOf(() => asApp`delete from eventcore.events`)).toBe("42501")
      expect(await codeOf(() => asApp`truncate eventcore.events`)).toBe("42501")
    } finally {
      await asOwner.unsafe(
        "create trigger eventcore_events_append_only before update or delete or truncate on eventcore.events for each statement execute function eventcore.refuse_change()"
      )
    }
    const rows = await asOwner`select count(*)::int as n from eventcore.events where event_type = 'Forged'`
    expect(rows[0]?.n).toBe(0)
  })

  it("a role without EXECUTE on eventcore.append cannot append, and gets a StoreError", async () => {
    expect(
      await codeOf(() => postgresAs(reader, (sql) => sql`select eventcore.append('{"streams":[],"events":[]}'::jsonb)`))
    ).toBe("42501")
    const outcome = await withStoreAs(
      reader,
      Effect.flatMap(EventStore.EventStore, (store) =>
        store.append(writesOf({ streamId: StreamId.unsafeMake("nope"), expected: "any", events: testEvents(1) }))
      )
    )
    expect(Either.isLeft(outcome) && outcome.left._tag).toBe("StoreError")
  })

  it("the application role runs commands with snapshots, writing and reading them back; only the owner clears them", async () => {
    const Added = Schema.TaggedStruct("Added", { n: Schema.Int })
    const name = `Tally_${suffix}`
    const stream = StreamId.unsafeMake("tally-1")
    let applied = 0
    const seen: Array<number> = []
    const Tally = Command.make({
      name,
      event: Added,
      streams: () => [stream],
      initialState: 0,
      apply: (count: number, event) => {
        applied += 1
        return count + event.n
      },
      decide: (count) =>
        Effect.sync(() => {
          seen.push(count)
          return [{ streamId: stream, event: Added.make({ n: 1 }) }]
        }),
      snapshot: Snapshot.make({ state: Schema.Int, version: 1, after: { events: 1 } })
    })
    const countOf = (counter: typeof Snapshot.writtenCounter) =>
      Metric.value(counter.pipe(Metric.tagged("command", name))).pipe(Effect.map((state) => state.count))

    const outcome = await withStoreAs(
      app,
      Effect.gen(function* () {
        // Each run after the first folds an event beyond the last snapshot and writes one; the next reads it.
        for (let i = 0; i < 3; i++) {
          yield* execute(Tally, {})
          yield* Snapshot.awaitWrites
        }
        const refused = yield* Effect.flip(Snapshot.clear())
        return {
          written: yield* countOf(Snapshot.writtenCounter),
          failed: yield* countOf(Snapshot.failedCounter),
          refused
        }
      })
    )
    if (Either.isLeft(outcome)) throw new Error(`the application role's commands failed: ${String(outcome.left)}`)
    expect(seen).toEqual([0, 1, 2])
    // Without snapshots the three runs would fold 0 + 1 + 2 events.
    expect(applied).toBe(2)
    expect(outcome.right).toMatchObject({ written: 2, failed: 0 })
    expect(outcome.right.refused).toMatchObject({ _tag: "StoreError", cause: { code: "42501" } })
    const stored = () =>
      asOwner`select state, streams from eventcore.snapshots where command = ${name}`.then((rows) =>
        rows.map((row) => ({ state: row.state, streams: row.streams }))
      )
    expect(await stored()).toEqual([{ state: 2, streams: [["tally-1", 2]] }])

    const cleared = await withStoreAs(owner, Snapshot.clear(name))
    expect(cleared).toEqual(Either.right(1))
    expect(await stored()).toEqual([])
  })

  it("the application role writes and reads personal data but cannot erase, nor delete or change a key or an erasure; the owner erases", async () => {
    const subject = `subject-${suffix}`
    const stream = StreamId.unsafeMake(`person-${suffix}`)
    const writes = Either.getOrThrow(
      StreamWrites.append(Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, stream, "no_stream")), {
        streamId: stream,
        eventType: "Named",
        data: { name: PersonalData.value(subject, "Quentin Marlowe-Vask") }
      })
    )
    const readName = Effect.flatMap(EventStore.EventStore, (store) => store.readStream(stream)).pipe(
      Effect.map((read) => read.events[0]?.data)
    )
    const asApplication = await withStoreAs(
      app,
      Effect.gen(function* () {
        yield* Effect.flatMap(EventStore.EventStore, (store) => store.append(writes))
        const read = yield* readName
        const refused = yield* Effect.flip(PersonalData.erase(subject, { by: "the application" }))
        return { read, refused }
      })
    )
    if (Either.isLeft(asApplication)) throw new Error(`the application role failed: ${String(asApplication.left)}`)
    expect(asApplication.right.read).toEqual({ name: "Quentin Marlowe-Vask" })
    expect(asApplication.right.refused).toMatchObject({ _tag: "StoreError", cause: { code: "42501" } })
    for (const statement of [
      "delete from eventcore.subject_keys",
      "update eventcore.subject_keys set key = key",
      "truncate eventcore.subject_keys",
      "insert into eventcore.erasures (subject, erased_by) values ('someone', 'app')",
      "delete from eventcore.erasures"
    ]) {
      expect([statement, await codeOf(() => asApp.unsafe(statement))]).toEqual([statement, "42501"])
    }

    const erased = await withStoreAs(owner, PersonalData.erase(subject, { by: "the data protection officer" }))
    expect(erased).toMatchObject({ _tag: "Right", right: { already: false, erasedBy: "the data protection officer" } })
    expect(await withStoreAs(app, readName)).toEqual(Either.right({ name: { $erased: { subject } } }))
    // And the application role cannot make the subject a new key.
    const again = await withStoreAs(
      app,
      Effect.flatMap(EventStore.EventStore, (store) =>
        store.append(
          Either.getOrThrow(
            StreamWrites.append(Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, stream, "any")), {
              streamId: stream,
              eventType: "Named",
              data: { name: PersonalData.value(subject, "Quentin Again") }
            })
          )
        )
      )
    )
    expect(again).toEqual(Either.left(new PersonalData.SubjectErased({ subject })))
  })

  it("only the owner archives, truncates and purges; a purge's bypass of the append-only rule ends with the call, on a pooled connection too", async () => {
    const stream = StreamId.unsafeMake(`ledger-${suffix}`)
    const appended = await withStoreAs(
      app,
      Effect.flatMap(EventStore.EventStore, (store) =>
        store.append(writesOf({ streamId: stream, expected: "no_stream", events: testEvents(4) }))
      )
    )
    expect(Either.isRight(appended)).toBe(true)
    const refusals = await withStoreAs(
      app,
      Effect.all([
        Effect.flip(StreamLifecycle.archive(stream)),
        Effect.flip(StreamLifecycle.truncate(stream, { before: 2 })),
        Effect.flip(StreamLifecycle.purgeTruncated)
      ])
    )
    expect(refusals).toMatchObject({
      _tag: "Right",
      right: [0, 1, 2].map(() => ({ _tag: "StoreError", cause: { code: "42501" } }))
    })
    // Setting the bypass itself gives the application role nothing: it holds no DELETE.
    expect(
      await codeOf(() =>
        asApp.begin((tx) => tx.unsafe("set local eventcore.purging = 'on'; delete from eventcore.events"))
      )
    ).toBe("42501")

    // The owner's pool has one connection: the purge and the DELETE after it share it.
    expect(await withStoreAs(owner, StreamLifecycle.truncate(stream, { before: 3 }))).toMatchObject({
      right: { truncatedBefore: 3 }
    })
    const [purged] = await asOwner`select eventcore.purge_truncated() as removed`
    expect(purged?.removed).toBe("2")
    const [setting] = await asOwner`select coalesce(current_setting('eventcore.purging', true), '') as value`
    expect(setting?.value).toBe("")
    expect(await codeOf(() => asOwner.unsafe(`delete from eventcore.events where stream_id = '${stream}'`))).toBe(
      "EC002"
    )
    expect(await withStoreAs(owner, StreamLifecycle.archive(stream))).toMatchObject({ right: { version: 4 } })
  })

  it("a caller's search_path cannot hijack the append: its own events table and check functions are never used", async () => {
    // An application role with a schema of its own, as many have: it shadows what the append calls.
    await asOwner.unsafe(`grant create on database ${database} to ${app}`)
    const attacked = await postgresAs(app, async (sql) => {
      await sql.unsafe(`
        create schema attack;
        create table attack.events (like eventcore.events);
        create function attack.expected_version_holds(jsonb, bigint) returns boolean language sql as 'select true';
        create function attack.version_conflict(jsonb, text, jsonb, bigint) returns jsonb language sql as 'select null::jsonb';
        create function attack.hashtext(text) returns integer language sql as 'select 0';
        -- Open to everyone, the append's owner included (a schema it cannot use is skipped in lookups).
        grant usage on schema attack to public;
        grant all on attack.events to public;`)
      const call = (tx: postgres.TransactionSql, request: string) =>
        tx.unsafe("select eventcore.append($1::text::jsonb) as reply", [request])
      const request = (expected: unknown, streams = [`hijack-${suffix}`]) =>
        JSON.stringify({
          conflict: "reply",
          streams: streams.map((id) => ({ id, expected })),
          events: [{ stream: streams[0], id: randomUUID(), type: "E", data: {} }]
        })
      const attempts = await sql.begin(async (tx) => {
        await tx.unsafe("set local search_path = attack, eventcore, pg_catalog, pg_temp")
        const where = await tx.unsafe("select current_schemas(false) as schemas")
        const first = await call(tx, request("no_stream"))
        // A stale expected version, on the one-stream path and on the general one.
        const stale = await call(tx, request("no_stream"))
        const staleOfTwo = await call(tx, request("no_stream", [`hijack-${suffix}`, `other-${suffix}`]))
        return { where, first, stale, staleOfTwo }
      })
      const shadowRows = await sql.unsafe("select count(*)::int as n from attack.events")
      await sql.unsafe("drop schema attack cascade")
      return { ...attempts, shadowRows }
    })
    await asOwner.unsafe(`revoke create on database ${database} from ${app}`)
    // The caller's search path was the attacker's while it appended.
    expect(attacked.where[0]?.schemas).toEqual(["attack", "eventcore", "pg_catalog"])
    expect(attacked.first[0]?.reply).toMatchObject({ versions: [1] })
    expect(attacked.stale[0]?.reply).toEqual({
      conflict: { stream_id: `hijack-${suffix}`, expected: "no_stream", actual: 1 }
    })
    expect(attacked.staleOfTwo[0]?.reply).toMatchObject({
      conflict: { stream_id: `hijack-${suffix}`, actual: 1 }
    })
    expect(attacked.shadowRows).toEqual([{ n: 0 }])
    const stored = await asOwner`select stream_version from eventcore.events where stream_id = ${`hijack-${suffix}`}`
    expect(stored.map((row) => row.stream_version)).toEqual([1])
  })

  it("the owner's function keeps a fixed search_path, so callers cannot substitute tables", async () => {
    const rows = await asOwner`
      select proname, prosecdef, proconfig from pg_proc
      where pronamespace = 'eventcore'::regnamespace and proname = 'append'`
    expect(rows.map((r) => [r.proname, r.prosecdef, r.proconfig])).toEqual([
      ["append", true, ["search_path=eventcore, pg_temp"]]
    ])
  })
})

const postgresAs = async <A>(role: string, run: (sql: postgres.Sql) => Promise<A>): Promise<A> => {
  const sql = postgres(urlAs(role), { max: 1, onnotice: () => {} })
  try {
    return await run(sql)
  } finally {
    await sql.end()
  }
}
