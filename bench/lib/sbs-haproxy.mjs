/**
 * Runs one HAProxy (a sidecar of bench/side-by-side.mjs) under a small Node supervisor, so
 * it obeys the same IPC protocol as the other processes: `start` spawns
 * `haproxy -db -f <config>` and waits until its port accepts connections; `cpu` answers with
 * HAProxy's CPU time from /proc (not the supervisor's, which idles). HAProxy runs in its
 * own process group, away from the terminal's Ctrl-C, and is killed when the parent goes,
 * whatever way it goes.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import { procCpuUs, serve } from './ipc.mjs'

let haproxy
let exited = false
let stderr = ''

function kill() {
  if (haproxy !== undefined && !exited) {
    try {
      haproxy.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
}
process.on('exit', kill)
process.on('SIGTERM', () => process.exit(0))

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

serve({
  async start({ bin, config, port }) {
    let started = false
    haproxy = spawn(bin, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    haproxy.stderr.setEncoding('utf8').on('data', (d) => {
      stderr = (stderr + d).slice(-4000)
    })
    haproxy.once('exit', (code, signal) => {
      exited = true
      // Dying after start is a crash of the arm: leave, so the parent sees it.
      if (started) {
        console.error(`haproxy (${config}) exited (code ${code}, signal ${signal}): ${stderr.trim()}`)
        process.exit(3)
      }
    })
    const deadline = performance.now() + 10_000
    while (!(await canConnect(port))) {
      if (exited) throw new Error(`haproxy exited at start: ${stderr.trim()}`)
      if (performance.now() > deadline) throw new Error(`haproxy did not listen on ${port} within 10 s: ${stderr.trim()}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    started = true
    return { pid: haproxy.pid }
  },
  cpu: () => {
    const us = haproxy === undefined ? 0 : procCpuUs(haproxy.pid)
    if (us === undefined) throw new Error('haproxy is gone')
    return { us }
  },
}, { onDisconnect: kill })
