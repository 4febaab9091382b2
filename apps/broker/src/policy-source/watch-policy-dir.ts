/**
 * Tells when a policy directory may have changed: `fs.watch` (recursive; inotify on Linux) for
 * speed, and a periodic fingerprint of the files' path, size, inode and modification time
 * ({@link fingerprintPolicyDir}) because `fs.watch` misses changes in some setups (bind mounts,
 * network file systems, a Kubernetes ConfigMap's symlink swap, a watcher that died with ENOSPC).
 * Bursts of events (an editor's temp file, rename and chmod; `git checkout` of many files) are
 * debounced into one call. What changed is not decided here: the reloader reads the directory and
 * compares content hashes, so a spurious call costs one read and nothing else.
 */
import { watch, type FSWatcher } from 'node:fs';
import { fingerprintPolicyDir, fingerprintPolicyDirAsync } from './read-policy-dir.js';

/** Options of {@link watchPolicyDir}. */
export interface WatchPolicyDirOptions {
  readonly dir: string;
  /** Quiet time after the last event before `onChange` (ms). */
  readonly debounceMs: number;
  /** How often the fingerprint is compared (ms); 0: never (events only). */
  readonly pollIntervalMs: number;
  /** Called (debounced) when the directory may have changed. */
  readonly onChange: () => void;
  /** Called when the file-system watcher fails (polling goes on; the watcher is retried at each poll). */
  readonly onWatchError?: (err: Error) => void;
  /** Use `fs.watch` (default true); false: polling only. */
  readonly useWatcher?: boolean;
}

/** A running watch; `close` stops it. */
export interface PolicyDirWatch {
  close(): void;
}

/** A burst that never pauses still fires after this many debounce periods. */
const MAX_WAIT_FACTOR = 5;

/** Paths under hidden folders or of hidden files (.git, editor swap files) are never policies. */
function isHidden(relativePath: string): boolean {
  return relativePath.split(/[\\/]/).some((part) => part.startsWith('.'));
}

/**
 * Starts watching `options.dir`.
 *
 * @example
 * const w = watchPolicyDir({ dir, debounceMs: 200, pollIntervalMs: 1000, onChange: () => void reloader.reload() });
 * // later
 * w.close();
 */
export function watchPolicyDir(options: WatchPolicyDirOptions): PolicyDirWatch {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let firstEventAt = 0;
  let watcher: FSWatcher | undefined;
  // The watcher is retried at every poll; the same failure is reported once.
  let reported: string | undefined;
  const report = (err: Error): void => {
    const key = `${(err as NodeJS.ErrnoException).code ?? ''}:${err.message}`;
    if (key === reported) return;
    reported = key;
    options.onWatchError?.(err);
  };
  let fingerprint = options.pollIntervalMs > 0 ? fingerprintPolicyDir(options.dir) : '';
  /** Reloads signalled so far (a poll started before one is stale). */
  let reloads = 0;

  const fire = (): void => {
    timer = undefined;
    firstEventAt = 0;
    if (closed) return;
    // Taken before the reload reads: a change made after it is seen by the next poll.
    if (options.pollIntervalMs > 0) fingerprint = fingerprintPolicyDir(options.dir);
    reloads += 1;
    options.onChange();
  };

  const changed = (): void => {
    if (closed) return;
    const now = Date.now();
    if (firstEventAt === 0) firstEventAt = now;
    if (timer !== undefined) clearTimeout(timer);
    const waited = now - firstEventAt;
    const delay = waited >= options.debounceMs * MAX_WAIT_FACTOR ? 0 : options.debounceMs;
    timer = setTimeout(fire, delay);
    timer.unref();
  };

  const startWatcher = (): void => {
    if (options.useWatcher === false || watcher !== undefined || closed) return;
    try {
      const w = watch(options.dir, { recursive: true, persistent: false }, (_event, name) => {
        if (typeof name === 'string' && isHidden(name)) return;
        changed();
      });
      w.on('error', (err) => {
        w.close();
        if (watcher === w) watcher = undefined;
        report(err);
        // A watcher that died may have missed the change that killed it (the directory replaced).
        changed();
      });
      watcher = w;
      reported = undefined;
    } catch (err) {
      report(err as Error);
    }
  };

  startWatcher();
  let poll: NodeJS.Timeout | undefined;
  // The poll runs on a serving process every `pollIntervalMs`: its listing and stats go to the
  // thread pool rather than block the event loop (with many files, the synchronous walk held it
  // for as long as the file system took). One poll at a time; a poll that a reload overtook (its
  // fingerprint may be older than the one `fire` took) is dropped.
  let polling = false;
  if (options.pollIntervalMs > 0) {
    poll = setInterval(() => {
      startWatcher();
      if (polling) return;
      polling = true;
      const before = reloads;
      fingerprintPolicyDirAsync(options.dir).then(
        (next) => {
          polling = false;
          if (closed || reloads !== before || next === fingerprint) return;
          fingerprint = next;
          changed();
        },
        () => (polling = false),
      );
    }, options.pollIntervalMs);
    poll.unref();
  }

  return {
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
      watcher?.close();
      watcher = undefined;
    },
  };
}
