/**
 * The harness for followers on hot standbys (issue #16): a PostgreSQL 15
 * primary and a hot standby the test owns. What the standby replays, what it
 * refuses, and a promotion after the primary crashes.
 */
import postgres from "postgres"
import { afterAll, beforeAll, expect, it } from "vitest"
import { describeServer } from "../support/postgres.js"
import { useReplication } from "../support/replication.js"

const errorOf = async (run: () => Promise<unknown>): Promise<postgres.PostgresError> => {
  try {
    await run()
  } catch (error) {
    if (error instanceof postgres.PostgresError) return error
    throw error
  }
  throw new Error("expected the statement to fail")
}

const client = (url: string) => postgres(url, { max: 1, onnotice: () => {} })

describeServer("a primary and a hot standby the test owns", () => {
  const replication = useReplication()
  let primary: postgres.Sql
  let standby: postgres.Sql
  let lastPrimaryXid = 0n

  beforeAll(() => {
    primary = client(replication.primaryUrl())
    standby = client(replication.standbyUrl())
  })
  afterAll(async () => {
    await Promise.all([primary?.end({ timeout: 1 }), standby?.end({ timeout: 1 })])
  })

  it("a table and a row made on the primary are on the standby once it has replayed", async () => {
    await primary`create table harness (id int primary key, note text not null)`
    await primary.begin(async (sql) => {
      await sql`insert into harness values (1, 'from the primary')`
      const [row] = await sql`select pg_current_xact_id()::text as xid`
      lastPrimaryXid = BigInt(row?.xid as string)
    })
    replication.waitReplay()
    expect(await standby`select id, note from harness`).toEqual([{ id: 1, note: "from the primary" }])
    expect(await standby`select pg_is_in_recovery() as recovery`).toEqual([{ recovery: true }])
  })

  it("the standby refuses an INSERT with SQLSTATE 25006 (read-only transaction)", async () => {
    const error = await errorOf(() => standby`insert into harness values (2, 'from the standby')`)
    expect(error.code).toBe("25006")
  })

  it("the standby has no transaction id to give, but takes snapshots", async () => {
    const error = await errorOf(() => standby`select pg_current_xact_id()`)
    expect(error.code).toBe("25006")
    expect(error.message).toContain("during recovery")
    const [row] = await standby`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`
    // Nothing runs on the primary: the standby's snapshot starts past the last transaction it replayed.
    expect(BigInt(row?.xmin as string)).toBeGreaterThan(lastPrimaryXid)
  })

  it("after the primary crashes, the promoted standby takes writes, with transaction ids past the primary's", async () => {
    replication.waitReplay()
    replication.crashPrimary()
    await expect(primary`select 1`).rejects.toThrow()
    replication.promote()
    expect(await standby`select pg_is_in_recovery() as recovery`).toEqual([{ recovery: false }])
    const xid = await standby.begin(async (sql) => {
      await sql`insert into harness values (2, 'from the promoted standby')`
      const [row] = await sql`select pg_current_xact_id()::text as xid`
      return BigInt(row?.xid as string)
    })
    expect(xid).toBeGreaterThan(lastPrimaryXid)
    expect(await standby`select id from harness order by id`).toEqual([{ id: 1 }, { id: 2 }])
  })
})
