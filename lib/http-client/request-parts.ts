import type { HttpCallOptions, QueryValue } from './http-client.options.js';

const SLASH = 0x2f;

/**
 * The URL of a call: a relative path is appended to the base URL as a string (no URL is parsed
 * per call), an absolute URL is parsed; `target` is the parsed origin for pipelines and telemetry.
 * @internal
 */
export function callUrl(base: URL, prefix: string, path: string, query: HttpCallOptions['query']): { href: string; target: URL } {
  // a path that starts with a slash is relative: the pattern is only tried on the others
  const absolute = path.charCodeAt(0) !== SLASH && /^https?:\/\//i.test(path);
  const target = absolute ? new URL(path) : base;
  let href = absolute ? target.href : joinPath(prefix, path);
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query) as Array<[string, QueryValue]>) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const item of value) params.append(name, String(item));
      else params.append(name, String(value));
    }
    const search = params.toString();
    if (search !== '') href += `${href.includes('?') ? '&' : '?'}${search}`;
  }
  return { href, target };
}

/** The base URL without its trailing slashes: what {@link joinPath} appends paths to (computed once per client). @internal */
export function basePrefix(base: URL): string {
  return base.href.replace(/\/+$/, '');
}

/** `path` appended to the base URL's {@link basePrefix}. @internal */
export function joinPath(prefix: string, path: string): string {
  return path === '' ? prefix : `${prefix}${path.charCodeAt(0) === SLASH ? '' : '/'}${path}`;
}

/** The body as sent: strings and bytes as they are, anything else as JSON (setting its content type). @internal */
export function serializeBody(body: unknown, headers: Record<string, string>): string | Uint8Array | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  headers['content-type'] ??= 'application/json';
  return JSON.stringify(body);
}
