/**
 * Raw-SQL tests of the rules the database enforces, bypassing the library:
 * each fails if its rule is removed from the migrations. Shared by the PGlite
 * and PostgreSQL suites through a minimal query function.
 */
import { randomUUID } from "node:crypto"
import { expect, it } from "vitest"

export interface RawSql {
  readonly query: (text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<Record<string, unknown>>>
}

/** A database with a migrated schema of that name. */
export interface SchemaSql extends RawSql {
  readonly schema: string
}

export interface SqlFailure {
  readonly code: string
  readonly message: string
  readonly detail?: string
}

const failureOf = async (run: Promise<unknown>): Promise<SqlFailure> => {
  try {
    await run
  } catch (error) {
    const e = error as { code?: string; message?: string; detail?: string }
    return { code: e.code ?? "none", message: e.message ?? "", ...(e.detail === undefined ? {} : { detail: e.detail }) }
  }
  throw new Error("the statement was expected to fail, but it succeeded")
}

const appendRequest = (
  streams: ReadonlyArray<{ id: string; expected: unknown }>,
  events: ReadonlyArray<{ stream: string; type?: string; data?: unknown }>
) =>
  JSON.stringify({
    streams,
    events: events.map((e) => ({ stream: e.stream, id: randomUUID(), type: e.type ?? "E", data: e.data ?? {} }))
  })

export const defineEnforcementTests = (withDatabase: (body: (sql: SchemaSql) => Promise<void>) => Promise<void>) => {
  const append = (sql: SchemaSql, request: string) =>
    sql.query(`select ${sql.schema}.append($1::text::jsonb) as reply`, [request])
  const insertEvent = (sql: SchemaSql, stream: string, version: number) =>
    sql.query(
      `insert into ${sql.schema}.events (event_id, stream_id, stream_version, event_type, data) values (gen_random_uuid(), $1, $2, 'E', '{}')`,
      [stream, version]
    )
  const versionOf = async (sql: SchemaSql, stream: string) => {
    const rows = await sql.query(`select version from ${sql.schema}.streams where stream_id = $1`, [stream])
    return rows[0]?.version
  }
  const versionsOf = async (sql: SchemaSql, stream: string) =>
    (
      await sql.query(`select stream_version from ${sql.schema}.events where stream_id = $1 order by stream_version`, [
        stream
      ])
    ).map((row) => row.stream_version)

  it("assigns versions itself: eventcore.append numbers each stream's events on from its current version", () =>
    withDatabase(async (sql) => {
      await append(sql, appendRequest([{ id: "s", expected: "no_stream" }], [{ stream: "s" }, { stream: "s" }]))
      await append(sql, appendRequest([{ id: "s", expected: 2 }], [{ stream: "s" }]))
      expect(await versionsOf(sql, "s")).toEqual([1, 2, 3])
      expect(await versionOf(sql, "s")).toBe(3)
    }))

  it("numbers a one-stream append's events on from the stream's version, and refuses one naming another stream (22023), writing nothing", () =>
    withDatabase(async (sql) => {
      await append(sql, appendRequest([{ id: "s", expected: "no_stream" }], [{ stream: "s" }, { stream: "s" }]))
      await append(sql, appendRequest([{ id: "s", expected: "stream_exists" }], [{ stream: "s" }, { stream: "s" }]))
      expect(await versionsOf(sql, "s")).toEqual([1, 2, 3, 4])
      const stray = await failureOf(
        append(sql, appendRequest([{ id: "s", expected: 4 }], [{ stream: "s" }, { stream: "other" }]))
      )
      expect(stray.code).toBe("22023")
      expect(await versionsOf(sql, "s")).toEqual([1, 2, 3, 4])
      expect(await versionsOf(sql, "other")).toEqual([])
    }))

  it("refuses a raw INSERT of a version already taken (unique index) or below 1 (check)", () =>
    withDatabase(async (sql) => {
      await append(sql, appendRequest([{ id: "s", expected: "any" }], [{ stream: "s" }, { stream: "s" }]))
      expect((await failureOf(insertEvent(sql, "s", 2))).code).toBe("23505")
      expect((await failureOf(insertEvent(sql, "s", 0))).code).toBe("23514")
      expect(await versionsOf(sql, "s")).toEqual([1, 2])
    }))

  it("accepts a raw INSERT of exactly the next version, and the stream's version is its last event's", () =>
    withDatabase(async (sql) => {
      await insertEvent(sql, "raw", 1)
      await insertEvent(sql, "raw", 2)
      expect(await versionOf(sql, "raw")).toBe(2)
      // The library's next append continues from there.
      await append(sql, appendRequest([{ id: "raw", expected: 2 }], [{ stream: "raw" }]))
      expect(await versionsOf(sql, "raw")).toEqual([1, 2, 3])
    }))

  it("refuses UPDATE, DELETE and TRUNCATE of events with SQLSTATE EC002 and says why", () =>
    withDatabase(async (sql) => {
      await append(sql, appendRequest([{ id: "s", expected: "any" }], [{ stream: "s", data: { v: 1 } }]))
      for (const statement of [
        `update ${sql.schema}.events set data = '{"v": 2}'`,
        `delete from ${sql.schema}.events`,
        `truncate ${sql.schema}.events`
      ]) {
        const refused = await failureOf(sql.query(statement))
        expect(refused.code).toBe("EC002")
        expect(refused.message).toMatch(
          new RegExp(
            `^eventcore: (UPDATE|DELETE|TRUNCATE) on ${sql.schema}\\.events is refused: the event log is append-only$`
          )
        )
      }
      const rows = await sql.query(`select data from ${sql.schema}.events where stream_id = 's'`)
      expect(rows.map((r) => r.data)).toEqual([{ v: 1 }])
    }))

  it("checks every participant, a stale read-only one included, and reports it with SQLSTATE EC001", () =>
    withDatabase(async (sql) => {
      await append(sql, appendRequest([{ id: "guard", expected: "any" }], [{ stream: "guard" }, { stream: "guard" }]))
      const refused = await failureOf(
        append(
          sql,
          appendRequest(
            [
              { id: "target", expected: "no_stream" },
              { id: "guard", expected: 1 }
            ],
            [{ stream: "target" }]
          )
        )
      )
      expect(refused.code).toBe("EC001")
      expect(JSON.parse(refused.detail ?? "{}")).toEqual({ stream_id: "guard", expected: 1, actual: 2 })
      expect(await versionsOf(sql, "target")).toEqual([])
    }))

  it('with "conflict": "reply", every conflict is the reply, and nothing is written', () =>
    withDatabase(async (sql) => {
      const replying = (
        streams: ReadonlyArray<{ id: string; expected: unknown }>,
        events: ReadonlyArray<{ stream: string }>
      ) => JSON.stringify({ ...JSON.parse(appendRequest(streams, events)), conflict: "reply" })
      await append(sql, appendRequest([{ id: "s1", expected: "any" }], [{ stream: "s1" }, { stream: "s1" }]))
      const [single] = await append(sql, replying([{ id: "s1", expected: 1 }], [{ stream: "s1" }]))
      expect(single?.reply).toEqual({ conflict: { stream_id: "s1", expected: 1, actual: 2 } })
      // A stale read-only participant first in the ids' order: nothing written yet.
      const [guarded] = await append(
        sql,
        replying(
          [
            { id: "z-target", expected: "no_stream" },
            { id: "s1", expected: 5 }
          ],
          [{ stream: "z-target" }]
        )
      )
      expect(guarded?.reply).toEqual({ conflict: { stream_id: "s1", expected: 5, actual: 2 } })
      expect(await versionsOf(sql, "z-target")).toEqual([])
      // Whatever the order of the participants: every one is checked before anything is written.
      const [afterOthers] = await append(
        sql,
        replying(
          [
            { id: "s1", expected: 1 },
            { id: "a-first", expected: "no_stream" }
          ],
          [{ stream: "s1" }, { stream: "a-first" }]
        )
      )
      expect(afterOthers?.reply).toEqual({ conflict: { stream_id: "s1", expected: 1, actual: 2 } })
      expect(await versionOf(sql, "a-first")).toBeUndefined()
      const [missing] = await append(sql, replying([{ id: "ghost", expected: "stream_exists" }], [{ stream: "ghost" }]))
      expect(missing?.reply).toEqual({ conflict: { stream_id: "ghost", expected: "stream_exists", actual: 0 } })
      expect(await versionOf(sql, "ghost")).toBeUndefined()
      expect(await versionsOf(sql, "s1")).toEqual([1, 2])
      // Without the flag (raw SQL written for 0005), a conflict is still the error.
      const raised = await failureOf(append(sql, appendRequest([{ id: "s1", expected: 1 }], [{ stream: "s1" }])))
      expect(raised.code).toBe("EC001")
    }))

  it("checks all four expected-version kinds", () =>
    withDatabase(async (sql) => {
      const attempt = async (expected: unknown) => {
        try {
          await append(sql, appendRequest([{ id: "k", expected }], [{ stream: "k" }]))
          return "ok"
        } catch (error) {
          return (error as { code?: string }).code
        }
      }
      expect(await attempt("stream_exists")).toBe("EC001")
      expect(await attempt("no_stream")).toBe("ok")
      expect(await attempt("no_stream")).toBe("EC001")
      expect(await attempt(0)).toBe("EC001")
      expect(await attempt("stream_exists")).toBe("ok")
      expect(await attempt(1)).toBe("EC001")
      expect(await attempt(2)).toBe("ok")
      expect(await attempt("any")).toBe("ok")
      expect(await versionsOf(sql, "k")).toEqual([1, 2, 3, 4])
    }))

  it("refuses an event for a stream that is not a participant", () =>
    withDatabase(async (sql) => {
      const refused = await failureOf(
        append(sql, appendRequest([{ id: "declared", expected: "any" }], [{ stream: "declared" }, { stream: "other" }]))
      )
      expect(refused.code).toBe("22023")
      expect(await versionsOf(sql, "declared")).toEqual([])
    }))
}
