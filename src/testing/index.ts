/**
 * Test support for eventcore stores: the public contract suite, its helpers and
 * the model-based property, usable against any `EventStore` implementation;
 * and for applications, golden samples of their stored events.
 */
export { type ContractOptions, runEventStoreContract } from "./contract.js"
export { expectDecodes, type StoredSample, storedEvent } from "./goldenSamples.js"
export { type Participant, testEvents, writesOf } from "./helpers.js"
export { operationArbitrary, runModelProperty, scenarioArbitrary } from "./model.js"
