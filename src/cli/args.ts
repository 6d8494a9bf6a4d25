/**
 * Argument parsing shared by the subcommands: node:util `parseArgs`, strict (an unknown
 * flag or a missing value is a usage error, exit code 2).
 *
 * @module
 */
import { isLoopback, parseListenAddress, type ListenAddress } from '../config/listen-address.js'

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

/** `text`, the value of `flag`, as a listen address (`host:port`), or a {@link UsageError} naming the flag. */
export function listenAddressArg(flag: string, text: string): ListenAddress {
  const parsed = parseListenAddress(text)
  if (typeof parsed === 'string') throw new UsageError(`${flag}: ${parsed}`)
  return parsed
}

/** {@link listenAddressArg} for an admin endpoint, which binds to loopback only. */
export function adminAddressArg(flag: string, text: string): ListenAddress {
  const parsed = listenAddressArg(flag, text)
  if (!isLoopback(parsed.host)) throw new UsageError(`${flag} ${text}: the admin endpoint binds to loopback only (127.0.0.1, ::1, localhost)`)
  return parsed
}

/**
 * Waits for SIGINT or SIGTERM, then says so on stderr (`sidecarless <command>: SIGTERM:
 * <doing>`) and awaits `stop`; a second signal exits at once with {@link Exit.FAILED}.
 * Resolves once `stop` has, after printing `sidecarless <command>: stopped`.
 */
export async function runUntilSignal(command: string, doing: string, stop: () => Promise<unknown>): Promise<void> {
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.stderr.write(`sidecarless ${command}: ${signal}: ${doing}\n`)
      // A second signal does not wait.
      process.once('SIGINT', () => process.exit(Exit.FAILED))
      process.once('SIGTERM', () => process.exit(Exit.FAILED))
      void stop().then(() => resolve())
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  process.stderr.write(`sidecarless ${command}: stopped\n`)
}
