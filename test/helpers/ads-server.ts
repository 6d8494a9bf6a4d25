/**
 * A scripted ADS server on @grpc/grpc-js for the xDS client's tests: it sends exactly the
 * DiscoveryResponses a test writes, records every DiscoveryRequest (decoded), and can be
 * stopped and started again on the same address (a server restart). No control-plane logic:
 * a test decides what istiod would have sent, and when.
 */
import type * as GrpcModule from '@grpc/grpc-js'
import { loadGrpc } from '../../src/xds/optional-deps.js'
import { loadXdsCodec } from '../../src/xds/protos.js'
import type { XdsCodec, XdsObject } from '../../src/xds/codec.js'

export const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const

export type TypeName = keyof typeof TYPE

/** A DiscoveryRequest as the server received it. */
export interface SeenRequest {
  readonly stream: number
  readonly typeUrl: string
  readonly type: TypeName | undefined
  readonly version: string
  readonly nonce: string
  readonly names: string[]
  /** `error_detail.message` of a NACK. */
  readonly error: string | undefined
  readonly node: XdsObject | undefined
}

type Stream = GrpcModule.ServerDuplexStream<Buffer, Buffer>

/** The server. */
export class ScriptedAdsServer {
  readonly requests: SeenRequest[] = []
  /** Every response sent, by nonce: its type, version and the names of its resources in order. */
  readonly sent = new Map<string, { readonly type: TypeName; readonly version: string; readonly names: string[]; readonly stream: number }>()
  #grpc!: typeof GrpcModule
  #codec!: XdsCodec
  #server: GrpcModule.Server | undefined
  #streams = new Map<number, Stream>()
  #nextStream = 0
  #nonce = 0
  #waiters: { match: (r: SeenRequest) => boolean; resolve: (r: SeenRequest) => void; from: number }[] = []
  /** Called for each request (a test's own automatic answers). */
  onRequest: ((r: SeenRequest, server: ScriptedAdsServer) => void) | undefined
  address = ''

  #tls: { cert: string; key: string } | undefined

  /** Starts on `address` (`127.0.0.1:0` or `unix:/path`), over TLS when given; resolves with the bound address. */
  static async start(address = '127.0.0.1:0', tls?: { cert: string; key: string }): Promise<ScriptedAdsServer> {
    const s = new ScriptedAdsServer()
    s.#tls = tls
    s.#grpc = await loadGrpc()
    s.#codec = await loadXdsCodec()
    await s.listen(address)
    return s
  }

  /** (Re)starts listening; the address stays the same after a restart. */
  async listen(address = this.address): Promise<void> {
    const grpc = this.#grpc
    const server = new grpc.Server()
    const bytes = (b: Buffer): Buffer => b
    server.addService({
      StreamAggregatedResources: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        requestStream: true,
        responseStream: true,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    }, {
      StreamAggregatedResources: (call: Stream) => this.#stream(call),
    })
    const port = await new Promise<number>((resolve, reject) => {
      const creds = this.#tls === undefined
        ? grpc.ServerCredentials.createInsecure()
        : grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(this.#tls.key), cert_chain: Buffer.from(this.#tls.cert) }], false)
      server.bindAsync(address, creds, (err, p) => (err === null ? resolve(p) : reject(err)))
    })
    this.#server = server
    if (this.address === '') this.address = address.startsWith('unix:') ? address : `127.0.0.1:${port}`
  }

  #stream(call: Stream): void {
    const id = ++this.#nextStream
    this.#streams.set(id, call)
    call.on('data', (b: Buffer) => {
      const r = this.#codec.decode('envoy.service.discovery.v3.DiscoveryRequest', b)
      const typeUrl = String(r['type_url'] ?? '')
      const error = r['error_detail'] as XdsObject | undefined
      const seen: SeenRequest = {
        stream: id,
        typeUrl,
        type: (Object.keys(TYPE) as TypeName[]).find((k) => TYPE[k] === typeUrl),
        version: String(r['version_info'] ?? ''),
        nonce: String(r['response_nonce'] ?? ''),
        names: (r['resource_names'] as string[] | undefined) ?? [],
        error: error === undefined ? undefined : String(error['message'] ?? ''),
        node: r['node'] as XdsObject | undefined,
      }
      this.requests.push(seen)
      for (const w of [...this.#waiters]) {
        if (this.requests.length - 1 >= w.from && w.match(seen)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve(seen)
        }
      }
      this.onRequest?.(seen, this)
    })
    call.on('error', () => undefined)
    call.on('end', () => {
      this.#streams.delete(id)
      call.end()
    })
    call.on('cancelled', () => this.#streams.delete(id))
  }

  /** The id of the newest open stream. */
  get stream(): number {
    return Math.max(0, ...this.#streams.keys())
  }

  /**
   * Sends a response on a stream (default the newest). `resources` are objects in the
   * codec's form (`'@type'` set per resource; `{ '@type', '@bytes' }` sends raw bytes).
   * Returns the nonce.
   */
  send(type: TypeName, version: string, resources: XdsObject[], options: { stream?: number; nonce?: string } = {}): string {
    const nonce = options.nonce ?? `n${++this.#nonce}`
    const call = this.#streams.get(options.stream ?? this.stream)
    if (call === undefined) throw new Error('no open stream')
    const body = this.#codec.encode('envoy.service.discovery.v3.DiscoveryResponse', {
      version_info: version,
      type_url: TYPE[type],
      nonce,
      resources: resources.map((r) => ('@type' in r ? r : { '@type': TYPE[type], ...r })),
    })
    call.write(Buffer.from(body))
    this.sent.set(nonce, { type, version, names: resources.map((r) => String(r['name'] ?? r['cluster_name'] ?? '')), stream: options.stream ?? this.stream })
    return nonce
  }

  /** The next request (after those seen so far, or from index `from`) that `match` accepts. */
  next(match: (r: SeenRequest) => boolean = () => true, ms = 5_000, from = this.requests.length): Promise<SeenRequest> {
    for (let i = from; i < this.requests.length; i++) {
      const r = this.requests[i] as SeenRequest
      if (match(r)) return Promise.resolve(r)
    }
    return new Promise((resolve, reject) => {
      const w = { match, from, resolve: (r: SeenRequest) => {
        clearTimeout(timer)
        resolve(r)
      } }
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1)
        reject(new Error(`no matching request within ${ms} ms; seen: ${JSON.stringify(this.requests.slice(from).map((r) => [r.type, r.names, r.version, r.nonce, r.error]))}`))
      }, ms)
      this.#waiters.push(w)
    })
  }

  /** The request acknowledging (or refusing) `nonce`. */
  answerTo(nonce: string, ms = 5_000): Promise<SeenRequest> {
    return this.next((r) => r.nonce === nonce, ms, 0)
  }

  /**
   * What the client decided for each resource it was sent, from its answer to the last
   * response that carried it while the client still subscribed to it (a client ignores a
   * resource it no longer wants): `type:name` → ACK or NACK (named by `resource index <i>`
   * in error_detail), with the version the answer carried.
   */
  decisions(): Map<string, { decision: 'ACK' | 'NACK'; version: string; error: string | undefined }> {
    const out = new Map<string, { decision: 'ACK' | 'NACK'; version: string; error: string | undefined }>()
    for (const [nonce, response] of this.sent) {
      const answer = this.requests.find((r) => r.nonce === nonce && r.stream === response.stream)
      if (answer === undefined) continue
      const refused = new Set([...(answer.error ?? '').matchAll(/resource index (\d+)/g)].map((m) => Number(m[1])))
      response.names.forEach((name, i) => {
        if (!answer.names.includes(name)) return
        out.set(`${response.type}:${name}`, { decision: refused.has(i) ? 'NACK' : 'ACK', version: answer.version, error: refused.has(i) ? answer.error : undefined })
      })
    }
    return out
  }

  /** Stops accepting and ends every stream (a server going away). */
  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const call of this.#streams.values()) call.destroy(new Error('server stopped'))
    this.#streams.clear()
    if (server !== undefined) server.forceShutdown()
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * A minimal state-of-the-world server over a ScriptedAdsServer: it answers each request
 * with the requested resources the table has (the state of the world for the names asked),
 * versioned per type, and pushes the table again when it changes. A request that only
 * ACKs or NACKs the last response (same names) gets no answer, as istiod does.
 */
export class ResourceTable {
  readonly #server: ScriptedAdsServer
  readonly #resources = new Map<TypeName, Map<string, XdsObject>>()
  readonly #versions = new Map<TypeName, number>()
  /** stream:type → what was last sent: names, version and nonce. */
  readonly #sent = new Map<string, { names: string; version: string; nonce: string }>()
  /** stream:type → names the client subscribes to. */
  readonly #subscribed = new Map<string, string[]>()
  /** Types not answered (to hold a response back). */
  readonly held = new Set<TypeName>()

  constructor(server: ScriptedAdsServer) {
    this.#server = server
    server.onRequest = (r) => this.#onRequest(r)
  }

  /** Adds or replaces resources (named by `name` or `cluster_name`); does not push. */
  set(type: TypeName, ...resources: XdsObject[]): this {
    let m = this.#resources.get(type)
    if (m === undefined) {
      m = new Map()
      this.#resources.set(type, m)
    }
    for (const r of resources) m.set(String(r['name'] ?? r['cluster_name']), r)
    this.#versions.set(type, (this.#versions.get(type) ?? 0) + 1)
    return this
  }

  /** Removes resources; does not push. */
  delete(type: TypeName, ...names: string[]): this {
    for (const n of names) this.#resources.get(type)?.delete(n)
    this.#versions.set(type, (this.#versions.get(type) ?? 0) + 1)
    return this
  }

  /** The current version of a type. */
  version(type: TypeName): string {
    return String(this.#versions.get(type) ?? 0)
  }

  /** Sends the current state of `types` to every stream that subscribes to them. */
  push(...types: TypeName[]): void {
    for (const [key, names] of this.#subscribed) {
      const [stream, type] = key.split(':') as [string, TypeName]
      if (types.length > 0 && !types.includes(type)) continue
      this.#answer(Number(stream), type, names, true)
    }
  }

  #onRequest(r: SeenRequest): void {
    if (r.type === undefined) return
    const key = `${r.stream}:${r.type}`
    this.#subscribed.set(key, r.names)
    const last = this.#sent.get(key)
    // A request carrying an older nonce is stale: ignored (the client will answer the newer response).
    if (last !== undefined && r.nonce !== last.nonce) return
    this.#answer(r.stream, r.type, r.names, false)
  }

  #answer(stream: number, type: TypeName, names: string[], force: boolean): void {
    if (this.held.has(type)) return
    const key = `${stream}:${type}`
    const version = this.version(type)
    const namesKey = [...names].sort().join('\n')
    const last = this.#sent.get(key)
    if (!force && last !== undefined && last.names === namesKey && last.version === version) return
    if (force && last !== undefined && last.names === namesKey && last.version === version) return
    const have = this.#resources.get(type) ?? new Map<string, XdsObject>()
    const resources = names.filter((n) => have.has(n)).map((n) => have.get(n) as XdsObject)
    try {
      const nonce = this.#server.send(type, version, resources, { stream })
      this.#sent.set(key, { names: namesKey, version, nonce })
    } catch (err) {
      // The stream went away; anything else is a test's mistake.
      if ((err as Error).message !== 'no open stream') throw err
    }
  }
}
