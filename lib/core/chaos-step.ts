// The injection stage of runtime chaos (see fault-injection.ts for the rules and their control):
// it runs innermost in a pipeline and puts the fired faults in the work's place.
import { followContext } from './cancellation.js';
import { abortErrorOf } from './classify.js';
import { retryAfterMsOf } from './retry-after.js';
import type { TimerHandle } from './clock.js';
import { errorTypeOf } from './events.js';
import { InjectedFaultError, markInjectedFault } from './injected-fault.js';
import type { PolicyContext } from './policy.js';
import type { Settle, Step, Work } from './step.js';
import { UpstreamHttpError } from './upstream-http.error.js';
import { routeMatches, type ChaosControl, type ChaosHttpFault, type HeldRuleRef, type PipelineChaos } from './fault-injection.js';

/** Where an injected HTTP fault rides to a work that answers it itself. */
const CHAOS_ANSWER: unique symbol = Symbol('nest-resilience.chaos-answer');

/**
 * The HTTP fault a chaos rule injected into this attempt, for a work that answers it itself
 * (`PipelineChaos.answersInWork`): an `HttpClient` treats it as the origin's answer.
 * @internal
 */
export function chaosAnswerOf(context: PolicyContext): ChaosHttpFault | undefined {
  return (context as { readonly [CHAOS_ANSWER]?: ChaosHttpFault })[CHAOS_ANSWER];
}

/** `context` carrying `fault` (it keeps the token, signal and deadline it derives from). */
function withChaosAnswer(context: PolicyContext, fault: ChaosHttpFault): PolicyContext {
  const derived = Object.create(context) as PolicyContext & { [CHAOS_ANSWER]: ChaosHttpFault };
  derived[CHAOS_ANSWER] = fault;
  return derived;
}

/**
 * The injection stage, innermost in a pipeline (between the attempt timeout and the work): each
 * attempt draws, per matching rule, whether the rule fires; fired latencies run first (within the
 * attempt), then the first fired exception or HTTP fault takes the work's place. So the faults go
 * through the real policies: a retry retries them, a breaker counts them, a fallback answers them.
 * @internal
 */
export class ChaosStep implements Step {
  private seen = -1;
  private rules: readonly HeldRuleRef[] = [];
  /** Whether some of `rules` name a route, to be checked against each call's route. */
  private byRoute = false;
  /** Whether the route of this pipeline was noted for the suggestions (on its first call). */
  private routeNoted: boolean;

  constructor(private readonly chaos: PipelineChaos) {
    chaos.control.noteSite(chaos.site);
    this.routeNoted = chaos.routeOf === undefined;
  }

  run(next: Work, context: PolicyContext, settle: Settle): void {
    const { control } = this.chaos;
    if (control.version !== this.seen) this.refresh(control);
    if (!this.routeNoted) this.noteRoute();
    if (this.rules.length === 0) {
      next(context, settle);
      return;
    }
    this.inject(this.byRoute ? this.forThisCall(this.rules) : this.rules, next, context, settle);
  }

  private refresh(control: ChaosControl): void {
    const { site, routeOf } = this.chaos;
    this.rules = control.matching(site, routeOf !== undefined);
    this.byRoute = routeOf !== undefined && this.rules.some((held) => held.rule.target.route !== undefined);
    this.seen = control.version;
  }

  /** The rules that apply to the call being served: those naming a route only when it is the call's. */
  private forThisCall(rules: readonly HeldRuleRef[]): readonly HeldRuleRef[] {
    const route = this.chaos.routeOf!();
    return rules.filter((held) => held.rule.target.route === undefined || routeMatches(held.rule.target.route, route));
  }

  private noteRoute(): void {
    this.routeNoted = true;
    const route = this.chaos.routeOf!();
    if (route !== undefined) this.chaos.control.noteSite({ ...this.chaos.site, route });
  }

  private inject(rules: readonly HeldRuleRef[], next: Work, context: PolicyContext, settle: Settle): void {
    if (rules.length === 0) {
      next(context, settle);
      return;
    }
    const { control, site } = this.chaos;
    const { events } = control.environment;
    let latency = 0;
    let failure: HeldRuleRef | undefined;
    for (const held of rules) {
      const { fault } = held.rule;
      if (fault.kind !== 'latency' && failure !== undefined) continue;
      if (!control.fires(held.rule.rate)) continue;
      held.injected++;
      if (fault.kind === 'latency') {
        latency += fault.ms;
        events({ event: 'fault_injected', policy: site.policy, attempt: context.attempt, outcome: 'latency', delayMs: fault.ms, detail: `rule ${held.rule.id}`, chaos: true });
      } else {
        failure = held;
      }
    }
    const work: Work = failure === undefined ? next : (inner, innerSettle) => this.fail(failure.rule, next, inner, innerSettle);
    if (latency === 0) {
      work(context, settle);
      return;
    }
    this.delay(latency, work, context, settle);
  }

  /** Settles the attempt with the rule's fault (and emits `fault_injected`); `next` only answers an HTTP fault it is handed. */
  private fail(rule: HeldRuleRef['rule'], next: Work, context: PolicyContext, settle: Settle): void {
    const { control, site } = this.chaos;
    const { events } = control.environment;
    const { fault } = rule;
    if (fault.kind === 'http') {
      events({ event: 'fault_injected', policy: site.policy, attempt: context.attempt, outcome: 'http', status: fault.status, detail: `rule ${rule.id}`, chaos: true });
      const marked: Settle = (failed, outcome) => settle(failed, failed ? markInjectedFault(outcome) : outcome);
      if (this.chaos.answersInWork === true) next(withChaosAnswer(context, fault), marked);
      else marked(true, httpFaultError(fault, control.environment.clock.now()));
      return;
    }
    if (fault.kind !== 'exception') return;
    let error: unknown;
    try {
      error = fault.error === undefined ? new InjectedFaultError(rule.id, site.policy) : fault.error instanceof Error ? fault.error : fault.error(site);
    } catch (thrown) {
      // a factory that throws injects what it threw
      error = thrown;
    }
    events({ event: 'fault_injected', policy: site.policy, attempt: context.attempt, outcome: 'exception', errorType: errorTypeOf(error), detail: `rule ${rule.id}`, chaos: true });
    settle(true, markInjectedFault(error));
  }

  /** Waits `ms` on the clock, then runs `work`; the attempt's abort (timeout, caller) ends the wait. */
  private delay(ms: number, work: Work, context: PolicyContext, settle: Settle): void {
    const { clock } = this.chaos.control.environment;
    const { token, done } = followContext(context, settle);
    if (token.aborted) {
      done(true, abortErrorOf(token));
      return;
    }
    let timer: TimerHandle | undefined;
    const stop = token.onAbort(() => {
      clock.clearTimeout(timer);
      done(true, abortErrorOf(token));
    });
    timer = clock.setTimeout(() => {
      stop();
      work(context, done);
    }, ms);
  }
}

/** A route's or method's injected HTTP answer: the `UpstreamHttpError` the answer makes. */
function httpFaultError(fault: ChaosHttpFault, now: number): UpstreamHttpError {
  const headers = fault.headers ?? {};
  const retryAfterMs = retryAfterMsOf({ headers }, now);
  return new UpstreamHttpError(fault.status, { headers, ...(fault.body === undefined ? {} : { body: fault.body }), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
}
