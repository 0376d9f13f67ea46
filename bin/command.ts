// The shape of one CLI command: each lives in bin/commands/<name>.ts and is listed in bin/anybios.ts.

export interface Command {
  /** `node add` is name 'node' with its own sub-dispatch. */
  name: string;
  summary: string;
  /** Full help text printed by `anybios help NAME` and `NAME --help`. */
  usage: string;
  /** Returns the process exit code. Throw CliError for an expected failure with a clear message. */
  run(argv: string[]): Promise<number>;
}

/** An expected failure: printed as `anybios: CODE: message` without a stack, exit code `exitCode`. */
export class CliError extends Error {
  constructor(readonly code: string, message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
  }
}
