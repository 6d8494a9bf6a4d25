/**
 * Bodies for transport tests: `bigBody(n)` is `n` bytes that differ from one size to the
 * next (so two responses read at once cannot pass for each other), `sha` its digest, and
 * `readSlowly` a body read a turn of the event loop per chunk, so that the reads of several
 * connections interleave while chunks are held; `sendBigBody` answers a `/big/<n>` request.
 */
import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'

export function bigBody(n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 0xff
  return b
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

export async function readSlowly(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of body) {
    chunks.push(c as Buffer)
    await new Promise((resolve) => setImmediate(resolve))
  }
  return Buffer.concat(chunks)
}

/** Answers `/big/<n>` with `bigBody(n)` in uneven writes (several reads' worth for a client); false for any other path. */
export function sendBigBody(url: string | undefined, res: ServerResponse): boolean {
  if (url?.startsWith('/big/') !== true) return false
  const body = bigBody(Number(url.slice('/big/'.length)))
  res.setHeader('content-length', body.length)
  for (let at = 0; at < body.length; at += 7919) res.write(body.subarray(at, at + 7919))
  res.end()
  return true
}
