/**
 * Request/reply over the IPC channel of a forked child, for the multi-process benchmarks
 * (bench/side-by-side.mjs). The parent sends `{ seq, cmd, ...args }`; the child answers
 * `{ seq, ok, result | error }`. Every child also answers `cpu` (its CPU time in µs) and can
 * profile itself over the inspector between `profile-start` and `profile-stop`, so a profile
 * holds the measured load only, not start-up or warm-up. A child exits when its parent goes
 * (the IPC channel closes), so a killed benchmark leaves no process behind.
 */
import { fork } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'

// ---------------------------------------------------------------- child side

/**
 * Serves `handlers` (cmd → async (args) → result) on the IPC channel. `cpu` defaults to this
 * process's own CPU time; `onDisconnect` runs before the process exits when the parent goes.
 */
export function serve(handlers, { onDisconnect } = {}) {
  let session
  const builtin = {
    cpu: () => {
      const u = process.cpuUsage()
      return { us: u.user + u.system, user: u.user, system: u.system }
    },
    'profile-start': async ({ intervalUs = 250 }) => {
      const { Session } = await import('node:inspector/promises')
      session = new Session()
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: intervalUs })
      await session.post('Profiler.start')
      return {}
    },
    'profile-stop': async ({ file }) => {
      if (session === undefined) throw new Error('no profile was started')
      const { profile } = await session.post('Profiler.stop')
      session.disconnect()
      session = undefined
      writeFileSync(file, JSON.stringify(profile))
      return { file }
    },
  }
  const all = { ...builtin, ...handlers }
  process.on('message', (m) => {
    if (m === null || typeof m !== 'object' || typeof m.seq !== 'number') return
    const handler = all[m.cmd]
    const reply = (body) => {
      if (process.connected) process.send({ seq: m.seq, ...body })
    }
    if (handler === undefined) {
      reply({ ok: false, error: `unknown command ${m.cmd}` })
      return
    }
    Promise.resolve()
      .then(() => handler(m.args ?? {}))
      .then((result) => reply({ ok: true, result }), (err) => reply({ ok: false, error: err?.stack ?? String(err) }))
  })
  // The parent handles Ctrl-C for the whole tree (it kills every child it started); a child
  // dying on the terminal's SIGINT first would look like a crash.
  process.on('SIGINT', () => {})
  process.on('disconnect', () => {
    Promise.resolve()
      .then(() => onDisconnect?.())
      .catch(() => {})
      .finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 1000).unref()
  })
}

// ---------------------------------------------------------------- parent side

/** Every child forked by `forkChild`, so the parent can kill what is left on any exit path. */
export const children = new Set()

/**
 * Forks `file` under the Node binary `execPath` and returns a handle whose `call(cmd, args)`
 * resolves with the child's result. An unexpected exit rejects every pending call and
 * calls `onCrash`.
 */
export function forkChild(file, { execPath = process.execPath, execArgv = [], args = [], name = file, onCrash } = {}) {
  const child = fork(file, args, { execPath, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' })
  children.add(child)
  const pending = new Map()
  let seq = 0
  let stopping = false
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  void exited.then(({ code, signal }) => {
    children.delete(child)
    const why = new Error(`${name} exited (code ${code}, signal ${signal})`)
    for (const p of pending.values()) p.reject(why)
    pending.clear()
    if (!stopping) onCrash?.(why)
  })
  child.on('error', (err) => {
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  })
  child.on('message', (m) => {
    const p = pending.get(m?.seq)
    if (p === undefined) return
    pending.delete(m.seq)
    if (m.ok) p.resolve(m.result)
    else p.reject(new Error(`${name}: ${m.error}`))
  })
  return {
    name,
    pid: child.pid,
    /** Sends a command; rejects after `timeoutMs` without an answer. */
    call(cmd, callArgs = {}, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        if (!child.connected) {
          reject(new Error(`${name} is not running`))
          return
        }
        const id = ++seq
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`${name} did not answer ${cmd} within ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer)
            resolve(v)
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        })
        child.send({ seq: id, cmd, args: callArgs })
      })
    },
    /** Closes the channel (the child exits by itself), then kills it if it lingers. */
    async stop() {
      stopping = true
      if (child.exitCode !== null || child.signalCode !== null) return
      if (child.connected) child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    },
  }
}

// ---------------------------------------------------------------- /proc

/**
 * CPU time (µs) of a process other than a Node child, e.g. HAProxy: the sum of its threads'
 * run time from /proc/<pid>/task/<tid>/schedstat (nanoseconds), or utime + stime from
 * /proc/<pid>/stat (clock ticks of 10 ms) where schedstat is missing. Undefined once the
 * process is gone.
 */
export function procCpuUs(pid) {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0])
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1000
  } catch {
    // fall through to /proc/<pid>/stat
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
  } catch {
    return undefined
  }
}
const CLK_TCK = 100

/** Machine-wide busy CPU time (µs, all cores) from /proc/stat; undefined off Linux. */
export function machineBusyUs() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    const [user, nice, system, , , irq, softirq, steal] = f
    return ((user + nice + system + irq + softirq + steal) * 1e6) / CLK_TCK
  } catch {
    return undefined
  }
}
