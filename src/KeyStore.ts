/**
 * Where the keys of data subjects live (see `PersonalData`): one key per
 * subject, made on the first append that writes the subject's personal data,
 * read to open it, destroyed when the subject is erased.
 *
 * Each store keeps the keys beside its events unless it is given a key store
 * of its own: the SQL stores in the table `subject_keys` of their schema, the
 * in-memory store on its heap. An application that keeps keys elsewhere (a
 * KMS, a vault) provides its own to the store's layer:
 *
 * ```ts
 * PostgresEventStore.layer({ url }).pipe(Layer.provide(KeyStore.layer(myVault)))
 * ```
 *
 * Every process that reads the store must use the same key store: a subject's
 * key lives in one place.
 */
import { Context, type Effect, Layer } from "effect"
import type { StoreError, SubjectErased } from "./errors.js"

export interface KeyStore {
  /**
   * The key (32 bytes, AES-256) of each of `subjects`, made and stored for
   * those that have none. Fails with `SubjectErased` for a subject already
   * erased: its personal data is never written again.
   */
  readonly keysFor: (
    subjects: ReadonlySet<string>
  ) => Effect.Effect<ReadonlyMap<string, Uint8Array>, SubjectErased | StoreError>
  /** The keys of those of `subjects` that have one (an erased subject has none). */
  readonly existingKeys: (subjects: ReadonlySet<string>) => Effect.Effect<ReadonlyMap<string, Uint8Array>, StoreError>
  /**
   * Destroys `subject`'s key, for good: its personal data can no longer be
   * read. Called by `PersonalData.erase` before the store records the
   * erasure. The stores' own key stores leave this to the erasure itself,
   * which removes the key in the same transaction as it records it.
   */
  readonly destroy: (subject: string) => Effect.Effect<void, StoreError>
}

export const KeyStore: Context.Tag<KeyStore, KeyStore> = Context.GenericTag<KeyStore>("eventcore/KeyStore")

/** Gives the stores built under it `keys` instead of their own. */
export const layer = (keys: KeyStore): Layer.Layer<KeyStore> => Layer.succeed(KeyStore, keys)
