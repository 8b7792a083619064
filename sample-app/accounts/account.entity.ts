import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** A customer account; every report costs one credit. */
@Entity({ name: 'accounts' })
export class Account {
  /** Account id, sent by clients in the `X-Account-Id` header. */
  @PrimaryColumn({ type: 'varchar', length: 64 })
  id!: string;

  /** Credits left; never negative. */
  @Column({ type: 'integer' })
  credits!: number;

  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;
}
