/**
 * What a token budget is, as the broker's configuration defines it: whose tokens it counts (`per`),
 * over which window, how many, and which checks spend it.
 */

/** Whose tokens a budget counts. */
export type BudgetPer = 'subject' | 'agent' | 'team' | 'key';

/** A calendar window (UTC) or a fixed period aligned on the Unix epoch. */
export type BudgetWindow = { readonly kind: 'hour' | 'day' | 'month' } | { readonly kind: 'period'; readonly ms: number };

/** One configured budget (`budgets[]` of warden.yaml), validated. */
export interface BudgetDefinition {
  /** A CEL identifier: policies read `request.context.budget.<name>`. */
  readonly name: string;
  readonly per: BudgetPer;
  /** For `per: team`: where the team is read, e.g. `['principal', 'attr', 'team']`. */
  readonly teamPath: readonly string[] | undefined;
  readonly window: BudgetWindow;
  /** Tokens per window. */
  readonly limit: number;
  /** Resource kinds it applies to; undefined: every kind. */
  readonly kinds: ReadonlySet<string> | undefined;
  /** Actions it applies to; undefined: every action. */
  readonly actions: ReadonlySet<string> | undefined;
  /** Tokens reserved for a check whose request names no `max_tokens`. */
  readonly defaultEstimate: number;
  /** How long a reservation holds its tokens unless settled by a usage report. */
  readonly reservationTtlMs: number;
}

/** What policies read at `request.context.budget.<name>`. */
export interface BudgetView {
  readonly limit: number;
  /** Tokens settled by usage reports in this window. */
  readonly used: number;
  /** Tokens held by unsettled, unexpired reservations. */
  readonly reserved: number;
  /** `limit - used - reserved`, never below 0. */
  readonly remaining: number;
  /** Tokens this request would reserve. */
  readonly estimate: number;
  /** The window's id, e.g. `2026-11-28` for a day. */
  readonly window: string;
  /** When the window ends (RFC 3339, UTC). */
  readonly resetsAt: string;
}
