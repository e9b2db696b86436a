/**
 * A minimal HTTP/1.1 client over one kept-alive `node:net` (or `node:tls`) connection, for the
 * sidecar's two calls. Written instead of using `node:http` because the sidecar runs in every
 * sandbox Pod and its memory is measured against a bare Node process: node:http's client and
 * server together cost ~10 MB of RSS, raw sockets ~4 MB (see `bench/sidecar.ts`).
 *
 * Scope, deliberately small: one request at a time per connection (a second concurrent request
 * opens its own), request bodies with Content-Length, response bodies framed by Content-Length,
 * chunked transfer coding, or the connection's end. No redirects, no compression (we send no
 * Accept-Encoding), no pipelining. A connection is reused when the response allowed it.
 */
import type { Socket } from 'node:net';

export interface Http1Response {
  readonly status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

/** The connection failed or closed before a whole response arrived. */
export class Http1ConnectionError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'Http1ConnectionError';
    this.code = code;
  }
}

/** No whole response within the deadline. */
export class Http1TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Http1TimeoutError';
  }
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** Parse status line + headers; undefined until the blank line has arrived. */
export function parseHead(buf: Buffer): { status: number; headers: Map<string, string>; bodyStart: number } | undefined {
  const end = buf.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Http1ConnectionError(`malformed status line ${JSON.stringify(lines[0]?.slice(0, 40))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers, bodyStart: end + HEADER_END.length };
}

/**
 * Decode a chunked body starting at `from`. Returns the body and where the message ends, or
 * undefined while more bytes are needed.
 */
export function decodeChunked(buf: Buffer, from: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buf.subarray(at, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) throw new Http1ConnectionError('malformed chunk size');
    at = lineEnd + CRLF.length;
    if (size === 0) {
      // Optional trailer fields, then an empty line.
      if (buf.length < at + CRLF.length) return undefined;
      if (buf[at] === 13 && buf[at + 1] === 10) return { body: Buffer.concat(parts), end: at + CRLF.length };
      const trailersEnd = buf.indexOf(HEADER_END, at - CRLF.length);
      return trailersEnd < 0 ? undefined : { body: Buffer.concat(parts), end: trailersEnd + HEADER_END.length };
    }
    if (buf.length < at + size + CRLF.length) return undefined;
    parts.push(buf.subarray(at, at + size));
    at += size + CRLF.length;
  }
}

type Connect = () => Socket;

export class Http1Client {
  readonly #host: string;
  readonly #connect: Connect;
  #idle: Socket | undefined;

  /**
   * `origin`: `http://host:port` or `https://host:port` (TLS loaded only then). `ca` replaces the
   * trusted roots (tests); by default Node's roots plus `NODE_EXTRA_CA_CERTS` are trusted.
   */
  constructor(origin: URL, options: { ca?: string } = {}) {
    const secure = origin.protocol === 'https:';
    const host = origin.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(origin.port || (secure ? 443 : 80));
    this.#host = origin.host;
    const net = process.getBuiltinModule('node:net');
    if (secure) {
      const tls = process.getBuiltinModule('node:tls');
      // SNI carries host names only (RFC 6066); the certificate is still checked against an IP.
      const servername = net.isIP(host) ? undefined : host;
      this.#connect = () => tls.connect({ host, port, ...(servername ? { servername } : {}), ...(options.ca ? { ca: options.ca } : {}), ALPNProtocols: ['http/1.1'] });
    } else {
      this.#connect = () => net.connect({ host, port });
    }
  }

  /** Send one request; resolves with the whole response, whatever its status. */
  request(method: string, target: string, headers: Readonly<Record<string, string>>, body: string | undefined, timeoutMs: number): Promise<Http1Response> {
    const socket = this.#takeIdle() ?? this.#connect();
    const payload = body === undefined ? undefined : Buffer.from(body);
    let head = `${method} ${target} HTTP/1.1\r\nhost: ${this.#host}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    head += `content-length: ${payload?.length ?? 0}\r\n\r\n`;
    return new Promise<Http1Response>((resolve, reject) => {
      let buf: Buffer = Buffer.alloc(0);
      let settled = false;
      const finish = (err: Error | undefined, res?: Http1Response, reusable = false): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.off('end', onEnd);
        if (err) {
          socket.destroy();
          reject(err);
          return;
        }
        if (reusable) this.#keep(socket);
        else socket.destroy();
        resolve(res!);
      };
      /** Try to complete the response from what has arrived; `ended`: the peer closed. */
      const attempt = (ended: boolean): void => {
        const parsed = parseHead(buf);
        if (!parsed) {
          if (ended) finish(new Http1ConnectionError('connection closed before a response', 'ECONNRESET'));
          return;
        }
        const { status, headers: h, bodyStart } = parsed;
        const keepAlive = (h.get('connection') ?? '').toLowerCase() !== 'close';
        const done = (bodyBytes: Buffer, reusable: boolean): void => finish(undefined, { status, headers: h, body: bodyBytes.toString('utf8') }, reusable && keepAlive && !ended);
        if (status === 204 || status === 304) return done(Buffer.alloc(0), true);
        if ((h.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
          const chunked = decodeChunked(buf, bodyStart);
          if (chunked) done(chunked.body, chunked.end === buf.length);
          else if (ended) finish(new Http1ConnectionError('connection closed inside a chunked body', 'ECONNRESET'));
          return;
        }
        const length = h.get('content-length');
        if (length !== undefined) {
          const n = Number(length);
          if (buf.length - bodyStart >= n) done(buf.subarray(bodyStart, bodyStart + n), buf.length === bodyStart + n);
          else if (ended) finish(new Http1ConnectionError('connection closed inside the body', 'ECONNRESET'));
          return;
        }
        // No framing: the body runs to the end of the connection.
        if (ended) done(buf.subarray(bodyStart), false);
      };
      const onData = (chunk: Buffer): void => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        try {
          attempt(false);
        } catch (err) {
          finish(err as Error);
        }
      };
      const onEnd = (): void => {
        try {
          attempt(true);
        } catch (err) {
          finish(err as Error);
        }
      };
      const onError = (err: NodeJS.ErrnoException): void => finish(new Http1ConnectionError(err.code ?? err.message, err.code));
      const onClose = (): void => onEnd();
      const timer = setTimeout(() => finish(new Http1TimeoutError(`no response within ${timeoutMs} ms`)), timeoutMs);
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('end', onEnd);
      socket.on('close', onClose);
      socket.write(payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : head);
    });
  }

  close(): void {
    this.#idle?.destroy();
    this.#idle = undefined;
  }

  #takeIdle(): Socket | undefined {
    const s = this.#idle;
    this.#idle = undefined;
    if (!s || s.destroyed) return undefined;
    s.removeAllListeners('error').removeAllListeners('close').removeAllListeners('end');
    s.ref();
    return s;
  }

  /** Park a socket for the next request; an idle socket neither keeps the process alive nor leaks errors. */
  #keep(socket: Socket): void {
    if (this.#idle && this.#idle !== socket) {
      socket.destroy();
      return;
    }
    this.#idle = socket;
    socket.unref();
    const drop = (): void => {
      if (this.#idle === socket) this.#idle = undefined;
      socket.destroy();
    };
    socket.once('error', drop).once('end', drop).once('close', drop);
  }
}
