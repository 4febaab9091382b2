/**
 * Stop waiting for a promise when a signal aborts, for drivers that take no signal themselves.
 */

/**
 * Settles with `work` unless `signal` aborts first: then calls `onAbort` once and rejects with the
 * signal's reason. `work` is always observed, so its late rejection is never unhandled.
 * @example const rows = await unlessAborted(db.query(sql), signal, () => client.release(true));
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const abort = (): void => {
      if (done) return;
      done = true;
      onAbort();
      reject(signal.reason);
    };
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        if (done) return;
        done = true;
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        if (done) return;
        done = true;
        reject(err);
      },
    );
  });
}
