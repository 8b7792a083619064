import { type CanActivate, type ExecutionContext } from '@nestjs/common';
import { ProblemDetailsException } from 'nest-resilience';
import { timingSafeEqual } from 'node:crypto';

/** The one login of the demo console. */
export interface DemoConsoleLogin {
  readonly username: string;
  readonly password: string;
}

/**
 * DEMO ONLY. Lets the resilience console through with one shared login over HTTP Basic
 * authentication (the browser asks for it), so `npm start` has a console that is not wide open.
 * A real service puts its own operator guard there (SSO, a JWT with an admin role, a session),
 * whose request user names who isolated a breaker or switched chaos on.
 */
export class DemoConsoleGuard implements CanActivate {
  constructor(private readonly login: DemoConsoleLogin) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined>; user?: unknown }>();
    const username = this.userOf(request.headers.authorization);
    if (username !== undefined) {
      request.user = { username };
      return true;
    }
    throw new ProblemDetailsException({
      status: 401,
      code: 'console_login_required',
      detail: 'The resilience console of the sample app needs its demo login (see the start-up log).',
      // the browser shows its login box for this realm
      headers: { 'www-authenticate': 'Basic realm="nest-resilience sample console (demo login)", charset="UTF-8"' },
    });
  }

  /** The user name of valid Basic credentials, else `undefined`. */
  private userOf(header: string | string[] | undefined): string | undefined {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''));
    if (match === null) return undefined;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    return same(username, this.login.username) && same(password, this.login.password) ? username : undefined;
  }
}

/** Compares in constant time, so the answer time does not tell how much of a guess was right. */
function same(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
