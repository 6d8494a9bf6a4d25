/**
 * The client-side harness shared by the outbound benchmarks (dispatcher.mjs, resilience.mjs):
 * a forked keep-alive upstream on two loopback ports (lib/upstream-server.mjs), so this
 * process's CPU is the client's alone, and timed slices of one variant at a fixed
 * concurrency with client, upstream and "others" CPU.
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Forks the upstream and waits for its ports. `stop()` ends it; it exiting before that ends
 * this process with code 2.
 */
export async function startUpstreamChild() {
  const child = fork(fileURLToPath(new URL('./upstream-server.mjs', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const childExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let childGone = false
  let shuttingDown = false
  void childExit.then(({ code, signal }) => {
    childGone = true
    if (!shuttingDown) {
      console.error(`upstream child exited unexpectedly (code ${code}, signal ${signal})`)
      process.exit(2)
    }
  })
  const ports = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('upstream child did not report its ports within 10s')), 10_000)
    child.once('message', (m) => {
      clearTimeout(timer)
      resolve(m.ports)
    })
  })
  let cpuSeq = 0
  /** The upstream's CPU time (µs), its clock, and the connections it accepted so far. */
  function serverCpu() {
    const seq = ++cpuSeq
    return new Promise((resolve) => {
      const on = (m) => {
        if (m?.seq !== seq) return
        child.off('message', on)
        resolve({ us: m.cpu.user + m.cpu.system, t: m.t, connections: m.connections })
      }
      child.on('message', on)
      child.send({ cmd: 'cpu', seq })
    })
  }
  async function stop() {
    shuttingDown = true
    if (childGone) return
    child.disconnect()
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
    await childExit
    clearTimeout(timer)
  }
  return { ports, serverCpu, stop }
}

/** Machine-wide busy CPU time (ms, all cores) from /proc/stat, to show what else ran; undefined off Linux. */
function machineBusyMs() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    const [user, nice, system, , , irq, softirq, steal] = f
    return { busy: ((user + nice + system + irq + softirq) * 1000) / CLK_TCK, steal: (steal * 1000) / CLK_TCK }
  } catch {
    return undefined
  }
}
const CLK_TCK = 100

/**
 * One slice: `call` (resolving to a status) for `ms` at `concurrency` in flight. Returns raw
 * sums, so slices can be added with `addUp`.
 */
export async function runSlice(call, ms, concurrency, serverCpu) {
  let n = 0
  let bad = 0
  const s0 = await serverCpu()
  const m0 = machineBusyMs()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const deadline = t0 + ms
  const worker = async () => {
    while (performance.now() < deadline) {
      const status = await call()
      if (status !== 200) bad++
      n++
    }
  }
  const workers = []
  for (let i = 0; i < concurrency; i++) workers.push(worker())
  await Promise.all(workers)
  const elapsed = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const m1 = machineBusyMs()
  const s1 = await serverCpu()
  const clientMs = (cpu.user + cpu.system) / 1000
  const serverMs = (s1.us - s0.us) / 1000
  return {
    n,
    bad,
    elapsed,
    clientMs,
    serverMs,
    serverElapsed: s1.t - s0.t,
    // TCP connections the upstream accepted during the slice (a warm client opens none).
    connects: s1.connections - s0.connections,
    // CPU used by everything else on the machine meanwhile (other processes, steal), in ms.
    othersMs: m0 === undefined ? NaN : Math.max(0, m1.busy - m0.busy - clientMs - serverMs) + (m1.steal - m0.steal),
  }
}

/** The slices of one variant in one round, added up, with rates and per-request figures. */
export function addUp(slices) {
  const t = { n: 0, bad: 0, elapsed: 0, clientMs: 0, serverMs: 0, serverElapsed: 0, othersMs: 0, connects: 0 }
  for (const s of slices) for (const k of Object.keys(t)) t[k] += s[k]
  return {
    ...t,
    rps: (t.n * 1000) / t.elapsed,
    cpuPerReq: (t.clientMs * 1000) / t.n,
    clientCpuPct: (t.clientMs / t.elapsed) * 100,
    serverCpuPct: (t.serverMs / t.serverElapsed) * 100,
    othersPct: (t.othersMs / t.elapsed) * 100,
  }
}
