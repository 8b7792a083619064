import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { accountRequiredProblem } from '../common/problems.js';

/** Who the caller is; set on the request by {@link AccountGuard}. */
export interface AccountPrincipal {
  accountId: string;
}

const ACCOUNT_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * Stands in for real authentication: the caller names its account in `X-Account-Id`, and the
 * guard puts `{ accountId }` on `req.user`, which `@Idempotent({ scope })` uses as the key scope.
 */
@Injectable()
export class AccountGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown>; user?: AccountPrincipal }>();
    const header = request.headers['x-account-id'];
    const accountId = Array.isArray(header) ? header[0] : header;
    if (typeof accountId !== 'string' || accountId === '') {
      throw accountRequiredProblem('Send the account this request is for in the X-Account-Id header (e.g. "X-Account-Id: acme").');
    }
    if (!ACCOUNT_ID.test(accountId)) {
      throw accountRequiredProblem('X-Account-Id must be 1-64 lower-case letters, digits, "-" or "_".');
    }
    request.user = { accountId };
    return true;
  }
}
