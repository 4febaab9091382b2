/**
 * The entries `record` took since the event loop's last check phase, shared by both writers
 * (`createAuditWriter`, `createThreadedAuditWriter`): the caller answers first, and the entries
 * are built and serialised together in the check phase (`setImmediate` after the first), or at
 * once when a writer must keep its order or its bound (`drain`).
 */
import { buildRecord, type AuditRecord, type ComposedEntry, type SerializedEntry } from './audit-entry.js';

export class RecordedEntries {
  private items: AuditRecord[] = [];

  /**
   * @param take each entry built, in the order recorded (one that fails to build is reported
   *   through `onError` and skipped).
   * @param built called after a drain that built anything.
   * @param place tried first with each record as it was recorded: true when it took the record
   *   itself (the threaded writer writes a {@link ComposedEntry} straight into its ring), false to
   *   have it built and handed to `take`.
   */
  constructor(
    private readonly onError: (message: string) => void,
    private readonly take: (entry: SerializedEntry) => void,
    private readonly built?: () => void,
    private readonly place?: (r: AuditRecord) => boolean,
  ) {}

  /** How many wait to be built. */
  get length(): number {
    return this.items.length;
  }

  /** Takes `r`; builds it (and those before it) at once when `now`, else in the next check phase. */
  add(r: AuditRecord, now: boolean): void {
    this.items.push(r);
    if (now) this.drain();
    else if (this.items.length === 1) setImmediate(this.drain);
  }

  /** Builds and hands over every entry taken so far. */
  readonly drain = (): void => {
    const items = this.items;
    if (items.length === 0) return;
    this.items = [];
    for (const r of items) {
      if (this.place?.(r) === true) continue;
      const e = buildRecord(r, this.onError);
      if (!(e instanceof Error)) this.take(e);
    }
    this.built?.();
  };
}
