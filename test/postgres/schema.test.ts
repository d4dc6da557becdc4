/**
 * docs/schema.sql comes from PGlite; a PostgreSQL server migrated by the same
 * migrations must hold the same schema. Checked section by section, views
 * apart: PostgreSQL 15 prints a view's columns qualified by their table (the
 * streams view reads `events.stream_id`), 16 and later as PGlite does.
 * Tables, indexes, foreign keys, functions, triggers and privileges read the
 * same on 15 to 18.
 */
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { PostgresEventStore } from "eventcore"
import postgres from "postgres"
import { afterAll, beforeAll, expect, it } from "vitest"
import { databaseUrl, describeServer, urlOf } from "../support/postgres.js"
import { dumpSections, renderSection, type Section, schemaFile } from "../support/schemaDump.js"

/** The text of one section in docs/schema.sql: from its title to the next section's. */
const sectionInFile = (file: string, sections: ReadonlyArray<Section>, index: number) => {
  const titleOf = (at: number) => {
    const section = sections[at]
    return section === undefined ? -1 : file.indexOf(`\n${section.title}\n`)
  }
  const start = titleOf(index)
  const end = titleOf(index + 1)
  return start === -1 ? "" : file.slice(start + 1, end === -1 ? file.length : end).trimEnd()
}

describeServer("docs/schema.sql", () => {
  const database = `eventcore_schema_${randomUUID().replaceAll("-", "").slice(0, 16)}`
  let admin: postgres.Sql | undefined
  let client: postgres.Sql | undefined

  beforeAll(async () => {
    admin = postgres(databaseUrl ?? "", { max: 1, onnotice: () => {} })
    await admin.unsafe(`create database "${database}"`)
    await Effect.runPromise(PostgresEventStore.migrate({ url: urlOf(database) }))
    client = postgres(urlOf(database), { max: 1, onnotice: () => {} })
  })
  afterAll(async () => {
    await client?.end()
    await admin?.unsafe(`drop database if exists "${database}" with (force)`)
    await admin?.end()
  })

  it("is what the migrations make on this server, views apart", async () => {
    const server = client
    if (server === undefined) throw new Error("the migrated database is not ready")
    const sections = await dumpSections((statement, params) => server.unsafe(statement, [...params] as Array<string>))
    const file = readFileSync(schemaFile, "utf8")
    sections.forEach((section, index) => {
      if (section.kind === "views") return
      expect(renderSection(section), `the ${section.kind} of docs/schema.sql`).toBe(
        sectionInFile(file, sections, index)
      )
    })
  })
})
