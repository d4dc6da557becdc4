/**
 * Test support for eventcore stores: the public contract suite, its helpers and
 * the model-based property, usable against any `EventStore` implementation;
 * and for applications, golden samples of their stored events, and checks of
 * their commands' snapshots.
 */

export * as CommandSpec from "./CommandSpec.js"
export { type ContractOptions, runEventStoreContract } from "./contract.js"
export { runSpec, type StoredEvent, type Streams } from "./given.js"
export { expectDecodes, type StoredSample, storedEvent } from "./goldenSamples.js"
export { type Participant, testEvents, writesOf } from "./helpers.js"
export { operationArbitrary, runModelProperty, scenarioArbitrary } from "./model.js"
export * as ProjectionSpec from "./ProjectionSpec.js"
export * as ReactorSpec from "./ReactorSpec.js"
export {
  expectSnapshotCurrent,
  type SampleEvent,
  type SnapshotPropertyOptions,
  type SnapshotSample,
  snapshotProperty,
  snapshotSample
} from "./snapshots.js"
export * as TestStore from "./TestStore.js"
