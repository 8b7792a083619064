import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Account } from './account.entity.js';
import { AccountGuard } from './account.guard.js';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';

/** Accounts and their credits, the `X-Account-Id` guard, the seed accounts. */
@Module({
  imports: [TypeOrmModule.forFeature([Account])],
  controllers: [AccountsController],
  providers: [AccountsService, AccountGuard],
  exports: [AccountsService, AccountGuard],
})
export class AccountsModule {}
