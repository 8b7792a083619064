import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
import { insufficientCreditsProblem, notFoundProblem } from '../common/problems.js';
import { DEFAULT_SEED_ACCOUNTS, SAMPLE_APP_OPTIONS, type SampleAppOptions } from '../sample-app.options.js';
import { Account } from './account.entity.js';

/** Balances and debits; seeds the demo accounts on start. */
@Injectable()
export class AccountsService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AccountsService.name);

  constructor(
    @InjectRepository(Account) private readonly accounts: Repository<Account>,
    @Inject(SAMPLE_APP_OPTIONS) private readonly options: SampleAppOptions,
  ) {}

  /** Creates the seed accounts that do not exist yet (an existing balance is never reset). */
  async onApplicationBootstrap(): Promise<void> {
    const seeds = Object.entries(this.options.seedAccounts ?? DEFAULT_SEED_ACCOUNTS);
    if (seeds.length === 0) return;
    await this.accounts
      .createQueryBuilder()
      .insert()
      .values(seeds.map(([id, credits]) => ({ id, credits })))
      .orIgnore()
      .execute();
    this.logger.log(`Seed accounts ready: ${seeds.map(([id, credits]) => `${id} (${credits} credits if new)`).join(', ')}`);
  }

  /** The account, or a 404 problem. */
  async get(id: string): Promise<Account> {
    const account = await this.accounts.findOneBy({ id });
    if (!account) throw notFoundProblem('account', id);
    return account;
  }

  /**
   * Takes one credit from `accountId` inside the caller's transaction: one conditional UPDATE, so
   * two concurrent debits can never overdraw. 402 when the balance is 0, 404 when the account is unknown.
   */
  async debitOne(manager: EntityManager, accountId: string): Promise<void> {
    const result = await manager
      .createQueryBuilder()
      .update(Account)
      .set({ credits: () => 'credits - 1' })
      .where('id = :accountId AND credits >= 1', { accountId })
      .execute();
    if (result.affected === 1) return;
    const exists = await manager.existsBy(Account, { id: accountId });
    throw exists ? insufficientCreditsProblem(accountId) : notFoundProblem('account', accountId);
  }
}
