/** Stands for a store of your own in the README's contract example: its layer supplies the `EventStore`. */
import { InMemoryEventStore } from "eventcore"

export const layer = InMemoryEventStore.layer
