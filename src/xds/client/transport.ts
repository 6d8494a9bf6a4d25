/**
 * The ADS stream to the xDS server: one bidirectional gRPC call
 * (`AggregatedDiscoveryService.StreamAggregatedResources`) on a channel made from the
 * bootstrap's server and channel credentials, restarted when it ends.
 *
 * - The call waits for the channel (gRPC `waitForReady`), so a server that is down is
 *   retried by the channel's own reconnect, not by failing calls.
 * - `connected` fires when the channel is READY with the stream open: only then do the
 *   does-not-exist timers run (gRFC A57), so a client that cannot reach its server never
 *   concludes that resources do not exist.
 * - A stream that ends is started again: at once when it had received a response (the
 *   backoff resets, as gRPC's xDS client does), else after an exponential backoff with
 *   jitter (gRPC's connection backoff: 1 s, ×1.6, ±20 %, at most 120 s).
 *
 * Messages are bytes both ways: the caller encodes requests and reads responses.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import type * as GrpcModule from '@grpc/grpc-js'
import type { Grpc } from '../optional-deps.js'
import type { XdsServer } from './bootstrap.js'

const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources'

/** What the transport tells its owner. */
export interface AdsTransportHandler {
  /** A new stream is open: send the node and every subscription again. */
  streamStarted(): void
  /** The channel is READY with the stream open. */
  connected(): void
  /** A DiscoveryResponse arrived (bytes). */
  response(bytes: Buffer): void
  /** The stream ended; a new one follows after `retryInMs`. */
  streamEnded(reason: string, retryInMs: number): void
}

/** Backoff settings (gRPC's connection backoff by default). */
export interface BackoffOptions {
  readonly initialMs: number
  readonly multiplier: number
  readonly jitter: number
  readonly maxMs: number
}

export const GRPC_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 120_000 })

type Call = GrpcModule.ClientDuplexStream<Buffer, Buffer>

/** One ADS stream at a time, restarted with backoff. */
export class AdsTransport {
  readonly #grpc: Grpc
  readonly #server: XdsServer
  readonly #handler: AdsTransportHandler
  readonly #backoff: BackoffOptions
  #client: GrpcModule.Client | undefined
  #call: Call | undefined
  #connected = false
  #retryTimer: NodeJS.Timeout | undefined
  #nextBackoffMs: number
  #closed = false

  constructor(grpc: Grpc, server: XdsServer, handler: AdsTransportHandler, backoff: BackoffOptions = GRPC_BACKOFF) {
    this.#grpc = grpc
    this.#server = server
    this.#handler = handler
    this.#backoff = backoff
    this.#nextBackoffMs = backoff.initialMs
  }

  /** True while the channel is READY with a stream open. */
  get connected(): boolean {
    return this.#connected
  }

  /** Opens the first stream. */
  start(): void {
    this.#startStream()
  }

  /** Writes a request on the open stream; false when there is none (it is sent again on the next stream). */
  send(bytes: Uint8Array): boolean {
    if (this.#call === undefined) return false
    this.#call.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    return true
  }

  /** Ends the stream and the channel; nothing is restarted. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    const call = this.#call
    this.#call = undefined
    this.#connected = false
    call?.cancel()
    this.#client?.close()
    this.#client = undefined
  }

  #channelClient(): GrpcModule.Client {
    this.#client ??= new this.#grpc.Client(this.#server.target, this.#credentials(), {
      // Keep the channel's own reconnect quick: the stream waits for it (waitForReady).
      'grpc.initial_reconnect_backoff_ms': this.#backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': this.#backoff.maxMs,
      // A server gone without closing the connection (a partition, a killed node) is noticed;
      // 5 minutes stays above istiod's keepalive enforcement minimum.
      'grpc.keepalive_time_ms': 300_000,
      'grpc.keepalive_timeout_ms': 20_000,
    })
    return this.#client
  }

  #credentials(): GrpcModule.ChannelCredentials {
    const c = this.#server.credentials
    if (c.type === 'insecure') return this.#grpc.credentials.createInsecure()
    // Read at channel creation: certificates rotated on disk are used by the next channel.
    const read = (file: string | undefined): Buffer | null => (file === undefined ? null : readFileSync(file))
    return this.#grpc.credentials.createSsl(read(c.caCertificateFile), read(c.privateKeyFile), read(c.certificateFile))
  }

  #startStream(): void {
    if (this.#closed) return
    let client: GrpcModule.Client
    try {
      client = this.#channelClient()
    } catch (err) {
      // Unreadable TLS files: tried again after the backoff, as a failed connection would be.
      this.#ended(`cannot create the channel: ${(err as Error).message}`, false)
      return
    }
    const bytes = (b: Buffer): Buffer => b
    const metadata = new this.#grpc.Metadata({ waitForReady: true })
    const call = client.makeBidiStreamRequest(ADS_METHOD, bytes, bytes, metadata, {})
    this.#call = call
    let received = false
    let ended = false
    call.on('data', (message: Buffer) => {
      if (this.#call !== call) return
      received = true
      this.#markConnected(call)
      this.#handler.response(message)
    })
    const end = (reason: string): void => {
      if (ended) return
      ended = true
      if (this.#call !== call) return
      this.#call = undefined
      this.#connected = false
      this.#ended(reason, received)
    }
    call.on('status', (status: GrpcModule.StatusObject) => end(`${this.#grpc.status[status.code] ?? status.code}: ${status.details}`))
    // The status event follows every error; listening keeps an error from being thrown.
    call.on('error', () => undefined)
    this.#handler.streamStarted()
    this.#watchReady(client, call)
  }

  /** Marks the stream connected once the channel reports READY (or a response arrives). */
  #watchReady(client: GrpcModule.Client, call: Call): void {
    const channel = client.getChannel()
    const check = (): void => {
      if (this.#call !== call || this.#closed) return
      const state = channel.getConnectivityState(true)
      if (state === this.#grpc.connectivityState.READY) {
        this.#markConnected(call)
        return
      }
      if (state === this.#grpc.connectivityState.SHUTDOWN) return
      channel.watchConnectivityState(state, Infinity, check)
    }
    check()
  }

  #markConnected(call: Call): void {
    if (this.#connected || this.#call !== call) return
    this.#connected = true
    this.#handler.connected()
  }

  #ended(reason: string, hadResponse: boolean): void {
    if (this.#closed) return
    // TLS credentials are read when a channel is made: a new one picks up rotated files.
    if (this.#server.credentials.type === 'tls' && !hadResponse) {
      this.#client?.close()
      this.#client = undefined
    }
    // gRPC resets the backoff once the stream has received a response.
    if (hadResponse) this.#nextBackoffMs = this.#backoff.initialMs
    const delay = hadResponse ? 0 : this.#jittered(this.#nextBackoffMs)
    if (!hadResponse) this.#nextBackoffMs = Math.min(this.#nextBackoffMs * this.#backoff.multiplier, this.#backoff.maxMs)
    this.#handler.streamEnded(reason, delay)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#startStream()
    }, delay)
    this.#retryTimer.unref()
  }

  #jittered(ms: number): number {
    const j = this.#backoff.jitter
    return Math.round(ms * (1 - j + Math.random() * 2 * j))
  }
}
