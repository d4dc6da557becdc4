/**
 * The mapping from real PostgreSQL errors, raised by a real server through
 * postgres.js, to eventcore's typed errors.
 */
import { randomUUID } from "node:crypto"
import { Effect, Exit, Scope } from "effect"
import postgres from "postgres"
import { afterAll, beforeAll, expect, it } from "vitest"
import { isRacedWrite, parseDuplicateEventId, parseVersionConflict, storeError } from "../../src/sql/errors.js"
import { describeServer, usePostgresTemplate } from "../support/postgres.js"

const errorOf = async (run: () => Promise<unknown>): Promise<unknown> => {
  try {
    await run()
  } catch (error) {
    return error
  }
  throw new Error("expected the statement to fail")
}

describeServer("PostgreSQL errors at the edge", () => {
  const server = usePostgresTemplate()
  let sql: postgres.Sql
  let release: () => Promise<void>

  beforeAll(async () => {
    const scope = Effect.runSync(Scope.make())
    const { url } = await Effect.runPromise(Scope.extend(server.freshDatabase, scope))
    sql = postgres(url, { max: 4, onnotice: () => {} })
    release = async () => {
      await sql.end()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
    const request = JSON.stringify({
      streams: [{ id: "s", expected: "no_stream" }],
      events: [{ stream: "s", id: "0190a7d2-3c4e-7a1b-8c2d-000000000001", type: "E", data: {} }]
    })
    await sql`select eventcore.append(${request}::text::jsonb)`
  })
  afterAll(() => release())

  it("the append function's EC001 becomes VersionConflict with stream, expected and actual", async () => {
    const request = JSON.stringify({ streams: [{ id: "s", expected: 7 }], events: [] })
    const error = await errorOf(() => sql`select eventcore.append(${request}::text::jsonb)`)
    expect(parseVersionConflict(error)).toMatchObject({
      _tag: "VersionConflict",
      streamId: "s",
      expected: 7,
      actual: 1
    })
  })

  it("23505 on event_id becomes DuplicateEventId, not a conflict", async () => {
    const request = JSON.stringify({
      streams: [{ id: "t", expected: "any" }],
      events: [{ stream: "t", id: "0190a7d2-3c4e-7a1b-8c2d-000000000001", type: "E", data: {} }]
    })
    const error = await errorOf(() => sql`select eventcore.append(${request}::text::jsonb)`)
    expect(parseDuplicateEventId(error)).toMatchObject({ eventId: "0190a7d2-3c4e-7a1b-8c2d-000000000001" })
    expect(parseVersionConflict(error)).toBeUndefined()
  })

  it("23505 on the stream version index and 40001 are raced writes, reported as conflicts", async () => {
    const duplicate = await errorOf(
      () =>
        sql`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data) values (${randomUUID()}, 's', 1, 'E', '{}')`
    )
    expect((duplicate as { code: string }).code).toBe("23505")
    expect(isRacedWrite(duplicate)).toBe(true)
    expect(parseDuplicateEventId(duplicate)).toBeUndefined()

    // Two serializable transactions that read what the other writes.
    const a = await sql.reserve()
    const b = await sql.reserve()
    try {
      await a`begin isolation level serializable`
      await b`begin isolation level serializable`
      await a`select count(*) from eventcore.events where stream_id = 'x'`
      await b`select count(*) from eventcore.events where stream_id = 'y'`
      await a`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data) values (${randomUUID()}, 'y', 1, 'E', '{}')`
      await b`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data) values (${randomUUID()}, 'x', 1, 'E', '{}')`
      await a`commit`
      const serialization = await errorOf(() => b`commit`)
      expect((serialization as { code: string }).code).toBe("40001")
      expect(isRacedWrite(serialization)).toBe(true)
    } finally {
      await b`rollback`.catch(() => undefined)
      a.release()
      b.release()
    }
  })

  it("a cancelled statement becomes a StoreError that says what happened", async () => {
    const error = await errorOf(() =>
      sql.begin(async (tx) => {
        await tx`set local statement_timeout = '50ms'`
        await tx`select pg_sleep(2)`
      })
    )
    const mapped = storeError("read_stream", error)
    expect(mapped.message).toContain("PostgreSQL cancelled read_stream")
    expect(mapped.message).toContain("statement_timeout")
  })

  it("refused updates keep the database's own explanation", async () => {
    const error = await errorOf(() => sql`update eventcore.events set event_type = 'X'`)
    expect(storeError("append", error).message).toBe(
      "eventcore: UPDATE on eventcore.events is refused: the event log is append-only."
    )
  })
})
