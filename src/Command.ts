/**
 * Commands: a decision over the state folded from one or more streams. The
 * executor (`execute`) reads the streams, folds them with `apply`, runs `decide`
 * and appends the events atomically, checking every stream it read.
 */
import type { Effect, Schema } from "effect"
import type { Snapshot } from "./Snapshot.js"
import type { StreamId } from "./StreamId.js"

/** Where an event being applied was recorded. */
export interface Recorded {
  readonly streamId: StreamId
  readonly streamVersion: number
}

/** One event a command decided to write, and the stream it goes to. */
export interface Decision<Event> {
  readonly streamId: StreamId
  readonly event: Event
}

export interface Command<Input, State, Event extends { readonly _tag: string }, EventEncoded, DomainError, R> {
  readonly name: string
  /** A union of `Schema.TaggedStruct`s; an event's `_tag` is its stored `eventType`. */
  readonly event: Schema.Schema<Event, EventEncoded>
  /** The streams to read before deciding; the command may write only to streams it read. */
  readonly streams: (input: Input) => Iterable<StreamId>
  /** The state before any event; `apply` must return new states rather than change it. */
  readonly initialState: State
  /** Folds one event into the state. Streams are folded one after another, in the order they were read. */
  readonly apply: (state: State, event: Event, recorded: Recorded) => State
  /** Decides the events to write, or fails with a domain error (then nothing is written). */
  readonly decide: (state: State, input: Input) => Effect.Effect<ReadonlyArray<Decision<Event>>, DomainError, R>
  /**
   * More streams to read, found from the state so far (dynamic consistency
   * boundary). Called after each round of reads until it names no unread stream.
   */
  readonly discover?: (state: State, input: Input) => Iterable<StreamId>
  /**
   * Snapshots of the folded state (`Snapshot.make`): on long streams,
   * `execute` reads the last snapshot and only the events after it. The state
   * must then not depend on how the events of different streams interleave
   * (each stream's events are still folded in order), and `discover` only on
   * the state and the declared streams. Check both for your command with
   * `snapshotProperty` from `eventcore/testing`.
   */
  readonly snapshot?: Snapshot<State>
}

/** Defines a command; the types of input, state, events and errors are inferred from the definition. */
export const make = <
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError = never,
  R = never
>(
  definition: Command<Input, State, Event, EventEncoded, DomainError, R>
): Command<Input, State, Event, EventEncoded, DomainError, R> => definition
