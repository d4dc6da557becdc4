/**
 * Test support for eventcore stores: the public contract suite, its helpers and
 * the model-based property, usable against any `EventStore` implementation.
 */
export { type ContractOptions, runEventStoreContract } from "./contract.js"
export { type Participant, testEvents, writesOf } from "./helpers.js"
export { operationArbitrary, runModelProperty, scenarioArbitrary } from "./model.js"
