/**
 * The package's entry without the SQL stores, for the mutation run only
 * (vitest.mutation.config.ts): the suites it runs never open a database, and
 * importing drizzle, postgres.js and PGlite again for every mutant costs seconds.
 */
export * as Command from "../../src/Command.js"
export type { NewEvent, RecordedEvent } from "../../src/Event.js"
export * as EventStore from "../../src/EventStore.js"
export * as ExpectedVersion from "../../src/ExpectedVersion.js"
export * from "../../src/errors.js"
export type { ExecuteError, ExecuteOptions, ExecutionResult } from "../../src/execute.js"
export { defaultRetry, execute } from "../../src/execute.js"
export * as InMemoryEventStore from "../../src/InMemoryEventStore.js"
export * as StreamId from "../../src/StreamId.js"
export * as StreamWrites from "../../src/StreamWrites.js"
