import { Injectable, Module, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { ResilienceModule } from 'nest-resilience';
import { ResilienceConsoleModule } from 'nest-resilience/console';

/** Lets only operators through: put your own check here (a role claim, a session, an IP range). */
@Injectable()
export class OperatorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ user?: { roles?: string[] } }>();
    return request.user?.roles?.includes('operator') === true;
  }
}

@Module({
  imports: [
    ResilienceModule.forRoot(),
    ResilienceConsoleModule.register({ path: 'ops/resilience', guard: OperatorGuard }),
  ],
})
export class AppModule {}
