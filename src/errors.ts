/**
 * Every failure eventcore reports, as tagged errors for `Effect.catchTag`.
 * Each carries the facts a caller needs to react without parsing messages.
 */
import { Data, Duration } from "effect"
import type { ExpectedVersion } from "./ExpectedVersion.js"
import type { LogPosition } from "./LogPosition.js"
import type { StreamId } from "./StreamId.js"

/** A stream id failed validation: `reason` says which rule it broke. */
export class InvalidStreamId extends Data.TaggedError("InvalidStreamId")<{
  readonly input: string
  readonly reason: string
}> {
  override get message() {
    return `Invalid stream id ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

/** An expected version that is neither a non-negative integer nor one of the named kinds. */
export class InvalidExpectedVersion extends Data.TaggedError("InvalidExpectedVersion")<{
  readonly streamId: StreamId
  readonly expected: unknown
}> {
  override get message() {
    return `Invalid expected version ${String(this.expected)} for stream ${JSON.stringify(this.streamId)}: use a non-negative integer, "any", "no_stream" or "stream_exists"`
  }
}

/** Read options out of range (negative or fractional `fromVersion`, `maxCount`, `pageSize`). */
export class InvalidReadOptions extends Data.TaggedError("InvalidReadOptions")<{
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message() {
    return `Invalid read option ${this.option} = ${String(this.value)}: ${this.reason}`
  }
}

/** Text that is not a log position (see `LogPosition`): a checkpoint read back damaged, or from elsewhere. */
export class InvalidLogPosition extends Data.TaggedError("InvalidLogPosition")<{
  readonly input: string
}> {
  override get message() {
    return `Invalid log position ${JSON.stringify(this.input)}: expected 20 digits, "-", 19 digits (as LogPosition.make writes them)`
  }
}

/** The stream has no events. */
export class StreamNotFound extends Data.TaggedError("StreamNotFound")<{
  readonly streamId: StreamId
}> {
  override get message() {
    return `Stream ${JSON.stringify(this.streamId)} not found`
  }
}

/**
 * The stream is archived (`StreamLifecycle.archive`): it is no longer read,
 * and an append that names it (as a participant, read-only or not) writes
 * nothing.
 */
export class StreamArchived extends Data.TaggedError("StreamArchived")<{
  readonly streamId: StreamId
}> {
  override get message() {
    return `Stream ${JSON.stringify(this.streamId)} is archived: it is no longer read or appended to`
  }
}

/** A truncation point that is not a version of the stream (a stream keeps at least its last event). */
export class InvalidTruncation extends Data.TaggedError("InvalidTruncation")<{
  readonly streamId: StreamId
  readonly before: number
  /** The stream's version: `before` must be from 1 to it. */
  readonly version: number
}> {
  override get message() {
    return this.version === 0
      ? `Cannot truncate stream ${JSON.stringify(this.streamId)}: it has no events`
      : `Cannot truncate stream ${JSON.stringify(this.streamId)} before version ${this.before}: its version is ${this.version}, so truncate before 1 to ${this.version} (its last event is always kept)`
  }
}

/** A participant's version was not what the writer expected; nothing was written. */
export class VersionConflict extends Data.TaggedError("VersionConflict")<{
  readonly streamId: StreamId
  readonly expected: ExpectedVersion
  readonly actual: number
}> {
  override get message() {
    return `Version conflict on stream ${JSON.stringify(this.streamId)}: expected ${String(this.expected)}, actual ${this.actual}`
  }
}

/** An event was addressed to a stream that was not registered (or, in a command, not read). */
export class UndeclaredStream extends Data.TaggedError("UndeclaredStream")<{
  readonly streamId: StreamId
}> {
  override get message() {
    return `Stream ${JSON.stringify(this.streamId)} was not declared: register it (or read it in the command) before writing to it`
  }
}

/** The same stream was registered twice with different expectations. */
export class ConflictingExpectedVersions extends Data.TaggedError("ConflictingExpectedVersions")<{
  readonly streamId: StreamId
  readonly first: ExpectedVersion
  readonly second: ExpectedVersion
}> {
  override get message() {
    return `Stream ${JSON.stringify(this.streamId)} registered with two expected versions: ${String(this.first)} and ${String(this.second)}`
  }
}

/** An event could not be turned into storable JSON (schema encoding failed, or the value is not plain JSON). */
export class EventEncodeError extends Data.TaggedError("EventEncodeError")<{
  readonly streamId: StreamId
  readonly eventType: string
  readonly cause: unknown
}> {
  override get message() {
    return `Cannot encode event ${this.eventType} for stream ${JSON.stringify(this.streamId)}: ${describe(this.cause)}`
  }
}

/**
 * A stored event's type is neither one of the reader's event schema nor one
 * it declares (renamed, replaced or ignored: see `EventSchema.evolve`).
 */
export class UnknownEventType extends Data.TaggedError("UnknownEventType")<{
  readonly streamId: StreamId
  readonly streamVersion: number
  readonly eventType: string
}> {
  override get message() {
    return `Unknown event type ${JSON.stringify(this.eventType)} at version ${this.streamVersion} of stream ${JSON.stringify(this.streamId)}: the event schema has no such type and declares none of that name (EventSchema.evolve: renamed, replaced or ignored)`
  }
}

/** A stored event does not decode with the reader's event schema (and its history, if it has one). */
export class EventDecodeError extends Data.TaggedError("EventDecodeError")<{
  readonly streamId: StreamId
  readonly streamVersion: number
  readonly eventType: string
  readonly cause: unknown
}> {
  override get message() {
    return `Cannot decode event ${this.eventType} at version ${this.streamVersion} of stream ${JSON.stringify(this.streamId)}: ${describe(this.cause)}`
  }
}

/** An event id is already taken by a stored event; nothing was written. */
export class DuplicateEventId extends Data.TaggedError("DuplicateEventId")<{
  readonly eventId: string
}> {
  override get message() {
    return `An event with id ${this.eventId} is already stored: event ids must be unique`
  }
}

/**
 * The infrastructure failed (connection lost, pool timeout, migration failure).
 * `message` says what happened and what to do; `cause` keeps the original error.
 */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly operation: string
  readonly message: string
  readonly cause?: unknown
}> {}

const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * What an application's handler failed with: a tagged error by its tag and
 * message, or its tag and fields when it has no message (a `Data.TaggedError`
 * made without one), anything else as `describe` says it.
 */
const describeFailure = (cause: unknown): string => {
  if (typeof cause !== "object" || cause === null) return describe(cause)
  const { _tag, message, name: _name, stack: _stack, ...fields } = cause as Record<string, unknown>
  const text = typeof message === "string" && message !== "" ? message : undefined
  if (typeof _tag === "string") {
    if (text !== undefined) return `${_tag}: ${text}`
    return Object.keys(fields).length === 0 ? _tag : `${_tag} ${JSON.stringify(fields)}`
  }
  return text ?? (cause instanceof Error ? describe(cause) : JSON.stringify(fields))
}

/**
 * A projection or reactor stopped: handling the event at `position` failed
 * (its handler, or decoding it) after every retry. Its status says `failed`;
 * the next run resumes at that same event.
 */
export class ProjectionFailed extends Data.TaggedError("ProjectionFailed")<{
  readonly projection: string
  readonly position: LogPosition
  readonly eventId: string
  readonly cause: unknown
}> {
  override get message() {
    return `Projection ${JSON.stringify(this.projection)} stopped at event ${this.eventId} (position ${this.position}): ${describeFailure(this.cause)}`
  }
}

/** `Projection.waitFor` gave up: the projection had not committed past `position` in time. */
export class ProjectionTimeout extends Data.TaggedError("ProjectionTimeout")<{
  readonly projection: string
  readonly position: LogPosition
}> {
  override get message() {
    return `Projection ${JSON.stringify(this.projection)} did not reach position ${this.position} in time`
  }
}

/**
 * `EventStore.waitForLog` gave up: the global log was not readable up to
 * `position` in time. On a store reading its log on a hot standby, the
 * standby had not replayed that far (replication lag, or replication
 * stopped); anywhere, a transaction that started earlier may still be running.
 */
export class LogTimeout extends Data.TaggedError("LogTimeout")<{
  readonly position: LogPosition
  readonly timeout: Duration.Duration
}> {
  override get message() {
    return `The global log was not readable up to position ${this.position} within ${Duration.format(this.timeout)}: a replica behind the primary, or a transaction still running there, holds it back`
  }
}

/**
 * A store of one tenant was asked to touch a stream of another (or of none):
 * refused before any database call. An append is atomic, and its versions
 * checked, within one database only, and a read would find an empty stream in
 * the wrong database. It is the `cause` of the `StoreError` the store fails with.
 */
export class CrossTenantAccess extends Data.TaggedError("CrossTenantAccess")<{
  readonly streamId: StreamId
  /** The tenant `tenantOf` names for the stream; `undefined` when it names none. */
  readonly streamTenant: string | undefined
  /** The tenant whose store was asked. */
  readonly storeTenant: string
}> {
  override get message() {
    const owner =
      this.streamTenant === undefined
        ? "belongs to no tenant"
        : `belongs to tenant ${JSON.stringify(this.streamTenant)}`
    return `Stream ${JSON.stringify(this.streamId)} ${owner}, not to ${JSON.stringify(this.storeTenant)} whose store was asked`
  }
}

/** A tenant that the `Tenants` layer was not configured with. */
export class UnknownTenant extends Data.TaggedError("UnknownTenant")<{
  readonly tenant: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `Unknown tenant ${JSON.stringify(this.tenant)}: the known tenants are ${this.known.map((name) => JSON.stringify(name)).join(", ")}`
  }
}

/** An event's personal data cannot be written: a subject that cannot be found, or a malformed personal value. */
export class InvalidPersonalData extends Data.TaggedError("InvalidPersonalData")<{
  /** Where in the event's data, as `$.holder.name`. */
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Cannot write the personal value at ${this.path}: ${this.reason}`
  }
}

/**
 * A stored personal value does not decrypt with its subject's key: altered,
 * or sealed with another key. The message never holds the value or the key.
 */
export class PersonalDataCorrupt extends Data.TaggedError("PersonalDataCorrupt")<{
  readonly subject: string
  readonly reason: string
}> {
  override get message() {
    return `A stored personal value of subject ${JSON.stringify(this.subject)} cannot be read: ${this.reason}`
  }
}

/** An append carried personal data of a subject already erased: nothing was written. */
export class SubjectErased extends Data.TaggedError("SubjectErased")<{
  readonly subject: string
}> {
  override get message() {
    return `Subject ${JSON.stringify(this.subject)} was erased: no personal data of it can be written again (write the event without it, or with the Erased value read back)`
  }
}
