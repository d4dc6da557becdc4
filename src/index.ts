/**
 * eventcore: multi-stream event sourcing for Effect.
 */
export * as Command from "./Command.js"
export type { NewEvent, RecordedEvent } from "./Event.js"
export * as EventStore from "./EventStore.js"
export * as ExpectedVersion from "./ExpectedVersion.js"
export * from "./errors.js"
export type { ExecuteError, ExecuteOptions, ExecutionResult } from "./execute.js"
export { defaultRetry, execute } from "./execute.js"
export * as InMemoryEventStore from "./InMemoryEventStore.js"
export * as LogMessage from "./LogMessage.js"
export * as LogPosition from "./LogPosition.js"
export * as PgliteEventStore from "./PgliteEventStore.js"
export * as PostgresEventStore from "./PostgresEventStore.js"
export * as Projection from "./Projection.js"
export * as Reactor from "./Reactor.js"
export * as StreamId from "./StreamId.js"
export * as StreamWrites from "./StreamWrites.js"
