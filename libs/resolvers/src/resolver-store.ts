/**
 * Where admin-registered resolver configs live (DESIGN.md section 5): a versioned, append-only
 * history per resolver name. `libs/persistence` implements it on Postgres (or the embedded
 * PGlite); the broker validates every change against the whole set before it is committed and
 * reloads its registry when {@link ResolverStore.subscribe} reports a change from any instance.
 */

/** A raw resolver config as the admin API received it (checked by the registry, not here). */
export type RawResolverConfig = Readonly<Record<string, unknown>>;

/** What a change did. */
export type ResolverChangeAction = 'create' | 'replace' | 'delete' | 'rollback';

/** The current config of one resolver. */
export interface StoredResolver {
  readonly name: string;
  /** 1 for the first config of this name; +1 on every change. */
  readonly version: number;
  readonly config: RawResolverConfig;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/** One entry of a resolver's history. `config` is null for a delete. */
export interface ResolverRevision {
  readonly name: string;
  readonly version: number;
  readonly action: ResolverChangeAction;
  readonly config: RawResolverConfig | null;
  readonly at: string;
  readonly actor: string;
}

/** A change asked for by an admin. */
export type ResolverChange =
  | { readonly action: 'create'; readonly name: string; readonly config: RawResolverConfig }
  | { readonly action: 'replace'; readonly name: string; readonly config: RawResolverConfig; readonly expectedVersion?: number }
  | { readonly action: 'delete'; readonly name: string; readonly expectedVersion?: number }
  | { readonly action: 'rollback'; readonly name: string; readonly toVersion: number };

/**
 * Durable, versioned resolver configs shared by every broker instance.
 *
 * `apply` runs one change atomically with respect to every other change on any instance: it reads
 * the current set, computes the next one, calls `validate(next)` (which throws to refuse) and
 * only then commits and notifies. It throws `ERR_NOT_FOUND` for an unknown name or version,
 * `ERR_CONFLICT` for a create over an existing name or a stale `expectedVersion`.
 */
export interface ResolverStore {
  list(): Promise<readonly StoredResolver[]>;
  /** Every revision of `name`, oldest first; empty when the name was never used. */
  history(name: string): Promise<readonly ResolverRevision[]>;
  apply(change: ResolverChange, actor: string, validate: (next: readonly StoredResolver[]) => void): Promise<StoredResolver | undefined>;
  /** Calls `onChange` after any instance committed a change; resolves to an unsubscribe function. */
  subscribe(onChange: () => void): Promise<() => Promise<void>>;
}
