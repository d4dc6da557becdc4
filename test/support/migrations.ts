import { readFileSync } from "node:fs"

/** The tags of the migrations the package ships, in order, from drizzle-kit's journal. */
export const shippedMigrations: ReadonlyArray<string> = (
  JSON.parse(readFileSync(new URL("../../drizzle/meta/_journal.json", import.meta.url), "utf8")) as {
    entries: ReadonlyArray<{ tag: string }>
  }
).entries.map((entry) => entry.tag)
