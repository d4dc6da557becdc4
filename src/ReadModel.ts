/**
 * A projection's read model: the application's own tables, written through a
 * Drizzle database bound to the transaction that also moves the projection's
 * checkpoint (see `Projection`).
 */
import { Context } from "effect"
import type { CheckpointStore, ReadModelDatabase } from "./internal/storeContract.js"

/**
 * The read model's database inside a projection's handler: a Drizzle
 * PostgreSQL database bound to the transaction of the batch being projected.
 * Write the application's tables through it; do not open transactions of its own.
 */
export class ReadModel extends Context.Tag("eventcore/ReadModel")<ReadModel, { readonly db: ReadModelDatabase }>() {}

/**
 * A store that can give projections a `ReadModel`: the PGlite and PostgreSQL
 * stores provide it with their `EventStore`, holding their checkpoints, which
 * commit in the transaction of a batch. Running a projection whose handler
 * needs a `ReadModel` requires it, so the type says when a SQL store is needed
 * (the in-memory store runs reactors and projections without one).
 */
export class ReadModelStore extends Context.Tag("eventcore/ReadModelStore")<ReadModelStore, CheckpointStore>() {}
