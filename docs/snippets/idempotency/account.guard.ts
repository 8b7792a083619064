import { Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';

export interface AuthenticatedRequest {
  headers: Record<string, string | string[] | undefined>;
  account: { id: string };
}

/** Stands for your authentication: it puts the caller's account on the request. */
@Injectable()
export class AccountGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const id = request.headers['x-account-id'];
    if (typeof id !== 'string') throw new UnauthorizedException();
    request.account = { id };
    return true;
  }
}
