/**
 * The committed migrations in drizzle/ must be exactly what drizzle-kit
 * generates from src/sql/migrationTables.ts (the tables of src/sql/schema.ts
 * without a schema): a schema change without `npm run db:generate` fails here.
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..")
// Inside the repository, so the copied schema resolves drizzle-orm from node_modules.
const cacheDir = join(root, "node_modules", ".cache")
mkdirSync(cacheDir, { recursive: true })
const scratch = mkdtempSync(join(cacheDir, "eventcore-drift-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Runs `drizzle-kit generate` for `schema` into a copy of drizzle/, returning the new files. */
const generate = (name: string, schema: string) => {
  const out = join(scratch, name)
  cpSync(join(root, "drizzle"), out, { recursive: true })
  const config = join(scratch, `${name}.config.ts`)
  writeFileSync(
    config,
    // drizzle-kit takes paths relative to the working directory.
    `export default ${JSON.stringify({ dialect: "postgresql", schema: relative(root, schema), out: relative(root, out), strict: true })}\n`
  )
  const before = new Set(readdirSync(out))
  // drizzle-kit exits 0 even when it fails, so its output is checked too.
  const run = spawnSync(join(root, "node_modules", ".bin", "drizzle-kit"), ["generate", `--config=${config}`], {
    cwd: root,
    encoding: "utf8"
  })
  const output = `${run.stdout}${run.stderr}`
  expect(run.status, output).toBe(0)
  expect(output).not.toMatch(/error/i)
  return { output, added: readdirSync(out).filter((file) => !before.has(file)) }
}

describe("migrations", () => {
  it("match the schema: drizzle-kit generates nothing new", () => {
    const { output, added } = generate("current", join(root, "src", "sql", "migrationTables.ts"))
    expect(added).toEqual([])
    expect(output).toContain("No schema changes")
  }, 60_000)

  it("would be detected as stale after a schema change", () => {
    const changed = join(scratch, "changed-schema")
    mkdirSync(changed)
    cpSync(join(root, "src", "sql", "migrationTables.ts"), join(changed, "migrationTables.ts"))
    const schema = readFileSync(join(root, "src", "sql", "schema.ts"), "utf8")
    const withNote = schema.replace(
      'eventType: text("event_type").notNull(),',
      'eventType: text("event_type").notNull(),\n      note: text("note"),'
    )
    expect(withNote).not.toBe(schema)
    writeFileSync(join(changed, "schema.ts"), withNote)
    const { added } = generate("changed", join(changed, "migrationTables.ts"))
    expect(added.filter((file) => file.endsWith(".sql"))).toHaveLength(1)
  }, 60_000)

  it("are all listed in the journal, in order", () => {
    const journal = JSON.parse(readFileSync(join(root, "drizzle", "meta", "_journal.json"), "utf8")) as {
      entries: Array<{ idx: number; tag: string }>
    }
    const files = readdirSync(join(root, "drizzle"))
      .filter((file) => file.endsWith(".sql"))
      .sort()
    expect(journal.entries.map((entry) => `${entry.tag}.sql`)).toEqual(files)
    expect(journal.entries.map((entry) => entry.idx)).toEqual(files.map((_, i) => i))
  })
})
