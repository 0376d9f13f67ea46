// Graceful stop on SIGINT/SIGTERM for long-running commands; a second signal exits at once.
// With ANYBIOS_STOP_ON_STDIN_EOF=1 the end of standard input stops it too: a parent that starts us
// with a stdin pipe (the tests) takes us down with it even when it is SIGKILLed, so nothing leaks.

export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (why: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log(`${why}: stopping`);
    stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
  if (process.env.ANYBIOS_STOP_ON_STDIN_EOF === '1') {
    process.stdin.on('end', () => handler('stdin closed'));
    process.stdin.on('error', () => handler('stdin closed'));
    process.stdin.resume();
  }
}
