/**
 * node:http clients for the requests a server does not get as a plain `request` event:
 * `Expect: 100-continue` (the body held until `100 Continue`), upgrades, and CONNECT.
 */
import http from 'node:http'

/** A node:http request with `Expect: 100-continue`: the body goes only after `100 Continue`. */
export function expectContinue(port: number, path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': String(body.length), ...headers } })
    let continued = false
    req.on('continue', () => {
      continued = true
      req.end(body)
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
        // A refused request never sent its body: end the request so the socket is let go.
        if (!continued) req.destroy()
        resolve({ status: res.statusCode ?? 0, text, continued })
      })
    })
    req.on('error', reject)
    req.flushHeaders()
  })
}

/** A node:http upgrade request: resolves with the status of a refusal (`response`) or the 101 (`upgrade`). */
export function upgradeRequest(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path, agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }))
    })
    req.on('upgrade', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode ?? 0, text: '', headers: res.headers })
    })
    req.on('error', reject)
    req.end()
  })
}

/** A CONNECT through node:http: the status, and what came through the tunnel until it closed. */
export function connectRequest(port: number, authority: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'CONNECT', path: authority, agent: false, headers })
    req.on('connect', (res, socket, head) => {
      let text = head.toString()
      socket.setEncoding('utf8').on('data', (d: string) => (text += d)).on('close', () => resolve({ status: res.statusCode ?? 0, text }))
      socket.on('error', () => {})
    })
    req.on('error', reject)
    req.end()
  })
}

/** A node:http GET with an `Expect` other than 100-continue (the server's `checkExpectation`). */
export function expectationRequest(port: number, path: string, expect: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port, path, agent: false, headers: { expect, ...headers } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    }).on('error', reject).end()
  })
}
