/**
 * A tiny authoritative DNS server over UDP for tests: it answers A and AAAA questions with
 * the records and TTL a test sets, changeable at runtime, and counts every question it gets.
 * Names it does not know get NXDOMAIN; a name may also be set to answer SERVFAIL or REFUSED,
 * or to be ignored (the client times out). Enough of RFC 1035 for c-ares (`dns.Resolver`).
 */
import dgram from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'

/** What the server answers for one name. */
export interface DnsZoneEntry {
  /** IPv4 addresses (A records). */
  a?: string[]
  /** IPv6 addresses (AAAA records). */
  aaaa?: string[]
  /** TTL of every record, in seconds (default 0: resolvers must not cache). */
  ttl?: number
  /** Answer this response code instead of records. */
  rcode?: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED'
  /** Never answer (the resolver times out): every question, or only those of one type. */
  drop?: boolean | 'A' | 'AAAA'
}

/** One question the server received. */
export interface DnsQuestion {
  readonly name: string
  readonly type: 'A' | 'AAAA' | number
}

const TYPE_A = 1
const TYPE_AAAA = 28
const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const

/** A running test DNS server. */
export class TestDnsServer {
  /** `127.0.0.1:<port>`: what `dns.Resolver#setServers` and `dnsResolvers` take. */
  readonly address: string
  /** Every question received, in order. */
  readonly questions: DnsQuestion[] = []
  readonly #socket: dgram.Socket
  readonly #zone = new Map<string, DnsZoneEntry>()

  private constructor(socket: dgram.Socket) {
    this.#socket = socket
    this.address = `127.0.0.1:${socket.address().port}`
    socket.on('message', (msg, rinfo) => this.#answer(msg, rinfo))
  }

  /** Starts a server on 127.0.0.1, a free UDP port. */
  static async start(): Promise<TestDnsServer> {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, '127.0.0.1', () => resolve())
    })
    return new TestDnsServer(socket)
  }

  /** Sets (replaces) what `name` answers. */
  set(name: string, entry: DnsZoneEntry): void {
    this.#zone.set(name.toLowerCase().replace(/\.$/, ''), entry)
  }

  /** Forgets `name`: it answers NXDOMAIN again. */
  delete(name: string): void {
    this.#zone.delete(name.toLowerCase().replace(/\.$/, ''))
  }

  /** Questions received about `name` (of `type`, when given). */
  count(name: string, type?: 'A' | 'AAAA'): number {
    const n = name.toLowerCase()
    return this.questions.filter((q) => q.name === n && (type === undefined || q.type === type)).length
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()))
  }

  #answer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12 || (msg.readUInt16BE(2) & 0x8000) !== 0 || msg.readUInt16BE(4) !== 1) return
    let offset = 12
    const labels: string[] = []
    for (;;) {
      const len = msg[offset]
      if (len === undefined || len > 63) return
      offset++
      if (len === 0) break
      labels.push(msg.subarray(offset, offset + len).toString('latin1'))
      offset += len
    }
    if (offset + 4 > msg.length) return
    const qtype = msg.readUInt16BE(offset)
    const question = msg.subarray(12, offset + 4)
    const name = labels.join('.').toLowerCase()
    this.questions.push({ name, type: qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : qtype })
    const entry = this.#zone.get(name)
    const type = this.questions[this.questions.length - 1]?.type
    if (entry?.drop === true || (entry?.drop !== undefined && entry.drop === type)) return
    const rcode = entry === undefined ? RCODES.NXDOMAIN : RCODES[entry.rcode ?? 'NOERROR']
    const addresses = rcode !== RCODES.NOERROR || entry === undefined ? [] : qtype === TYPE_A ? entry.a ?? [] : qtype === TYPE_AAAA ? entry.aaaa ?? [] : []
    const answers = addresses.map((a) => record(qtype, entry?.ttl ?? 0, a))
    const header = Buffer.alloc(12)
    header.writeUInt16BE(msg.readUInt16BE(0), 0)
    // QR, opcode 0, AA, RD copied from the query, RA; the response code.
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2)
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(answers.length, 6)
    this.#socket.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address)
  }
}

/** One A or AAAA answer, its owner name a pointer to the question (offset 12). */
function record(type: number, ttl: number, address: string): Buffer {
  const data = type === TYPE_A ? ipv4Bytes(address) : ipv6Bytes(address)
  const rr = Buffer.alloc(12)
  rr.writeUInt16BE(0xc00c, 0)
  rr.writeUInt16BE(type, 2)
  rr.writeUInt16BE(1, 4)
  rr.writeUInt32BE(ttl, 6)
  rr.writeUInt16BE(data.length, 10)
  return Buffer.concat([rr, data])
}

function ipv4Bytes(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`${address} is not an IPv4 address`)
  return Buffer.from(address.split('.').map(Number))
}

function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new Error(`${address} is not an IPv6 address`)
  const [head = '', tail = ''] = address.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const groups = address.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}
