/**
 * What the SQL store needs of a database driver (postgres.js in
 * src/postgres/, PGlite in src/pglite/): a way to run a statement, a gate
 * around each call, and sessions of their own for projections and reactors.
 */
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core"
import type { Effect, Scope } from "effect"
import type { StoreError } from "../errors.js"
import type { Statement } from "../internal/storeContract.js"

/** Any Drizzle PostgreSQL database, whatever its driver and schema: what migrations and admin queries run on. */
// biome-ignore lint/suspicious/noExplicitAny: any Drizzle PostgreSQL database, whatever its driver and schema
export type Database = PgDatabase<PgQueryResultHKT, any>

/**
 * Runs a statement as the driver's own prepared statement, returning rows as
 * arrays of the driver's values. Through drizzle's `execute` the append
 * would be described anew on every call (a second round trip on
 * postgres.js), and drizzle's row mapping costs as much CPU as the rest of a
 * read.
 */
/**
 * A statement run on the store's primary in an Effect: rows as arrays, its
 * failures `StoreError`s naming `operation` (the stores' own queries, for the
 * modules beside them: snapshots, keys, the stream lifecycle).
 */
export type Query = (
  operation: string,
  statement: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, StoreError>

export type RunStatement = (
  statement: string,
  params: ReadonlyArray<unknown>
) => Promise<ReadonlyArray<ReadonlyArray<unknown>>>

/**
 * Wraps every database call: the PostgreSQL store bounds how many run at once
 * (its pool), the PGlite store gives the event loop a turn after each.
 */
export interface Gate {
  <A>(operation: string, run: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError>
  /**
   * A gate of permits may let a call take one without an Effect: `tryEnter`
   * takes one if one is free (true), and the call gives it back with `leave`
   * once its statement has answered.
   */
  readonly tryEnter?: () => boolean
  readonly leave?: () => void
}

export const ungated: Gate = (_, run) => run

/** A closing statement failed (see `Session.transaction`): which one, and the database's error. */
export class ClosingFailed {
  constructor(
    readonly index: number,
    readonly cause: unknown
  ) {}
}

/** A database session of a projection's or reactor's instance. */
export interface Session {
  readonly run: RunStatement
  /**
   * Runs `body` in a transaction of the session, then the `closing`
   * statements of its result: committed if all succeed, rolled back
   * otherwise. PostgreSQL sends the closing statements and the commit in one
   * round trip, so a closing statement that must stop the commit fails
   * (returning nothing would not stop it): its failure (`ClosingFailed`)
   * turns the commit into a rollback.
   */
  readonly transaction: {
    <A, E, R>(body: (db: Database, run: RunStatement) => Effect.Effect<A, E, R>): Effect.Effect<A, E | StoreError, R>
    <A, E, R>(
      body: (db: Database, run: RunStatement) => Effect.Effect<A, E, R>,
      closing: (result: A) => ReadonlyArray<Statement>
    ): Effect.Effect<A, E | StoreError | ClosingFailed, R>
  }
}

export interface Sessions {
  /** A session for the scope: PostgreSQL opens a connection of its own, PGlite shares its only one. */
  readonly open: Effect.Effect<Session, StoreError, Scope.Scope>
  /**
   * Takes the lock named `key` on `session` for the scope, if free: an
   * advisory lock on PostgreSQL (freed with the session), a registry of the
   * process on PGlite.
   */
  readonly tryLock: (session: Session, key: string) => Effect.Effect<boolean, StoreError, Scope.Scope>
  /** Whether each of `keys` is locked, by any instance. */
  readonly isLocked: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<boolean>, StoreError>
}
