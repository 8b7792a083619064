import { Controller, Get, Param } from '@nestjs/common';
import { AccountsService } from './accounts.service.js';

/** `GET /accounts/:id`: the balance, so a client can check that a duplicate POST was charged once. */
@Controller('accounts')
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Get(':id')
  async get(@Param('id') id: string): Promise<{ id: string; credits: number }> {
    const account = await this.accounts.get(id);
    return { id: account.id, credits: account.credits };
  }
}
