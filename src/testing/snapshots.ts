/**
 * Checks of a command's snapshots (`snapshot: Snapshot.make(...)` on
 * `Command.make`), for an application's own tests: a property over random
 * event sequences that the state read from a snapshot and the events after it
 * is the state a full fold gives, and golden samples that fail when `apply` or
 * the state schema changed meaning while the snapshot's `version` did not.
 *
 * Both run the command through `execute`, with `decide` replaced by one that
 * records the state it is given and decides nothing.
 */
import { Duration, Effect, Either, HashMap, type Layer, Logger, LogLevel, ParseResult, Stream } from "effect"
import * as fc from "fast-check"
import { assert, expect } from "vitest"
import type * as Command from "../Command.js"
import type { RecordedEvent } from "../Event.js"
import * as EventSchema from "../EventSchema.js"
import * as EventStore from "../EventStore.js"
import { execute } from "../execute.js"
import * as InMemoryEventStore from "../InMemoryEventStore.js"
import * as Snapshot from "../Snapshot.js"
import * as StreamId from "../StreamId.js"
import * as StreamWrites from "../StreamWrites.js"
import { appendDecided } from "./given.js"

type Definition<Input, State, Event extends { readonly _tag: string }, EventEncoded> = Command.Command<
  Input,
  State,
  Event,
  EventEncoded,
  unknown,
  unknown
>

const snapshotOf = <State>(command: { readonly name: string; readonly snapshot?: Snapshot.Snapshot<State> }) => {
  if (command.snapshot === undefined) {
    throw new TypeError(`${command.name} has no snapshot: give it one with snapshot: Snapshot.make(...)`)
  }
  return command.snapshot
}

/** What `command` decides on for `input`, and the streams it read with their versions, by id. */
const stateOf = <Input, State, Event extends { readonly _tag: string }, EventEncoded>(
  command: Definition<Input, State, Event, EventEncoded>,
  snapshot: Snapshot.Snapshot<State> | undefined,
  input: Input
) => {
  // execute calls decide exactly once when it succeeds at once, as it does here (nothing is written).
  let seen = command.initialState
  const { snapshot: _, decide: __, ...definition } = command
  const recording: Command.Command<Input, State, Event, EventEncoded, never, never> = {
    ...definition,
    decide: (state) =>
      Effect.sync(() => {
        seen = state
        return []
      }),
    ...(snapshot === undefined ? {} : { snapshot })
  }
  return Effect.map(execute(recording, input), (result) => ({
    state: seen,
    streams: [...result.streamVersions].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }))
}

const listed = (events: ReadonlyArray<Command.Decision<unknown>>) =>
  events.length === 0 ? "none" : events.map((d) => `${d.streamId} ${fc.stringify(d.event)}`).join(", ")

/** Collects what eventcore logs at warning level or above (a snapshot ignored, or not written, and why). */
const collecting = (warnings: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message, annotations }) => {
      if (LogLevel.lessThan(logLevel, LogLevel.Warning)) return
      const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
      const details = [...HashMap.toEntries(annotations)].map(([key, value]) => `${key}: ${String(value)}`)
      warnings.push(details.length === 0 ? text : `${text} [${details.join(", ")}]`)
    })
  )

export interface SnapshotPropertyOptions<Input, Event> {
  /**
   * The command's inputs. Each run draws four, and its executions use the
   * first and those that name the same streams as it: one reads the snapshot
   * another wrote, as every input naming those streams does in production.
   * Draw stream ids from a small set so that this happens often.
   */
  readonly input: fc.Arbitrary<Input>
  /**
   * The events stored before each execution of a run, for its first input:
   * on the streams it declares, streams it may discover, and others.
   */
  readonly events: (input: Input) => fc.Arbitrary<ReadonlyArray<Command.Decision<Event>>>
  /** Runs (default 100); each builds a store of its own. */
  readonly numRuns?: number
  /** Replays a failure: the seed and path its message gives. */
  readonly seed?: number
  readonly path?: string
  /**
   * The store: a layer giving a fresh, empty store each time it is built
   * (default `InMemoryEventStore.layer`, which keeps snapshots as JSON text,
   * as the SQL stores keep them as jsonb).
   */
  readonly layer?: Layer.Layer<EventStore.EventStore, unknown>
}

/** One execution of a run: the events stored before it, and its input. */
interface Step<Input, Event> {
  readonly events: ReadonlyArray<Command.Decision<Event>>
  readonly input: Input
}

/** What one execution of a run saw. */
interface Seen<State> {
  readonly fromSnapshot: { readonly state: State; readonly streams: ReadonlyArray<readonly [string, number]> }
  readonly full: { readonly state: State; readonly streams: ReadonlyArray<readonly [string, number]> }
  /** The snapshot it read, as stored, if it used one. */
  readonly restored?: { readonly stored: unknown }
  readonly warnings: ReadonlyArray<string>
}

/**
 * The property every command with a snapshot must have: the state `execute`
 * reads from a snapshot and the events after it equals the state a full fold
 * of the same events gives, and it reads the same streams. Over random inputs
 * and events, each run on a fresh store: two to five times, events are
 * stored and the command runs with a snapshot policy that writes one every
 * time; from the second time on, the state `decide` is given (from the last
 * snapshot and the events after it) is compared with the state the command
 * without snapshots is given for the same input.
 *
 * It fails (the promise rejects, with the smallest case fast-check found and
 * vitest's difference) when `apply` depends on how the events of different
 * streams interleave (after a snapshot, every stream's later events are
 * folded after all streams' earlier ones), when the state schema loses
 * something of the state, or JSON does (a snapshot is stored as JSON), when
 * `discover` depends on more than the state and the declared streams, when
 * `apply` changes the state it is given (a full fold then starts from what
 * an earlier one left), and when a snapshot was not used or eventcore warned
 * while the command ran (a snapshot that does not decode, or could not be
 * written).
 *
 * ```ts
 * it("Transfer's snapshots give the state a full fold gives", () =>
 *   snapshotProperty(Transfer, { input: transferInput, events: (input) => fc.array(accountEvent(input)) }))
 * ```
 */
export const snapshotProperty = async <
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError,
  R
>(
  command: Command.Command<Input, State, Event, EventEncoded, DomainError, R>,
  options: SnapshotPropertyOptions<Input, Event>
): Promise<void> => {
  const snapshot = snapshotOf(command)
  const name = command.name
  const layer = options.layer ?? InMemoryEventStore.layer
  const declared = (input: Input) => JSON.stringify([...new Set(command.streams(input))])

  const runs: fc.Arbitrary<ReadonlyArray<Step<Input, Event>>> = fc
    .tuple(options.input, fc.array(options.input, { minLength: 3, maxLength: 3 }))
    .chain(([first, others]) => {
      const inputs = [first, ...others.filter((other) => declared(other) === declared(first))]
      return fc.array(fc.record({ events: options.events(first), input: fc.constantFrom(...inputs) }), {
        minLength: 2,
        maxLength: 5
      })
    })

  const check = async (steps: ReadonlyArray<Step<Input, Event>>) => {
    const warnings: Array<string> = []
    const read: { restored?: { readonly stored: unknown } } = {}
    // Written after every execution, whatever it folded; restore calls decode only for a snapshot it uses.
    const writing: Snapshot.Snapshot<State> = {
      ...snapshot,
      events: 1,
      duration: Duration.zero,
      decode: (stored) =>
        Effect.tap(snapshot.decode(stored), () =>
          Effect.sync(() => {
            read.restored = { stored }
          })
        )
    }
    const seen = await Effect.runPromise(
      Effect.forEach(steps, (step, i) =>
        Effect.gen(function* () {
          const warned = warnings.length
          delete read.restored
          yield* appendDecided(command.event, command.name, step.events)
          const fromSnapshot = yield* stateOf(command, writing, step.input)
          const full = i === 0 ? fromSnapshot : yield* stateOf(command, undefined, step.input)
          yield* Snapshot.awaitWrites
          const seen: Seen<State> = { fromSnapshot, full, ...read, warnings: warnings.slice(warned) }
          return seen
        })
      ).pipe(Effect.provide(layer), Effect.provide(collecting(warnings)))
    )

    const context: Array<string> = []
    seen.forEach((execution, i) => {
      const step = steps[i] as Step<Input, Event>
      context.push(
        `  stored: ${listed(step.events)}`,
        `  execute(${name}, ${fc.stringify(step.input)}): ${
          execution.restored === undefined
            ? i === 0
              ? "a full fold"
              : "no snapshot used"
            : `from the snapshot ${JSON.stringify(execution.restored.stored)} and the events after it`
        }`,
        ...execution.warnings.map((warning) => `    warned: ${warning}`)
      )
      if (i === 0) return
      const history = context.join("\n")
      if (execution.restored === undefined) {
        const warned = seen.slice(0, i + 1).some((earlier) => earlier.warnings.length > 0)
        assert.fail(
          `${name}: an execution found no snapshot it could use, though the one before it wrote one, so nothing ` +
            `was compared (${warned ? "see the warnings" : "no snapshot was found: does the store keep snapshots?"}).\n${history}`
        )
      }
      expect(
        execution.fromSnapshot.streams,
        `${name}: with a snapshot the command read other streams than a full fold reads. discover must depend ` +
          "only on the state and the declared streams: a snapshot is shared by every input naming the same " +
          `streams, and the streams it covers are read again.\n${history}\n  streams read (id, version)`
      ).toEqual(execution.full.streams)
      expect(
        execution.fromSnapshot.state,
        `${name}: the state from a snapshot and the events after it is not the state a full fold gives. apply ` +
          "must not depend on how the events of different streams interleave (after a snapshot, each stream's " +
          "later events are folded after every stream's earlier ones), and the state schema must keep all of " +
          `the state through JSON.\n${history}\n  the state from the snapshot`
      ).toEqual(execution.full.state)
      if (execution.warnings.length > 0) assert.fail(`${name}: eventcore warned while the command ran.\n${history}`)
    })
  }

  const details = await fc.check(fc.asyncProperty(runs, check), {
    numRuns: options.numRuns ?? 100,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.path === undefined ? {} : { path: options.path })
  })
  if (!details.failed) return
  const failure = details.errorInstance
  if (details.counterexamplePath === null || !(failure instanceof Error)) {
    throw new Error(fc.defaultReportMessage(details) ?? `snapshotProperty(${name}) failed`)
  }
  failure.message +=
    `\n(fast-check: failed after ${details.numRuns} runs, shrunk ${details.numShrinks} times; replay with ` +
    `seed: ${details.seed}, path: "${details.counterexamplePath}")`
  throw failure
}

/** A stored event of a sample: what the store holds. */
export interface SampleEvent {
  readonly streamId: string
  readonly eventType: string
  readonly schemaVersion: number
  readonly data: unknown
}

/**
 * A golden sample of a command's snapshot, as JSON to commit: the events of
 * an input as stored, and the state a snapshot of version `version` holds for
 * them (encoded by the state schema), as the release that made it wrote it.
 */
export interface SnapshotSample {
  readonly command: string
  /** The snapshot's `version` when the sample was made. */
  readonly version: number
  /** How the command's event schema read stored events then (`EventSchema.Codec.fingerprint`). */
  readonly eventVersions: string
  readonly input: unknown
  readonly events: ReadonlyArray<SampleEvent>
  readonly state: unknown
}

const sampleEvent = (event: RecordedEvent): SampleEvent => ({
  streamId: event.streamId,
  eventType: event.eventType,
  schemaVersion: event.schemaVersion,
  data: event.data
})

/**
 * Makes a golden sample of `command`'s snapshot (it must have one): stores
 * `events`, folds them for `input` (which JSON must carry unchanged) and
 * encodes the state as a snapshot would. Write it to a file once, commit it,
 * and check it with `expectSnapshotCurrent` from then on. Fails when the
 * state does not come back from its schema and JSON as it was.
 */
export const snapshotSample = async <
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError,
  R
>(
  command: Command.Command<Input, State, Event, EventEncoded, DomainError, R>,
  input: Input,
  events: ReadonlyArray<Command.Decision<Event>>
): Promise<SnapshotSample> => {
  const snapshot = snapshotOf(command)
  const { sample, state, restored } = await Effect.runPromise(
    Effect.gen(function* () {
      yield* appendDecided(command.event, command.name, events)
      const stored = yield* Stream.runCollect((yield* EventStore.EventStore).streamAll())
      const { state } = yield* stateOf(command, undefined, input)
      const sample: SnapshotSample = JSON.parse(
        JSON.stringify({
          command: command.name,
          version: snapshot.version,
          eventVersions: EventSchema.codecOf(command.event).fingerprint,
          input,
          events: [...stored].map(sampleEvent),
          state: yield* snapshot.encode(state)
        })
      )
      return { sample, state, restored: yield* Effect.either(snapshot.decode(sample.state)) }
    }).pipe(Effect.provide(InMemoryEventStore.layer))
  )
  expect(sample.input, `${command.name}: snapshotSample's input must come back from JSON unchanged`).toEqual(input)
  const lost = `${command.name}: the state does not come back from its schema and JSON as it was (snapshotProperty shows more)`
  if (Either.isLeft(restored)) {
    assert.fail(`${lost}: ${ParseResult.TreeFormatter.formatErrorSync(restored.left)}`)
  }
  expect(restored.right, lost).toEqual(state)
  return sample
}

/**
 * Fails loudly when `command` changed what its snapshots mean but not their
 * version: today's code folds the sample's stored events for its input, and
 * that state must be the sample's snapshot, decoded by today's state schema.
 * Otherwise snapshots stored by a release before the change would restore a
 * state today's `apply` never makes: bump `Snapshot.make`'s `version` (the
 * message names it), then make the sample again. A sample of another
 * snapshot version, or of an event schema that reads stored events otherwise
 * (both make stored snapshots ignored), fails as outdated: make it again.
 *
 * ```ts
 * it("Transfer's snapshot version is current", () => expectSnapshotCurrent(Transfer, transferSample))
 * ```
 */
export const expectSnapshotCurrent = async <
  Input,
  State,
  Event extends { readonly _tag: string },
  EventEncoded,
  DomainError,
  R
>(
  command: Command.Command<Input, State, Event, EventEncoded, DomainError, R>,
  sample: SnapshotSample
): Promise<void> => {
  const snapshot = snapshotOf(command)
  const name = command.name
  const version = snapshot.version
  const remake = "Make the sample again with snapshotSample and commit it."
  if (sample.command !== name) assert.fail(`The sample is of command ${sample.command}, not ${name}.`)
  if (sample.version !== version) {
    assert.fail(
      `${name}: the sample is outdated: it holds a snapshot of version ${sample.version}, and the command's ` +
        `snapshots are of version ${version} (stored ones of version ${sample.version} are ignored). ${remake}`
    )
  }
  const eventVersions = EventSchema.codecOf(command.event).fingerprint
  if (sample.eventVersions !== eventVersions) {
    assert.fail(
      `${name}: the sample is outdated: its event schema read stored events as ${JSON.stringify(sample.eventVersions)}, ` +
        `today's reads them as ${JSON.stringify(eventVersions)} (stored snapshots are ignored). ${remake}`
    )
  }
  const bump = `bump the version in ${name}'s Snapshot.make from ${version} to ${version + 1}, then make the sample again`
  const { today, restored } = await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      let writes = StreamWrites.empty
      for (const id of new Set(sample.events.map((event) => event.streamId))) {
        writes = yield* StreamWrites.expect(writes, StreamId.unsafeMake(id), "any")
      }
      for (const event of sample.events) {
        writes = yield* StreamWrites.append(writes, { ...event, streamId: StreamId.unsafeMake(event.streamId) })
      }
      if (sample.events.length > 0) yield* store.append(writes)
      const { state } = yield* stateOf(command, undefined, sample.input as Input)
      return { today: state, restored: yield* Effect.either(snapshot.decode(sample.state)) }
    }).pipe(Effect.provide(InMemoryEventStore.layer))
  )
  if (Either.isLeft(restored)) {
    assert.fail(
      `${name}: the sample's snapshot of version ${version} no longer decodes with today's state schema, and the ` +
        `version is still ${version}: ${bump}.\n${ParseResult.TreeFormatter.formatErrorSync(restored.left)}`
    )
  }
  expect(
    restored.right,
    `${name}: today's code folds the sample's events to another state than its snapshot of version ${version} ` +
      `holds, so a snapshot stored before the change would restore a state today's code never makes: ${bump}`
  ).toEqual(today)
}
