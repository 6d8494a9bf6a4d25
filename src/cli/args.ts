/**
 * Argument parsing shared by the subcommands: node:util `parseArgs`, strict (an unknown
 * flag or a missing value is a usage error, exit code 2).
 *
 * @module
 */

/** Exit codes of every subcommand. */
export const Exit = {
  /** Done; for `validate`, every file is valid. */
  OK: 0,
  /** The command ran and found a problem (an invalid config, a proxy that could not start). */
  FAILED: 1,
  /** The command line was wrong, or a file could not be read. */
  USAGE: 2,
} as const

/** A wrong command line; the message is shown with the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/**
 * Runs a node:util `parseArgs` call (give it `strict: true`), turning its errors (unknown
 * flag, missing value) into a {@link UsageError}.
 */
export function strictly<T>(parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** Prints a usage error and the usage text to stderr; returns exit code 2. */
export function usageFailure(command: string, err: UsageError, usage: string): number {
  process.stderr.write(`sidecarless ${command}: ${err.message}\n\n${usage}`)
  return Exit.USAGE
}
