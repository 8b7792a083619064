import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { AccountPrincipal } from './account.guard.js';

/** The account id {@link AccountGuard} put on `req.user`. */
export const CurrentAccount = createParamDecorator(
  (_data: unknown, context: ExecutionContext): string =>
    context.switchToHttp().getRequest<{ user: AccountPrincipal }>().user.accountId,
);
