/**
 * Statements on a postgres.js client, as the SQL store runs them.
 */
import type postgres from "postgres"
import type { RunStatement } from "../sql/driver.js"

/** Statements as the driver's prepared statements, rows as arrays. */
export const runOn =
  (client: postgres.Sql): RunStatement =>
  (statement, params) =>
    client
      .unsafe(statement, params as Array<postgres.ParameterOrJSON<never>>, { prepare: true })
      .values()
      .then(dense)

/**
 * postgres.js 3.4.9 resets its per-connection row counter only when a result
 * completes: after a connection is lost in the middle of a result, the next
 * result on that connection starts with as many holes as rows were received
 * (porsager/postgres#1119, #1181). The rows after the holes are the right ones.
 * With `fetch_types` on, the catalog query opening the new connection took the
 * holes; without it, the connection's first statement does, so every statement
 * the store runs on its pool goes through here.
 */
const dense = <A>(rows: ReadonlyArray<A>): ReadonlyArray<A> =>
  rows.length > 0 && !(0 in rows) ? rows.filter(() => true) : rows
