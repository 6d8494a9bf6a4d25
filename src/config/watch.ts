/**
 * Watching a config file for changes, for `sidecarless/register` and `sidecarless proxy`.
 *
 * The directory is watched, not the file: editors save by writing a new file and renaming
 * it over the old one, and Kubernetes updates a mounted ConfigMap by swapping a `..data`
 * symlink; both replace the file a file watch would follow. Events are debounced (a save
 * is often several events), and the content is compared with the last one seen, so only a
 * real change reaches `onChange`. The watcher never keeps the process alive.
 *
 * @module
 */
import { readFileSync, statSync, watch, watchFile, unwatchFile, type FSWatcher } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { limits } from './defaults.js'

/** Options of {@link watchConfigFile}. */
export interface WatchOptions {
  /** Quiet time after the last event before the file is read again (default 250 ms). */
  readonly debounceMs?: number
  /** Called with a problem reading the file (it may be mid-replacement); the next change retries. */
  readonly onError?: (err: Error) => void
}

/** A running watch; `close()` stops it. */
export interface ConfigWatch {
  close(): void
}

/**
 * Calls `onChange()` after `path`'s content changed (not on the first read, which is taken
 * as the content in force).
 */
export function watchConfigFile(path: string, onChange: () => void, options: WatchOptions = {}): ConfigWatch {
  const file = resolve(path)
  const name = basename(file)
  const debounceMs = options.debounceMs ?? 250
  let last: string | undefined
  try {
    last = read(file)
  } catch {
    last = undefined
  }
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const check = (): void => {
    timer = undefined
    if (closed) return
    let text: string | undefined
    try {
      text = read(file)
    } catch (err) {
      options.onError?.(err as Error)
      return
    }
    if (text === last) return
    last = text
    onChange()
  }
  const schedule = (): void => {
    if (closed) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(check, debounceMs)
    timer.unref()
  }

  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      // `changed` is null on some platforms; `..data` is a Kubernetes ConfigMap swap.
      if (changed === null || changed === name || changed.startsWith('..')) schedule()
    })
    watcher.on('error', () => fallBackToPolling())
  } catch {
    fallBackToPolling()
  }

  function fallBackToPolling(): void {
    watcher?.close()
    watcher = undefined
    if (closed) return
    // Out of inotify watches, or a file system without events: poll the file's stat.
    watchFile(file, { persistent: false, interval: 1000 }, schedule)
  }

  return {
    close(): void {
      if (closed) return
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      watcher?.close()
      unwatchFile(file, schedule)
    },
  }
}

function read(file: string): string {
  const size = statSync(file).size
  if (size > limits.configFileBytes) throw new Error(`config file ${file} is ${size} bytes; the limit is ${limits.configFileBytes}`)
  return readFileSync(file, 'utf8')
}
