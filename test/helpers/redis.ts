/**
 * A real redis-server for tests: started as a child process on a free loopback port, with no
 * persistence, and ready once it answers PING. It can be killed, paused (SIGSTOP, a Redis that
 * hangs) and restarted on the same port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'

const START_TIMEOUT_MS = 5_000
const STOP_TIMEOUT_MS = 5_000

let available: boolean | undefined

/** Whether `redis-server` can be run here. Tests skip themselves when it cannot. */
export function redisServerAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore', timeout: 5_000 })
    available = r.error === undefined && r.status === 0
  }
  return available
}

/** A running (or stopped, to be restarted) redis-server. */
export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`, with the password when one was set. */
  readonly url: string
  readonly pid: number | undefined
  /** SIGKILL, and wait until it has exited. */
  kill(): Promise<void>
  /** Starts it again on the same port (after kill/stop), and waits until it answers. */
  restart(): Promise<void>
  /** SIGSTOP: the connection stays open but nothing answers. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /** Sends one command on a connection of its own and returns the decoded reply. */
  command(...args: string[]): Promise<RedisReply>
  /** SIGTERM (SIGKILL if it lingers), and wait until it has exited. Idempotent. */
  stop(): Promise<void>
}

const running = new Set<ChildProcess>()
// Never leave a redis-server behind, even if a test forgets to stop one.
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL')
})

/** A loopback port nothing listens on now (bound on port 0, then released). */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Starts a redis-server on a free port; `password` sets `requirepass`. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisServer> {
  let lastError: unknown
  // The free port may be taken between probing and binding: try another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      const proc = await launch(port, options.password)
      return server(port, proc, options.password)
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}

function server(port: number, first: ChildProcess, password: string | undefined): RedisServer {
  let proc: ChildProcess | undefined = first
  return {
    port,
    url: password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    get pid() {
      return proc?.pid
    },
    async kill() {
      if (proc !== undefined) await terminate(proc, 'SIGKILL')
      proc = undefined
    },
    async restart() {
      if (proc !== undefined) await terminate(proc, 'SIGKILL')
      proc = undefined
      // The port was ours a moment ago; retry briefly in case the kernel still holds it.
      let lastError: unknown
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          proc = await launch(port, password)
          return
        } catch (err) {
          lastError = err
          await sleep(100)
        }
      }
      throw lastError
    },
    pause() {
      proc?.kill('SIGSTOP')
    },
    resume() {
      proc?.kill('SIGCONT')
    },
    command(...args: string[]) {
      return rawCommand(port, password, args)
    },
    async stop() {
      if (proc === undefined) return
      proc.kill('SIGCONT')
      await terminate(proc, 'SIGTERM')
      proc = undefined
    },
  }
}

async function launch(port: number, password: string | undefined): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no']
  if (password !== undefined) args.push('--requirepass', password)
  const proc = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(proc)
  let stderr = ''
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = once(proc, 'exit').then(() => {
    throw new Error(`redis-server on port ${port} exited at start (code ${proc.exitCode}): ${stderr.trim()}`)
  })
  exited.catch(() => undefined)
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    const answered = await Promise.race([ping(port), exited])
    if (answered) return proc
    await sleep(20)
  }
  await terminate(proc, 'SIGKILL')
  throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS}ms`)
}

/** True when something on `port` answers PING like Redis (`-NOAUTH` counts: it is up). */
async function ping(port: number): Promise<boolean> {
  try {
    const reply = await rawCommand(port, undefined, ['PING'])
    return reply === 'PONG' || (reply instanceof Error && reply.message.startsWith('NOAUTH'))
  } catch {
    return false
  }
}

/** A decoded RESP reply: status and bulk strings, integers, nil, arrays; errors are `Error`s. */
export type RedisReply = string | number | null | Error | RedisReply[]

/** One command (after AUTH, when there is a password) on a fresh connection, bounded in time. */
function rawCommand(port: number, password: string | undefined, args: string[]): Promise<RedisReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(2_000, () => socket.destroy(new Error(`no reply from redis on port ${port}`)))
    let buffer = ''
    const replies: RedisReply[] = []
    const wanted = password === undefined ? 1 : 2
    socket.setEncoding('latin1')
    socket.on('error', reject)
    socket.on('data', (d: string) => {
      buffer += d
      for (;;) {
        const parsed = parseReply(buffer, 0)
        if (parsed === undefined) return
        replies.push(parsed.value)
        buffer = buffer.slice(parsed.end)
        if (replies.length === wanted) {
          socket.end()
          resolve(replies[wanted - 1] as RedisReply)
          return
        }
      }
    })
    const encode = (parts: string[]) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`
    socket.write((password === undefined ? '' : encode(['AUTH', password])) + encode(args))
  })
}

/** Parses one RESP2 reply at `at`; `undefined` while incomplete. */
function parseReply(text: string, at: number): { value: RedisReply; end: number } | undefined {
  const eol = text.indexOf('\r\n', at)
  if (eol === -1) return undefined
  const type = text[at]
  const line = text.slice(at + 1, eol)
  const next = eol + 2
  switch (type) {
    case '+':
      return { value: line, end: next }
    case '-':
      return { value: new Error(line), end: next }
    case ':':
      return { value: Number(line), end: next }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      if (text.length < next + n + 2) return undefined
      return { value: text.slice(next, next + n), end: next + n + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      const items: RedisReply[] = []
      let end = next
      for (let i = 0; i < n; i++) {
        const item = parseReply(text, end)
        if (item === undefined) return undefined
        items.push(item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default:
      throw new Error(`unexpected RESP reply: ${JSON.stringify(text.slice(at, at + 40))}`)
  }
}

async function terminate(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = once(proc, 'exit')
    proc.kill(signal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }
  running.delete(proc)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
