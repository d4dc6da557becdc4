/**
 * docs/schema.sql shows the schema the migrations make today: regenerated
 * here from a fresh PGlite that eventcore migrates, it must be the committed
 * file. A migration without `npm run db:schema` fails here.
 */
import { readFileSync } from "node:fs"
import type { PGlite } from "@electric-sql/pglite"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpSchema, migratedPglite, queryOn, schemaFile } from "./support/schemaDump.js"

let client: PGlite | undefined
let migrated = ""

beforeAll(async () => {
  client = await migratedPglite()
  migrated = await dumpSchema(queryOn(client))
})
afterAll(async () => {
  await client?.close()
})

describe("docs/schema.sql", () => {
  it("is the schema the migrations make", () => {
    expect(
      migrated,
      "docs/schema.sql differs from the schema the migrations make: run `npm run db:schema` and commit the file"
    ).toBe(readFileSync(schemaFile, "utf8"))
  })

  it("builds that same schema when run in an empty database", async () => {
    if (client === undefined) throw new Error("the migrated PGlite is not ready")
    await client.exec("drop schema eventcore cascade")
    await client.exec(migrated)
    expect(await dumpSchema(queryOn(client))).toBe(migrated)
  })
})
