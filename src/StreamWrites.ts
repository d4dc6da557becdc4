/**
 * The write set of one atomic append: the expected version of every participant
 * stream, and the events to append. A participant that gets no events is a
 * read-only participant: its version is checked all the same.
 */
import { Chunk, Either, HashMap, Option, Pipeable } from "effect"
import { dual } from "effect/Function"
import type { NewEvent } from "./Event.js"
import * as ExpectedVersion from "./ExpectedVersion.js"
import { ConflictingExpectedVersions, EventEncodeError, InvalidExpectedVersion, UndeclaredStream } from "./errors.js"
import { whyNotJson, whyNotText } from "./internal/json.js"
import { isUuid } from "./internal/uuid.js"
import type { StreamId } from "./StreamId.js"

const TypeId: unique symbol = Symbol.for("eventcore/StreamWrites")

export interface StreamWrites extends Pipeable.Pipeable {
  readonly [TypeId]: typeof TypeId
  /** @internal */
  readonly expectations: HashMap.HashMap<StreamId, ExpectedVersion.ExpectedVersion>
  /** @internal registration order, so participants are reported in the order the writer gave them */
  readonly order: Chunk.Chunk<StreamId>
  /** @internal */
  readonly pending: Chunk.Chunk<NewEvent>
}

class StreamWritesImpl implements StreamWrites {
  readonly [TypeId]: typeof TypeId = TypeId
  constructor(
    readonly expectations: HashMap.HashMap<StreamId, ExpectedVersion.ExpectedVersion>,
    readonly order: Chunk.Chunk<StreamId>,
    readonly pending: Chunk.Chunk<NewEvent>
  ) {}
  pipe() {
    // biome-ignore lint/complexity/noArguments: Pipeable's variadic protocol, as in effect's own data types
    return Pipeable.pipeArguments(this, arguments)
  }
}

export const isStreamWrites = (u: unknown): u is StreamWrites => typeof u === "object" && u !== null && TypeId in u

export const empty: StreamWrites = new StreamWritesImpl(HashMap.empty(), Chunk.empty(), Chunk.empty())

/**
 * Registers `streamId` as a participant expected to be at `expected`. Registering
 * it again with the same expectation is a no-op; with another, an error.
 */
export const expect: {
  (
    streamId: StreamId,
    expected: ExpectedVersion.ExpectedVersion
  ): (self: StreamWrites) => Either.Either<StreamWrites, ConflictingExpectedVersions | InvalidExpectedVersion>
  (
    self: StreamWrites,
    streamId: StreamId,
    expected: ExpectedVersion.ExpectedVersion
  ): Either.Either<StreamWrites, ConflictingExpectedVersions | InvalidExpectedVersion>
} = dual(
  3,
  (
    self: StreamWrites,
    streamId: StreamId,
    expected: ExpectedVersion.ExpectedVersion
  ): Either.Either<StreamWrites, ConflictingExpectedVersions | InvalidExpectedVersion> => {
    if (!ExpectedVersion.isExpectedVersion(expected)) {
      return Either.left(new InvalidExpectedVersion({ streamId, expected }))
    }
    const existing = HashMap.get(self.expectations, streamId)
    if (Option.isSome(existing)) {
      return ExpectedVersion.normalize(existing.value) === ExpectedVersion.normalize(expected)
        ? Either.right(self)
        : Either.left(new ConflictingExpectedVersions({ streamId, first: existing.value, second: expected }))
    }
    return Either.right(
      new StreamWritesImpl(
        HashMap.set(self.expectations, streamId, expected),
        Chunk.append(self.order, streamId),
        self.pending
      )
    )
  }
)

/**
 * Adds an event for a registered stream. The event's data and metadata must be
 * plain JSON, its id, when given, a UUID, and its schema version, when given,
 * an integer from 1 to 2147483647; otherwise nothing is added.
 */
export const append: {
  (event: NewEvent): (self: StreamWrites) => Either.Either<StreamWrites, UndeclaredStream | EventEncodeError>
  (self: StreamWrites, event: NewEvent): Either.Either<StreamWrites, UndeclaredStream | EventEncodeError>
} = dual(2, (self: StreamWrites, event: NewEvent): Either.Either<StreamWrites, UndeclaredStream | EventEncodeError> => {
  if (!HashMap.has(self.expectations, event.streamId)) {
    return Either.left(new UndeclaredStream({ streamId: event.streamId }))
  }
  const reason = whyNotStorable(event)
  if (reason !== undefined) {
    return Either.left(
      new EventEncodeError({ streamId: event.streamId, eventType: String(event.eventType), cause: reason })
    )
  }
  return Either.right(new StreamWritesImpl(self.expectations, self.order, Chunk.append(self.pending, event)))
})

/** The largest schema version a store keeps: its column is PostgreSQL's `integer`. */
const maxSchemaVersion = 2_147_483_647

const isSchemaVersion = (version: unknown) =>
  Number.isInteger(version) && (version as number) >= 1 && (version as number) <= maxSchemaVersion

const whyNotStorable = (event: NewEvent): string | undefined => {
  if (typeof event.eventType !== "string" || event.eventType.length === 0) return "eventType must be a non-empty string"
  const typeReason = whyNotText(event.eventType, "eventType")
  if (typeReason !== undefined) return typeReason
  if (event.eventId !== undefined && !isUuid(event.eventId)) return `eventId ${String(event.eventId)} is not a UUID`
  if (event.schemaVersion !== undefined && !isSchemaVersion(event.schemaVersion)) {
    return `schemaVersion ${String(event.schemaVersion)} is not an integer from 1 to ${maxSchemaVersion}`
  }
  const dataReason = whyNotJson(event.data, "data")
  if (dataReason !== undefined) return dataReason
  if (event.metadata === undefined) return undefined
  if (typeof event.metadata !== "object" || event.metadata === null || Array.isArray(event.metadata)) {
    return "metadata must be an object"
  }
  return whyNotJson(event.metadata, "metadata")
}

/** Every participant with its expectation, in registration order. */
export const participants = (self: StreamWrites): ReadonlyArray<readonly [StreamId, ExpectedVersion.ExpectedVersion]> =>
  Chunk.toReadonlyArray(Chunk.map(self.order, (id) => [id, HashMap.unsafeGet(self.expectations, id)] as const))

/** The events to append, in order. */
export const events = (self: StreamWrites): ReadonlyArray<NewEvent> => Chunk.toReadonlyArray(self.pending)

/**
 * @internal `self` with `events` in place of its own, unchecked: for a store
 * that rewrites events it already accepted (sealing personal values).
 */
export const unsafeWithEvents = (self: StreamWrites, events: ReadonlyArray<NewEvent>): StreamWrites =>
  new StreamWritesImpl(self.expectations, self.order, Chunk.unsafeFromArray(events as Array<NewEvent>))
