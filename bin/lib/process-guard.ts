// Long-running processes (server, agent) must not die on a network error that a library failed to
// catch: PouchDB's HTTP adapter can leave a rejected fetch unhandled when a connection is reset.
// Such errors are logged and the process carries on (replication retries by itself); anything else
// uncaught is a bug: log it and exit non-zero so a supervisor restarts us (systems keep running).

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

export function isNetworkError(err: unknown): boolean {
  const e = err as { code?: string; errno?: string; name?: string; type?: string; cause?: { code?: string } };
  return (
    NETWORK_CODES.has(String(e?.code)) || NETWORK_CODES.has(String(e?.errno)) || NETWORK_CODES.has(String(e?.cause?.code)) ||
    e?.name === 'FetchError' || e?.name === 'AbortError' || e?.name === 'TimeoutError'
  );
}

export function guardProcess(label: string, write: (msg: string) => void = (m) => console.error(m)): void {
  // Our own stdout/stderr closing (the parent is gone) is not a network error: it raises EPIPE on every
  // later write, and logging that to the same closed pipe would raise it again, forever. A closed output
  // is noted here, and from then on we stay quiet (the parent's death is handled by stopOnSignals).
  let outputGone = false;
  for (const s of [process.stdout, process.stderr]) s.on('error', () => (outputGone = true));
  const log = (m: string) => {
    if (!outputGone) write(m);
  };
  process.on('unhandledRejection', (reason) => {
    if (isNetworkError(reason)) log(`${label}: network error outside a handler (ignored): ${(reason as Error)?.message ?? reason}`);
    else log(`${label}: unhandled rejection (continuing): ${(reason as Error)?.stack ?? reason}`);
  });
  process.on('uncaughtException', (err) => {
    if (isNetworkError(err)) {
      log(`${label}: network error outside a handler (ignored): ${err.message}`);
      return;
    }
    log(`${label}: uncaught exception, exiting: ${err.stack ?? err}`);
    process.exit(70);
  });
}
