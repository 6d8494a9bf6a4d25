/**
 * Output of bench/side-by-side.mjs: the Markdown table of one Node version, the combined
 * table of every version (the issues' format: throughput ratio and CPU per request per
 * version), and an SVG chart of the same, written by hand (no chart dependency) so the
 * README can embed it.
 */

const f0 = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—')
const f2 = (n) => (Number.isFinite(n) ? n.toFixed(2) : '—')
const ratio = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—')

/** `v24.21.0` → `Node 24.21`. */
export function nodeLabel(version) {
  const m = /^v(\d+)\.(\d+)/.exec(version)
  return m ? `Node ${m[1]}.${m[2]}` : `Node ${version}`
}

/** The per-version table (Markdown). */
export function versionTable(v) {
  const rows = [
    '| arm | processes | req/s | req/s ÷ direct | CPU µs/req | CPU ÷ direct | CPU µs/req: client / server / proxies | p50 / p90 / p99 ms at 1000 req/s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ]
  for (const a of v.arms) {
    const split = `${f0(a.split.client)} / ${f0(a.split.server)}${a.processes > 2 ? ` / ${f0(a.split.proxies)}` : ''}`
    rows.push(`| ${a.title} | ${a.processes} | ${f0(a.rps)} | ${ratio(a.rpsRatio)} | ${f0(a.cpuPerReq)} | ${ratio(a.cpuRatio)} | ${split} | ${f2(a.p50)} / ${f2(a.p90)} / ${f2(a.p99)} |`)
  }
  return rows.join('\n')
}

/** Every version side by side: req/s ÷ direct and CPU µs/req per version (issue 15's format). */
export function combinedTable(versions) {
  const head = ['arm', ...versions.flatMap((v) => [`${nodeLabel(v.version)} req/s`, 'CPU µs/req'])]
  const rows = [`| ${head.join(' | ')} |`, `| --- |${versions.map(() => ' ---: | ---: |').join('')}`]
  const names = []
  for (const v of versions) for (const a of v.arms) if (!names.some((n) => n.name === a.name)) names.push({ name: a.name, title: a.title })
  for (const { name, title } of names) {
    const cells = versions.flatMap((v) => {
      const a = v.arms.find((x) => x.name === name)
      return a === undefined ? ['—', '—'] : [ratio(a.rpsRatio), f0(a.cpuPerReq)]
    })
    rows.push(`| ${title} | ${cells.join(' | ')} |`)
  }
  const rss = versions.map((v) => `${nodeLabel(v.version)} ${v.rss ? `${v.rss.deltaMB.toFixed(1)} MB` : '—'}`).join(', ')
  return `${rows.join('\n')}\n\nRSS added by the library (100-cluster config, after GC): ${rss}.`
}

// ---------------------------------------------------------------- SVG

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1']

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** An axis from 0 to at least `max` in 3–6 round steps (1, 2, 2.5 or 5 × a power of ten). */
function niceAxis(max) {
  if (!(max > 0)) max = 1
  const p = 10 ** Math.floor(Math.log10(max / 4))
  for (const m of [1, 2, 2.5, 5, 10, 20]) {
    const step = m * p
    const ticks = Math.ceil(max / step - 1e-9)
    if (ticks <= 6) return { max: ticks * step, step }
  }
  return { max, step: max / 4 }
}

/**
 * Two panels of horizontal bars, one row per arm, one bar per Node version: throughput ÷
 * direct (with the 0.95× target and 1.0× marked) and CPU µs per request summed over the
 * arm's processes.
 */
export function svgChart(versions, { title, subtitle }) {
  const names = []
  for (const v of versions) for (const a of v.arms) if (!names.some((n) => n.name === a.name)) names.push({ name: a.name, title: a.label ?? a.title, group: a.group })
  const n = versions.length
  const labelW = 230
  const panelW = 300
  const gap = 40
  const barH = 11
  const rowH = n * (barH + 2) + 12
  const top = 78
  const width = labelW + 2 * panelW + gap + 60
  const height = top + names.length * rowH + 40
  const ratioAxis = niceAxis(Math.max(1.1, ...versions.flatMap((v) => v.arms.map((a) => a.rpsRatio).filter(Number.isFinite))))
  const cpuAxis = niceAxis(Math.max(...versions.flatMap((v) => v.arms.map((a) => a.cpuPerReq).filter(Number.isFinite)), 1))
  const ratioMax = ratioAxis.max
  const cpuMax = cpuAxis.max
  const x1 = labelW
  const x2 = labelW + panelW + gap
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="11">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="600">${esc(title)}</text>`)
  out.push(`<text x="10" y="37" fill="#555">${esc(subtitle)}</text>`)
  // Legend.
  versions.forEach((v, i) => {
    const lx = 10 + i * 120
    out.push(`<rect x="${lx}" y="47" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`)
    out.push(`<text x="${lx + 14}" y="56">${esc(nodeLabel(v.version))}</text>`)
  })
  out.push(`<text x="${x1}" y="${top - 6}" font-weight="600">req/s ÷ direct (closed loop, 32 connections)</text>`)
  out.push(`<text x="${x2}" y="${top - 6}" font-weight="600">CPU µs per request, all processes of the arm</text>`)
  const axisBottom = top + names.length * rowH
  // Grid and axes.
  for (let t = 0; t <= ratioMax + 1e-9; t += ratioAxis.step) {
    const x = x1 + (t / ratioMax) * panelW
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${axisBottom}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${axisBottom + 13}" text-anchor="middle" fill="#555">${Number(t.toFixed(2))}×</text>`)
  }
  for (let t = 0; t <= cpuMax + 1e-9; t += cpuAxis.step) {
    const x = x2 + (t / cpuMax) * panelW
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${axisBottom}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${axisBottom + 13}" text-anchor="middle" fill="#555">${Math.round(t)}</text>`)
  }
  const one = x1 + (1 / ratioMax) * panelW
  const target = x1 + (0.95 / ratioMax) * panelW
  out.push(`<line x1="${one}" y1="${top}" x2="${one}" y2="${axisBottom}" stroke="#333" stroke-dasharray="4 3"/>`)
  out.push(`<line x1="${target}" y1="${top}" x2="${target}" y2="${axisBottom}" stroke="#c0392b" stroke-dasharray="2 2"/>`)
  out.push(`<text x="${target - 3}" y="${axisBottom + 26}" text-anchor="end" fill="#c0392b">target 0.95×</text>`)
  // Rows.
  names.forEach(({ name, title: armTitle, group }, r) => {
    const y0 = top + r * rowH + 6
    if (r % 2 === 1) out.push(`<rect x="0" y="${y0 - 6}" width="${width}" height="${rowH}" fill="#f7f7f7" opacity="0.6"/>`)
    // A rule where the mTLS arms start.
    if (r > 0 && group !== names[r - 1].group) out.push(`<line x1="10" y1="${y0 - 6}" x2="${width - 10}" y2="${y0 - 6}" stroke="#999"/>`)
    out.push(`<text x="${labelW - 8}" y="${y0 + (n * (barH + 2)) / 2 + 3}" text-anchor="end">${esc(armTitle)}</text>`)
    versions.forEach((v, i) => {
      const a = v.arms.find((x) => x.name === name)
      const y = y0 + i * (barH + 2)
      const color = COLORS[i % COLORS.length]
      if (a === undefined) return
      if (Number.isFinite(a.rpsRatio)) {
        const w = Math.max(1, (a.rpsRatio / ratioMax) * panelW)
        out.push(`<rect x="${x1}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(`${nodeLabel(v.version)} ${armTitle}: ${a.rpsRatio.toFixed(3)}× direct`)}</title></rect>`)
        out.push(`<text x="${(x1 + w + 3).toFixed(1)}" y="${y + barH - 2}" font-size="10">${a.rpsRatio.toFixed(2)}×</text>`)
      }
      if (Number.isFinite(a.cpuPerReq)) {
        const w = Math.max(1, (a.cpuPerReq / cpuMax) * panelW)
        out.push(`<rect x="${x2}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(`${nodeLabel(v.version)} ${armTitle}: ${a.cpuPerReq.toFixed(1)} µs/req`)}</title></rect>`)
        out.push(`<text x="${(x2 + w + 3).toFixed(1)}" y="${y + barH - 2}" font-size="10">${Math.round(a.cpuPerReq)}</text>`)
      }
    })
  })
  out.push(`<line x1="${x1}" y1="${top}" x2="${x1}" y2="${axisBottom}" stroke="#333"/>`)
  out.push(`<line x1="${x2}" y1="${top}" x2="${x2}" y2="${axisBottom}" stroke="#333"/>`)
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
