/**
 * The hosts file (`/etc/hosts`; `%SystemRoot%\System32\drivers\etc\hosts` on Windows), read
 * by DNS clusters before they ask a DNS server, as getaddrinfo and Envoy's c-ares resolver
 * do: c-ares queries (`dns.Resolver`) never read it, so without this `localhost` and names a
 * container runtime writes there would not resolve. The file is re-read when its size or
 * modification time changes, checked at most once a second.
 */
import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'

/** One address the hosts file gives a name. */
export interface HostsAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** How long a read of the file is trusted before its size and mtime are checked again. */
const RECHECK_MS = 1_000

/** The platform's hosts file. */
export function defaultHostsPath(): string {
  if (process.platform === 'win32') return join(process.env['SystemRoot'] ?? 'C:\\Windows', 'System32', 'drivers', 'etc', 'hosts')
  return '/etc/hosts'
}

/**
 * Parses hosts-file text: `address name [aliases...]` per line, `#` comments. Names are
 * case-insensitive; a name on several lines gets every address, in file order, once each.
 */
export function parseHosts(text: string): Map<string, HostsAddress[]> {
  const table = new Map<string, HostsAddress[]>()
  for (const raw of text.split(/\r?\n/)) {
    const hash = raw.indexOf('#')
    const fields = (hash < 0 ? raw : raw.slice(0, hash)).trim().split(/\s+/)
    const address = fields[0]
    if (address === undefined || fields.length < 2) continue
    const family = isIP(address)
    if (family === 0) continue
    for (const name of fields.slice(1)) {
      const key = normalizeName(name)
      let list = table.get(key)
      if (list === undefined) table.set(key, (list = []))
      if (!list.some((a) => a.address === address)) list.push({ address, family: family as 4 | 6 })
    }
  }
  return table
}

/** Lower case, without a trailing dot: how names are compared. */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

/** A hosts file, read lazily and kept while it does not change. */
export class HostsFile {
  #table: Map<string, HostsAddress[]> = new Map()
  #version = ''
  #checkedAt = -Infinity
  #loading: Promise<void> | undefined

  constructor(readonly path: string = defaultHostsPath()) {}

  /** The addresses the file gives `name` (none when it does not list it or cannot be read). */
  async lookup(name: string): Promise<readonly HostsAddress[]> {
    if (performance.now() - this.#checkedAt >= RECHECK_MS) {
      this.#loading ??= this.#load().finally(() => (this.#loading = undefined))
      await this.#loading
    }
    return this.#table.get(normalizeName(name)) ?? []
  }

  async #load(): Promise<void> {
    try {
      const s = await stat(this.path)
      const version = `${s.size}:${s.mtimeMs}`
      if (version !== this.#version) {
        this.#table = parseHosts(await readFile(this.path, 'utf8'))
        this.#version = version
      }
    } catch {
      // No hosts file (or unreadable): DNS alone answers.
      this.#table = new Map()
      this.#version = ''
    }
    this.#checkedAt = performance.now()
  }
}

/** The process's hosts file, shared by every DNS cluster. */
export const systemHostsFile = new HostsFile()
