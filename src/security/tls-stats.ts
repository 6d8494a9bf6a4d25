/**
 * Counters of TLS handshakes, named after Envoy's `ssl.*` stats: per side, full handshakes
 * (`ssl.handshake` minus `ssl.session_reused`), resumed ones (`ssl.session_reused`) and
 * connections that failed in or right after the handshake (`ssl.connection_error`, plus
 * clients refused for their certificate). A resumed handshake skips the certificate
 * exchange and its signatures: on this machine a full mTLS handshake costs a few
 * milliseconds of CPU, a resumed one a fraction of that.
 */

/** Handshakes of one side. */
export interface HandshakeStats {
  /** Handshakes that exchanged and verified certificates. */
  readonly full: number
  /** Handshakes that resumed an earlier session (ticket or session id). */
  readonly resumed: number
  /** Connections refused in or right after the handshake. */
  readonly failed: number
}

/** What `mesh.metrics.snapshot().security.tls` reports. */
export interface TlsStats {
  /** The inbound listener (`listener.mtls`). */
  readonly downstream: HandshakeStats
  /** Connections the mesh made to upstreams with `clusters[].tls`. */
  readonly upstream: HandshakeStats
}

class SideCounters {
  full = 0
  resumed = 0
  failed = 0

  /** Counts a finished handshake. */
  handshake(resumed: boolean): void {
    if (resumed) this.resumed++
    else this.full++
  }

  snapshot(): HandshakeStats {
    return { full: this.full, resumed: this.resumed, failed: this.failed }
  }
}

/** The live counters of a mesh. */
export class TlsCounters {
  readonly downstream = new SideCounters()
  readonly upstream = new SideCounters()

  /** True once anything was counted (the exposition skips the families until then). */
  get used(): boolean {
    const d = this.downstream
    const u = this.upstream
    return d.full + d.resumed + d.failed + u.full + u.resumed + u.failed > 0
  }

  snapshot(): TlsStats {
    return { downstream: this.downstream.snapshot(), upstream: this.upstream.snapshot() }
  }

  /**
   * The Prometheus series (`sidecarless_{downstream,upstream}_ssl_handshakes_total{kind="full|resumed"}`
   * and `…_ssl_connection_errors_total`); `serviceLabel` is the registry's `service="…",` prefix.
   */
  prometheus(serviceLabel: string): string[] {
    if (!this.used) return []
    const out: string[] = []
    const svc = serviceLabel === '' ? '' : serviceLabel.slice(0, -1)
    for (const [side, c, noun] of [['downstream', this.downstream, 'inbound (listener.mtls)'], ['upstream', this.upstream, 'upstream (clusters[].tls)']] as const) {
      const hs = `sidecarless_${side}_ssl_handshakes_total`
      out.push(`# HELP ${hs} TLS handshakes of ${noun} connections, by kind: full (certificates exchanged) or resumed (an earlier session).`, `# TYPE ${hs} counter`)
      out.push(`${hs}{${serviceLabel}kind="full"} ${c.full}`, `${hs}{${serviceLabel}kind="resumed"} ${c.resumed}`)
      const err = `sidecarless_${side}_ssl_connection_errors_total`
      out.push(`# HELP ${err} ${noun} connections refused in or right after the TLS handshake.`, `# TYPE ${err} counter`)
      out.push(`${err}${svc === '' ? '' : `{${svc}}`} ${c.failed}`)
    }
    return out
  }
}
