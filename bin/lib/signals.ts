// Graceful stop on SIGINT/SIGTERM for long-running commands; a second signal exits at once.

export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log(`${sig}: stopping`);
    stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}
