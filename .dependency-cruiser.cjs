/**
 * The import graph of src/ runs one way (`npm run check:imports`, in .ci/run).
 * The circles allowed go through errors.ts, which imports nothing but types:
 * it names the types of the values its errors carry (LogPosition, StreamId),
 * whose modules raise those errors.
 */
/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A circle in src/ (see docs/architecture.md): move the shared part into a module both can import.",
      from: { path: "^src/" },
      to: { circular: true, viaOnly: { pathNot: "^src/errors\\.ts$" } }
    },
    {
      name: "errors-import-types-only",
      severity: "error",
      comment: "errors.ts is in the circles allowed because it imports only types from src/.",
      from: { path: "^src/errors\\.ts$" },
      to: { path: "^src/", dependencyTypesNot: ["type-only"] }
    },
    {
      name: "generic-layer-names-no-store",
      severity: "error",
      comment: "The generic layer (src/internal/) knows the stores only through src/internal/storeContract.ts.",
      from: { path: "^src/internal/" },
      to: { path: "^src/(sql|postgres|pglite)/|^src/(Postgres|Pglite|InMemory)EventStore\\.ts$" }
    },
    {
      name: "event-store-stays-generic",
      severity: "error",
      comment: "EventStore.ts is what applications use: it never imports the projection machinery or a store.",
      from: { path: "^src/EventStore\\.ts$" },
      to: {
        path: "^src/(internal/(runner|checkpoints|follow|eventStore)|sql/|postgres/|pglite/)|^src/Projection\\.ts$"
      }
    },
    {
      name: "package-never-imports-examples-or-bench",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(examples|bench|test)/" }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true
  }
}
