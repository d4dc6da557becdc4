/**
 * A process that runs the bank's balances projection on a PostgreSQL database,
 * for test/postgres/projections.test.ts, bundled (../support/bundle.ts): `node <bundle> <url>`.
 * It prints `pid <pid>` once started and runs until killed.
 */
import { Effect } from "effect"
import { Balances } from "../../src/demo/readModel.js"
import { PostgresEventStore, Projection } from "../../src/index.js"

const [url] = process.argv.slice(2) as [string]
process.stdout.write(`pid ${process.pid}\n`)
Effect.runPromise(
  Projection.run(Balances, { batchSize: 10 }).pipe(Effect.provide(PostgresEventStore.layer({ url, maxConnections: 3 })))
).catch((error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(3)
})
