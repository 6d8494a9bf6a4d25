/** JWT test keys, tokens and a real JWKS server (port 0) whose behaviour a test can switch. */
import { createHmac } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'

/** A signing key with its public JWK. */
export interface TestKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256'
  readonly privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey']
  readonly jwk: JWK
  readonly spki: string
}

/** A fresh key pair (RS256 or ES256) named `kid`. */
export async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, jwk, spki: await exportSPKI(publicKey) }
}

/** A token signed by `key` (kid set), with `claims`; `iat` now. */
export async function sign(key: TestKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).setIssuedAt().sign(key.privateKey)
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

/** An unsecured token (`alg: none`), as an attacker would send it. */
export function unsigned(claims: JWTPayload, kid: string): string {
  return `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(claims)}.`
}

/** The classic key-confusion forgery: HS256 with the RSA public key (PEM) as the HMAC secret. */
export function hmacWithPublicKey(key: TestKey, claims: JWTPayload): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64(claims)}`
  return `${input}.${createHmac('sha256', key.spki).update(input).digest('base64url')}`
}

/** Seconds since the epoch. */
export const now = (): number => Math.floor(Date.now() / 1000)

/** What the JWKS server does. */
export type JwksMode = 'ok' | 'error' | 'hang' | 'huge' | 'garbage'

/** A running JWKS server. */
export interface JwksServer {
  readonly url: string
  mode: JwksMode
  keys: JWK[]
  /** Requests received. */
  fetches: number
  close(): Promise<void>
}

export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const sockets = new Set<Socket>()
  const state = { url: '', mode: 'ok', keys, fetches: 0 } as JwksServer
  const server = http.createServer((req, res) => {
    state.fetches++
    switch (state.mode) {
      case 'ok':
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ keys: state.keys }))
        return
      case 'error':
        res.statusCode = 500
        res.end('down')
        return
      case 'garbage':
        res.end('{"keys": [')
        return
      case 'huge':
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ keys: state.keys, padding: 'x'.repeat(2 * 1024 * 1024) }))
        return
      case 'hang':
        // Never answers; the socket is destroyed by close().
        return
    }
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ;(state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`
  state.close = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return state
}
