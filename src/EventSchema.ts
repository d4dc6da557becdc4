/**
 * Events that outlive their schema. Stored events never change; the code that
 * reads them does. An event type declares the history of its stored form
 * (`versions`: how each older version becomes the next), and an event union
 * declares what became of stored types it no longer has (`evolve`: renamed,
 * ignored, or replaced by today's events). Every stored event is then decoded
 * the same way wherever it is read (`execute`'s fold, projections, reactors,
 * and `decode` for applications reading the log themselves): from whatever
 * version it was written with to today's event, or loudly not at all.
 *
 * A schema without any of this reads as before: every stored event is
 * version 1 of its type, and an event already at its type's current version is
 * decoded exactly as it always was.
 */
import { Effect, Either, Option, ParseResult, Schema, SchemaAST } from "effect"
import type { RecordedEvent } from "./Event.js"
import * as EventStore from "./EventStore.js"
import { EventDecodeError, StoreError, UnknownEventType } from "./errors.js"
import { type StoreExtras, storedTypesKey } from "./internal/storeContract.js"

/** One step of an event type's history: its stored form at one version, and how that becomes the next version's. */
export interface Upcast {
  // biome-ignore lint/suspicious/noExplicitAny: any stored shape, checked by its own schema
  readonly from: Schema.Schema<any, any>
  readonly to: (old: never) => unknown
}

/**
 * A step of `versions`: `from` decodes the stored data of the older version
 * (without its `_tag`, which is stored as the event type), `to` returns the
 * next version's stored data.
 */
export const upcast = <A, I>(from: Schema.Schema<A, I>, to: (old: A) => unknown): Upcast => ({
  from,
  to: to as (old: never) => unknown
})

const versionsKey: unique symbol = Symbol.for("eventcore/EventSchema/versions")
const evolutionKey: unique symbol = Symbol.for("eventcore/EventSchema/evolution")

/**
 * Declares the history of an event type's stored form, oldest first: the
 * first step turns version 1 into version 2, and so on; the type's current
 * version is one more than its steps. Appends write the current version;
 * stored events of older versions run through the steps from their own on.
 *
 * ```ts
 * const ItemAdded = Schema.TaggedStruct("ItemAdded", { sku: Schema.String, quantity: Schema.Int }).pipe(
 *   EventSchema.versions(EventSchema.upcast(Schema.Struct({ sku: Schema.String }), (v1) => ({ ...v1, quantity: 1 })))
 * )
 * ```
 */
export const versions =
  (...steps: ReadonlyArray<Upcast>) =>
  <S extends Schema.Annotable.All>(self: S): Schema.Annotable.Self<S> =>
    self.annotations({ [versionsKey]: steps }) as Schema.Annotable.Self<S>

/** What a stored type the union no longer has becomes: decoded by `from`, turned into today's events by `to`. */
export interface Replacement<E> {
  // biome-ignore lint/suspicious/noExplicitAny: any stored shape, checked by its own schema
  readonly from: Schema.Schema<any, any>
  readonly to: (old: never, recorded: RecordedEvent) => ReadonlyArray<E>
}

/** A replacement for `evolve`'s `replaced`: `to` returns today's events (none, one or several) for a stored one. */
export const replacedBy = <A, I, E>(
  from: Schema.Schema<A, I>,
  to: (old: A, recorded: RecordedEvent) => ReadonlyArray<E>
): Replacement<E> => ({ from, to: to as (old: never, recorded: RecordedEvent) => ReadonlyArray<E> })

/** The `_tag`s of the events of a union. */
type TagOf<E> = E extends { readonly _tag: infer T extends string } ? T : never

export interface Evolution<E> {
  /** Stored type names that decode as today's type: `{ ProductAdded: "ItemAdded" }`. */
  readonly renamed?: { readonly [stored: string]: TagOf<E> }
  /** Stored types read past without a trace: written by others, or no longer of any use. */
  readonly ignored?: ReadonlyArray<string>
  /** Stored types that became other events: each stored event becomes what its replacement returns. */
  readonly replaced?: { readonly [stored: string]: Replacement<E> }
}

/**
 * Declares what became of stored event types the union no longer has.
 * Annotate the outermost union: the one a command, projection or reactor is
 * given.
 */
export const evolve = <S extends Schema.Annotable.All>(
  self: S,
  evolution: Evolution<Schema.Schema.Type<S>>
): Schema.Annotable.Self<S> => self.annotations({ [evolutionKey]: evolution }) as Schema.Annotable.Self<S>

/** How one schema reads stored events: the decoding every reader of events shares. */
export interface Codec<E> {
  /** The stored event types it reads: its own types, and the renamed and replaced ones (not the ignored). */
  readonly eventTypes: ReadonlyArray<string>
  /** Its types' current versions, the ones appends write (1 for a type without `versions`). */
  readonly versionOf: (eventType: string) => number
  /**
   * Today's events for a stored one: one, or for a replaced type any number,
   * none for an ignored type. Fails with `UnknownEventType` for a type the
   * schema neither has nor declares, and with `EventDecodeError` when the
   * stored data does not decode.
   */
  readonly decode: (recorded: RecordedEvent) => Effect.Effect<ReadonlyArray<E>, EventDecodeError | UnknownEventType>
  /** Whether the schema declares stored events of `eventType` ignored. */
  readonly ignores: (eventType: string) => boolean
  /**
   * How the schema reads stored events, as text: each type at its current
   * version, then what became of the types it no longer has. A state folded
   * from events (a command's snapshot) is tied to it: when it changes, stored
   * events may decode differently. The steps' and replacements' code is not
   * in it; changing what one of them returns without a new version is a
   * change it cannot see.
   */
  readonly fingerprint: string
}

interface Member {
  readonly tag: string
  readonly steps: ReadonlyArray<Upcast>
}

/** The tagged members of a union, each with the steps of its history (annotated anywhere on its way down). */
const membersOf = (ast: SchemaAST.AST, steps: ReadonlyArray<Upcast> = []): ReadonlyArray<Member> => {
  const own = SchemaAST.getAnnotation<ReadonlyArray<Upcast>>(versionsKey)(ast)
  const found = Option.getOrElse(own, () => steps)
  switch (ast._tag) {
    case "Union":
      return ast.types.flatMap((member) => membersOf(member, found))
    case "Transformation":
      return membersOf(ast.to, found)
    case "Refinement":
      return membersOf(ast.from, found)
    case "Suspend":
      return membersOf(ast.f(), found)
    case "TypeLiteral": {
      const tag = ast.propertySignatures.find((signature) => signature.name === "_tag")?.type
      return tag !== undefined && SchemaAST.isLiteral(tag) && typeof tag.literal === "string"
        ? [{ tag: tag.literal, steps: found }]
        : []
    }
    default:
      return []
  }
}

/** The stored form with its type as `_tag`: the encoded input of the union's member. */
export const encodedOf = (eventType: string, data: unknown): unknown =>
  typeof data === "object" && data !== null && !Array.isArray(data) ? { ...data, _tag: eventType } : data

const codecs = new WeakMap<object, Codec<unknown>>()

/** The codec of an event schema: a union of tagged structs, possibly evolved. Built once per schema. */
export const codecOf = <E extends { readonly _tag: string }, I>(schema: Schema.Schema<E, I>): Codec<E> => {
  const cached = codecs.get(schema)
  if (cached !== undefined) return cached as Codec<E>
  const codec = makeCodec(schema)
  codecs.set(schema, codec as Codec<unknown>)
  return codec
}

const makeCodec = <E extends { readonly _tag: string }, I>(schema: Schema.Schema<E, I>): Codec<E> => {
  const members = new Map(membersOf(schema.ast).map((member) => [member.tag, member]))
  const evolution = Option.getOrElse(
    SchemaAST.getAnnotation<Evolution<E>>(evolutionKey)(schema.ast),
    (): Evolution<E> => ({})
  )
  const renamed = new Map(Object.entries(evolution.renamed ?? {}))
  const replaced = new Map(
    Object.entries(evolution.replaced ?? {}).map(([type, replacement]) => [
      type,
      {
        decode: Schema.decodeUnknown(replacement.from),
        to: replacement.to as (old: unknown, recorded: RecordedEvent) => ReadonlyArray<E>
      }
    ])
  )
  const ignored = new Set(evolution.ignored ?? [])
  const decodeCurrent = Schema.decodeUnknown(schema)
  // Synchronous where the schema is (nearly always): an Either is an Effect, and readers of many
  // events (a projection's batch) decode them in a plain loop, not one fiber step per event.
  const decodeCurrentNow = ParseResult.decodeUnknownEither(schema)
  const stepDecoders = new Map(
    [...members.values()].map((member) => [member.tag, member.steps.map((step) => Schema.decodeUnknown(step.from))])
  )

  const failed = (recorded: RecordedEvent, cause: string) =>
    new EventDecodeError({
      streamId: recorded.streamId,
      streamVersion: recorded.streamVersion,
      eventType: recorded.eventType,
      cause
    })
  const parseFailure = (recorded: RecordedEvent) => (error: ParseResult.ParseError) =>
    failed(recorded, ParseResult.TreeFormatter.formatErrorSync(error))

  /** Today's event from stored data at `version` of `member`, its steps run from that version on. */
  const upcasted = (recorded: RecordedEvent, member: Member, version: number) => {
    const current = member.steps.length + 1
    if (version > current) {
      return Effect.fail(
        failed(
          recorded,
          `stored at schema version ${version} of ${member.tag}, but this application knows versions up to ${current}: it was written by a newer release`
        )
      )
    }
    const decoders = stepDecoders.get(member.tag) ?? []
    let data: Effect.Effect<unknown, EventDecodeError> = Effect.succeed(recorded.data)
    for (let step = version - 1; step < member.steps.length; step++) {
      const from = decoders[step] as (u: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
      const to = (member.steps[step] as Upcast).to as (old: unknown) => unknown
      data = Effect.flatMap(data, (stored) =>
        from(stored).pipe(
          Effect.mapError(parseFailure(recorded)),
          Effect.flatMap((old) =>
            Effect.try({
              try: () => to(old),
              catch: (error) =>
                failed(
                  recorded,
                  `upcasting version ${step + 1} of ${member.tag} failed: ${error instanceof Error ? error.message : String(error)}`
                )
            })
          )
        )
      )
    }
    return Effect.flatMap(data, (upcast) =>
      decodeCurrent(encodedOf(member.tag, upcast)).pipe(
        Effect.mapError(parseFailure(recorded)),
        Effect.map((event): ReadonlyArray<E> => [event])
      )
    )
  }

  const decode = (recorded: RecordedEvent): Effect.Effect<ReadonlyArray<E>, EventDecodeError | UnknownEventType> => {
    const version = recorded.schemaVersion ?? 1
    const member = members.get(recorded.eventType)
    // The common case, unchanged: an event of today's type at today's version.
    if (member !== undefined && version === member.steps.length + 1) {
      const encoded = encodedOf(recorded.eventType, recorded.data)
      const now = decodeCurrentNow(encoded)
      if (Either.isRight(now)) return Either.right([now.right])
      // A failure, or a schema that cannot decode synchronously: the Effect says which, and why.
      return decodeCurrent(encoded).pipe(
        Effect.mapError(parseFailure(recorded)),
        Effect.map((event): ReadonlyArray<E> => [event])
      )
    }
    if (member !== undefined) return upcasted(recorded, member, version)
    const renamedTo = renamed.get(recorded.eventType)
    const target = renamedTo === undefined ? undefined : members.get(renamedTo)
    if (target !== undefined) return upcasted(recorded, target, version)
    const replacement = replaced.get(recorded.eventType)
    if (replacement !== undefined) {
      return replacement.decode(recorded.data).pipe(
        Effect.mapError(parseFailure(recorded)),
        Effect.flatMap((old) =>
          Effect.try({
            try: () => replacement.to(old, recorded),
            catch: (error) =>
              failed(
                recorded,
                `replacing ${recorded.eventType} failed: ${error instanceof Error ? error.message : String(error)}`
              )
          })
        )
      )
    }
    if (ignored.has(recorded.eventType)) return Effect.succeed([])
    return Effect.fail(
      new UnknownEventType({
        streamId: recorded.streamId,
        streamVersion: recorded.streamVersion,
        eventType: recorded.eventType
      })
    )
  }

  const sorted = (names: Iterable<string>) => [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const fingerprint = [
    ...sorted(members.keys()).map((tag) => `${tag}@${(members.get(tag)?.steps.length ?? 0) + 1}`),
    ...sorted(renamed.keys()).map((stored) => `${stored}>${renamed.get(stored)}`),
    ...sorted(replaced.keys()).map((stored) => `${stored}*`),
    ...sorted(ignored).map((stored) => `${stored}-`)
  ].join(" ")

  return {
    fingerprint,
    eventTypes: [...new Set([...members.keys(), ...renamed.keys(), ...replaced.keys()])],
    versionOf: (eventType) => (members.get(eventType)?.steps.length ?? 0) + 1,
    decode,
    ignores: (eventType) => !members.has(eventType) && ignored.has(eventType)
  }
}

/**
 * Today's events for a stored event, as `schema` reads it (see `Codec.decode`):
 * for applications reading `RecordedEvent`s themselves (`readStream`,
 * `readAll`, `subscribe`).
 */
export const decode =
  <E extends { readonly _tag: string }, I>(schema: Schema.Schema<E, I>) =>
  (recorded: RecordedEvent): Effect.Effect<ReadonlyArray<E>, EventDecodeError | UnknownEventType> =>
    codecOf(schema).decode(recorded)

/** The current schema version of `eventType` in `schema`: what appends of it write. */
export const versionOf = <E extends { readonly _tag: string }, I>(schema: Schema.Schema<E, I>, eventType: string) =>
  codecOf(schema).versionOf(eventType)

/** How one stored (event type, schema version) pair fares with the application's schemas. */
export interface CheckedType {
  readonly eventType: string
  readonly schemaVersion: number
  /** How many stored events have it. */
  readonly count: number
  /**
   * `decoded`: its samples decode (with `readBy`'s schema); `ignored`: a
   * schema declares it ignored; `unknown`: no schema reads it; `failed`: a
   * sample does not decode (`error` says why).
   */
  readonly outcome: "decoded" | "ignored" | "unknown" | "failed"
  /** The indexes in `schemas` of the schemas that read it. */
  readonly readBy: ReadonlyArray<number>
  readonly error?: string
}

export interface CheckReport {
  readonly types: ReadonlyArray<CheckedType>
  /** The pairs that would stop a reader: `unknown` and `failed` ones. */
  readonly failures: ReadonlyArray<CheckedType>
}

/**
 * Before a deploy: every (event type, schema version) pair stored, and how the
 * application's event schemas (those of its commands, projections and
 * reactors) read it. Each pair's samples (its oldest and newest events) are
 * decoded by every schema that has, renames or replaces its type; a pair no
 * schema reads, or one that fails to decode, is a failure. The store lists its
 * pairs in one aggregate query (see `docs/evolution.md` for its cost).
 */
export const check = (
  schemas: ReadonlyArray<Schema.Schema.AnyNoContext>
): Effect.Effect<CheckReport, StoreError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = (yield* EventStore.EventStore) as EventStore.EventStore & StoreExtras
    const storedTypes = store[storedTypesKey]
    if (storedTypes === undefined) {
      return yield* new StoreError({
        operation: "check",
        message: "This EventStore cannot list its stored event types: use the in-memory, PGlite or PostgreSQL store."
      })
    }
    const codecs = schemas.map((schema) => codecOf(schema as Schema.Schema<{ readonly _tag: string }, unknown>))
    const types = yield* Effect.forEach(yield* storedTypes, (stored) =>
      Effect.gen(function* () {
        const readBy = codecs.flatMap((codec, i) => (codec.eventTypes.includes(stored.eventType) ? [i] : []))
        const facts = { eventType: stored.eventType, schemaVersion: stored.schemaVersion, count: stored.count, readBy }
        if (readBy.length === 0) {
          const ignored = codecs.some((codec) => codec.ignores(stored.eventType))
          return { ...facts, outcome: ignored ? "ignored" : "unknown" } satisfies CheckedType
        }
        for (const i of readBy) {
          for (const sample of stored.samples) {
            const decoded = yield* Effect.either((codecs[i] as Codec<unknown>).decode(sample))
            if (decoded._tag === "Left") {
              return { ...facts, outcome: "failed", error: decoded.left.message } satisfies CheckedType
            }
          }
        }
        return { ...facts, outcome: "decoded" } satisfies CheckedType
      })
    )
    return {
      types,
      failures: types.filter((type) => type.outcome === "unknown" || type.outcome === "failed")
    }
  })
