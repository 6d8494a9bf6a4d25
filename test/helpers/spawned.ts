/**
 * Child processes for tests: spawned from the repository root (so `sidecarless/register`
 * resolves to this package), their output collected, and killed by `stopAll()` in an
 * `after` hook whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root (tests run from build/test/). */
export const root = fileURLToPath(new URL('../../../', import.meta.url))

/** A running child. */
export interface Spawned {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first stdout match of `re` (or rejects after `ms`, with the output so far). */
  waitFor(re: RegExp, ms?: number, stream?: 'stdout' | 'stderr'): Promise<RegExpMatchArray>
  /** Resolves when the child has exited. */
  exited(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const running = new Set<ChildProcess>()

/** Spawns `command args` in the repository root with `env` added to a clean environment. */
export function start(command: string, args: string[], env: Record<string, string> = {}): Spawned {
  const base: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('SIDECARLESS_') && !k.startsWith('NODE_TEST')) base[k] = v
  }
  const child = spawn(command, args, { cwd: root, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let out = ''
  let err = ''
  const waiters = new Set<() => void>()
  const poke = (): void => {
    for (const w of waiters) w()
  }
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d
    poke()
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d
    poke()
  })
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  child.once('exit', (code, signal) => {
    exit = { code, signal }
    running.delete(child)
    poke()
  })
  const describe = (): string => `\n--- stdout\n${out}\n--- stderr\n${err}`
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(re, ms = 20_000, stream = 'stdout') {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = (stream === 'stdout' ? out : err).match(re)
          if (m !== null) done(() => resolve(m))
          else if (exit !== undefined) done(() => reject(new Error(`exited (${JSON.stringify(exit)}) before ${re}${describe()}`)))
        }
        const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${re}${describe()}`))), ms)
        const done = (f: () => void): void => {
          clearTimeout(timer)
          waiters.delete(check)
          f()
        }
        waiters.add(check)
        check()
      })
    },
    exited(ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (exit !== undefined) done(() => resolve(exit as { code: number | null; signal: NodeJS.Signals | null }))
        }
        const timer = setTimeout(() => done(() => reject(new Error(`did not exit in ${ms} ms${describe()}`))), ms)
        const done = (f: () => void): void => {
          clearTimeout(timer)
          waiters.delete(check)
          f()
        }
        waiters.add(check)
        check()
      })
    },
  }
}

/** Kills every child still running (for `after` hooks). */
export function stopAll(): void {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
}
