/**
 * `npm run db:schema`: (re)writes docs/schema.sql from a fresh in-memory PGlite
 * migrated by eventcore. Run it after adding a migration.
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { dumpSchema, migratedPglite, queryOn, schemaFile } from "./schemaDump.js"

const client = await migratedPglite()
try {
  const dump = await dumpSchema(queryOn(client))
  writeFileSync(schemaFile, dump)
  console.log(`Wrote ${fileURLToPath(schemaFile)} (${dump.split("\n").length - 1} lines).`)
} finally {
  await client.close()
}
