import { Injectable } from '@nestjs/common';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { Idempotent, Retryable, Timeout } from 'nest-resilience';

export interface PlaceOrder {
  readonly orderId: string;
  readonly items: readonly string[];
}

@Injectable()
export class OrdersService {
  async place(order: PlaceOrder) {
    return { orderId: order.orderId, status: 'placed' };
  }
}

// #region gateway
@WebSocketGateway()
export class OrdersGateway {
  constructor(private readonly orders: OrdersService) {}

  @SubscribeMessage('order.place')
  @Idempotent({ key: (order: PlaceOrder) => order.orderId })
  @Timeout(2_000)
  @Retryable({ maxAttempts: 3 })
  place(@MessageBody() order: PlaceOrder) {
    return this.orders.place(order);
  }
}
// #endregion gateway
