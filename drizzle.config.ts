import { defineConfig } from "drizzle-kit"

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/sql/migrationTables.ts",
  out: "./drizzle",
  strict: true,
  verbose: true
})
