// nest-resilience console page: plain browser JavaScript, served by ResilienceConsoleModule with the
// page (no CDN, no build step). It reads the JSON endpoints next to the page and follows the
// Server-Sent Events stream; every request carries the page's own credentials (cookie, Basic auth).
// @ts-check
'use strict';

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const MAX_EVENTS = 200;
  /** @type {Map<string, HTMLElement>} */
  const cards = new Map();
  let lastState = /** @type {any} */ (undefined);

  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

  /**
   * A new element with attributes (`data-*`, `class`, `text`) and children.
   * @param {string} tag @param {Record<string, unknown>} [attributes] @param {...(Node | string | undefined | false)} children
   */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name === 'class') node.className = String(value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) if (child !== undefined && child !== false) node.append(child);
    return node;
  }

  /** @param {number | undefined} ms */
  function duration(ms) {
    if (ms === undefined || ms === null) return '';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  }

  /** @param {number} value */
  const percent = (value) => `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)} %`;
  /** @param {number} at */
  const clock = (at) => new Date(at).toLocaleTimeString([], { hour12: false });
  const stateLabel = (/** @type {string} */ state) => state.replace('_', '-');

  /** POSTs `body` as JSON to `path` (relative to the page); throws with the problem's detail. */
  async function send(/** @type {string} */ method, /** @type {string} */ path, /** @type {unknown} */ body) {
    const response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : undefined;
    if (!response.ok) throw new Error(parsed?.detail ?? parsed?.message ?? `${response.status} ${response.statusText}`);
    return parsed;
  }

  // ── breakers ─────────────────────────────────────────────────────────────────────────────

  /** A sparkline of the breaker's calls, failures and refusals per sample. */
  function sparkline(/** @type {{ calls: number[], failures: number[], rejected: number[] }} */ history) {
    const svg = document.createElementNS(SVG, 'svg');
    const samples = Math.max(2, history.calls.length);
    svg.setAttribute('viewBox', `0 0 ${samples - 1} 40`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('role', 'img');
    const peak = Math.max(1, ...history.calls, ...history.rejected);
    svg.setAttribute('aria-label', `peak ${peak} calls per sample`);
    for (const series of /** @type {const} */ (['calls', 'rejected', 'failures'])) {
      const values = history[series];
      if (values.length === 0) continue;
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', series);
      const offset = samples - values.length;
      line.setAttribute('points', values.map((value, index) => `${index + offset},${(39 - (value / peak) * 37).toFixed(1)}`).join(' '));
      svg.append(line);
    }
    return svg;
  }

  function breakerCard(/** @type {any} */ breaker) {
    const card = el(
      'article',
      { class: 'card', 'data-breaker': breaker.key },
      el('header', {}, el('span', { class: 'key mono', text: breaker.key }), el('span', { class: 'state' })),
      el('div', { class: 'facts' }),
      el('div', { class: 'fleet', hidden: true }),
      el('div', { class: 'spark-slot' }),
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', class: 'danger', 'data-action': 'isolate', text: 'Isolate' }),
        el('button', { type: 'button', 'data-action': 'reset', text: 'Reset' }),
      ),
    );
    card.addEventListener('click', async (event) => {
      const button = /** @type {HTMLElement} */ (event.target).closest('button');
      if (!button) return;
      const action = button.getAttribute('data-action');
      const verb = action === 'isolate' ? 'Isolate' : 'Reset';
      if (action === 'isolate' && !window.confirm(`${verb} ${breaker.key}? Every call fails fast until someone resets it.`)) return;
      /** @type {HTMLButtonElement} */ (button).disabled = true;
      try {
        await send('POST', `api/breakers/${action}`, { key: breaker.key });
      } catch (error) {
        window.alert(`${verb} failed: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        /** @type {HTMLButtonElement} */ (button).disabled = false;
      }
    });
    return card;
  }

  function renderBreakers(/** @type {any[]} */ breakers) {
    const container = $('breakers');
    $('breakers-count').textContent = breakers.length ? `(${breakers.length})` : '';
    if (breakers.length === 0) {
      cards.clear();
      container.replaceChildren(el('p', { class: 'empty', text: 'No circuit breaker yet: breakers appear with their first call.' }));
      return;
    }
    container.querySelector(':scope > .empty')?.remove();
    const seen = new Set();
    for (const breaker of breakers) {
      seen.add(breaker.key);
      let card = cards.get(breaker.key);
      if (!card) {
        card = breakerCard(breaker);
        cards.set(breaker.key, card);
      }
      container.append(card);
      card.setAttribute('data-state', breaker.state);
      const state = /** @type {HTMLElement} */ (card.querySelector('.state'));
      state.setAttribute('data-state', breaker.state);
      state.textContent = stateLabel(breaker.state);
      const facts = [
        el('span', {}, 'failure rate ', el('b', { text: percent(breaker.failureRate) })),
        el('span', {}, 'judged ', el('b', { text: String(breaker.bufferedCalls) })),
        breaker.notPermittedCalls > 0 && el('span', {}, 'refused ', el('b', { text: String(breaker.notPermittedCalls) })),
        breaker.retryAfterMs !== undefined && el('span', {}, 'half-open in ', el('b', { text: duration(breaker.retryAfterMs) })),
        breaker.shared && el('span', { text: 'shared' }),
      ];
      /** @type {HTMLElement} */ (card.querySelector('.facts')).replaceChildren(...facts.filter((fact) => fact !== false));
      const fleet = /** @type {HTMLElement} */ (card.querySelector('.fleet'));
      fleet.hidden = breaker.fleet === undefined;
      if (breaker.fleet !== undefined) {
        fleet.textContent = breaker.fleet.available
          ? `fleet: ${breaker.fleet.state}${breaker.fleet.state === 'open' ? `, ${duration(breaker.fleet.remainingMs)} left (${breaker.fleet.reason ?? 'opened'})` : ''}, opens in a row ${breaker.fleet.opens}`
          : 'fleet: shared state unreachable, this instance decides alone';
      }
      /** @type {HTMLElement} */ (card.querySelector('.spark-slot')).replaceChildren(sparkline(breaker.history));
    }
    for (const [key, card] of cards) {
      if (!seen.has(key)) {
        card.remove();
        cards.delete(key);
      }
    }
  }

  // ── bulkheads, budgets, HTTP clients ────────────────────────────────────────────────────

  /** A gauge of `used` out of `capacity`: amber from 80 %, red when full. */
  function bar(/** @type {number} */ used, /** @type {number} */ capacity, /** @type {string} */ kind = '') {
    const share = capacity > 0 ? Math.min(1, used / capacity) : used > 0 ? 1 : 0;
    return meter(share, share >= 1 ? 'full' : share >= 0.8 ? 'high' : 'ok', kind);
  }

  /** What is left of `allowance`: green while plenty is, amber under half, red under a fifth. */
  function remainingBar(/** @type {number} */ left, /** @type {number} */ allowance) {
    const share = allowance > 0 ? Math.max(0, Math.min(1, left / allowance)) : 0;
    return meter(share, share < 0.2 ? 'full' : share < 0.5 ? 'high' : 'ok', 'budget');
  }

  function meter(/** @type {number} */ share, /** @type {string} */ level, /** @type {string} */ kind) {
    const fill = el('span');
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    return el('div', { class: `bar ${kind}`, 'data-level': level }, fill);
  }

  function renderBulkheads(/** @type {any[]} */ bulkheads) {
    if (bulkheads.length === 0) return $('bulkheads').replaceChildren(el('p', { class: 'empty', text: 'No bulkhead yet.' }));
    $('bulkheads').replaceChildren(
      ...bulkheads.map((bulkhead) =>
        el(
          'div',
          { class: 'gauge', 'data-bulkhead': bulkhead.key },
          el('div', { class: 'label' }, el('span', { class: 'key mono', text: bulkhead.key }), el('span', { class: 'value', text: `${bulkhead.active} / ${bulkhead.maxConcurrent} running, ${bulkhead.queued} / ${bulkhead.maxQueue} queued` })),
          bar(bulkhead.active, bulkhead.maxConcurrent),
          bulkhead.maxQueue > 0 && bar(bulkhead.queued, bulkhead.maxQueue, 'queue'),
        ),
      ),
    );
  }

  function renderBudgets(/** @type {any[]} */ budgets) {
    if (budgets.length === 0) return $('budgets').replaceChildren(el('p', { class: 'empty', text: 'No retry budget yet.' }));
    $('budgets').replaceChildren(
      ...budgets.map((budget) => {
        const fleet = budget.fleet;
        return el(
          'div',
          { class: 'gauge', 'data-budget': budget.key },
          el(
            'div',
            { class: 'label' },
            el('span', { class: 'key mono', text: budget.key }),
            el('span', { class: 'value', text: `${budget.remaining} retries left · ${budget.retries} retries / ${budget.calls} calls in ${duration(budget.window)}` }),
          ),
          remainingBar(budget.remaining, Math.max(1, Math.floor(budget.allowance))),
          fleet !== undefined &&
            el('div', {
              class: 'fleet',
              text: fleet.available ? `fleet: ${fleet.remaining} retries left · ${fleet.retries} retries / ${fleet.calls} calls` : 'fleet: shared state unreachable, this instance decides alone',
            }),
        );
      }),
    );
  }

  function renderClients(/** @type {any[]} */ clients) {
    if (clients.length === 0) return $('clients').replaceChildren(el('p', { class: 'empty', text: 'No HTTP client (ResilientHttpModule) in this application.' }));
    $('clients').replaceChildren(
      ...clients.map((client) =>
        el(
          'div',
          { 'data-client': client.name },
          el('div', { class: 'client-name' }, `${client.name} `, el('span', { class: 'mono', text: client.baseUrl })),
          el(
            'table',
            {},
            el('thead', {}, el('tr', {}, ...['origin', 'breaker', 'Retry-After pause', 'rate limit'].map((title) => el('th', { text: title })))),
            el(
              'tbody',
              {},
              ...(client.origins.length === 0
                ? [el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'Not called yet.' }))]
                : client.origins.map((/** @type {any} */ origin) =>
                    el(
                      'tr',
                      { 'data-origin': origin.origin },
                      el('td', { class: 'mono', text: origin.origin }),
                      el('td', {}, origin.breaker ? el('span', { class: 'state', 'data-state': origin.breaker.state, text: stateLabel(origin.breaker.state) }) : '–'),
                      el('td', {}, origin.pausedForMs ? el('span', { class: 'paused', text: `paused, ${duration(origin.pausedForMs)} left` }) : '–'),
                      el(
                        'td',
                        {},
                        ...(origin.rateLimit
                          ? [bar(Math.max(0, origin.rateLimit.tokens), origin.rateLimit.burst), `${Math.max(0, Math.floor(origin.rateLimit.tokens))} / ${origin.rateLimit.burst} tokens, ${origin.rateLimit.requestsPerSecond}/s`]
                          : ['–']),
                      ),
                    ),
                  )),
            ),
          ),
        ),
      ),
    );
  }

  // ── chaos ────────────────────────────────────────────────────────────────────────────────

  function describeTarget(/** @type {Record<string, string>} */ target) {
    return Object.entries(target).map(([kind, value]) => `${kind} ${value}`).join(', ');
  }

  function describeFault(/** @type {any} */ fault) {
    if (fault.kind === 'latency') return `latency ${duration(fault.ms)}`;
    if (fault.kind === 'http') {
      const headers = Object.entries(fault.headers ?? {}).map(([name, value]) => `${name}: ${value}`);
      return `HTTP ${fault.status}${headers.length ? ` (${headers.join(', ')})` : ''}`;
    }
    return `exception ${fault.error ?? ''}`.trim();
  }

  function renderChaos(/** @type {any} */ chaos, /** @type {any} */ state) {
    $('chaos-off').hidden = chaos.enabled;
    $('chaos-on').hidden = !chaos.enabled;
    const active = chaos.rules.filter((/** @type {any} */ rule) => rule.enabled);
    const badge = $('chaos-badge');
    badge.hidden = active.length === 0;
    badge.textContent = `CHAOS ON · ${active.length} rule${active.length === 1 ? '' : 's'}`;
    if (!chaos.enabled) return;
    const rows = chaos.rules.map((/** @type {any} */ rule) =>
      el(
        'tr',
        { 'data-rule': rule.id, 'data-enabled': String(rule.enabled) },
        el('td', { class: 'mono', text: rule.id }),
        el('td', { text: describeTarget(rule.target) }),
        el('td', { text: describeFault(rule.fault) }),
        el('td', { text: percent(rule.rate) }),
        el('td', { text: String(rule.injected) }),
        el(
          'td',
          {},
          el('button', { type: 'button', 'data-action': rule.enabled ? 'off' : 'on', text: rule.enabled ? 'Switch off' : 'Switch on' }),
          ' ',
          el('button', { type: 'button', class: 'danger', 'data-action': 'remove', text: 'Remove' }),
        ),
      ),
    );
    $('rules').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 6, class: 'empty', text: 'No chaos rule. Add one below.' }))]));
    const names = new Set([
      ...state.breakers.map((/** @type {any} */ b) => b.key),
      ...state.bulkheads.map((/** @type {any} */ b) => b.key),
      ...state.budgets.map((/** @type {any} */ b) => b.key),
      ...state.httpClients.map((/** @type {any} */ c) => c.name),
      ...(chaos.targets ?? []),
    ]);
    $('chaos-targets').replaceChildren(...[...names].sort().map((name) => el('option', { value: name })));
  }

  $('rules').addEventListener('click', async (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('button');
    const row = button?.closest('tr');
    if (!button || !row) return;
    const id = row.getAttribute('data-rule');
    const action = button.getAttribute('data-action');
    const rule = lastState?.chaos.rules.find((/** @type {any} */ r) => r.id === id);
    try {
      if (action === 'remove') await send('DELETE', `api/chaos/rules/${encodeURIComponent(String(id))}`);
      else if (rule) await send('POST', 'api/chaos/rules', { id: rule.id, target: rule.target, fault: rule.fault, rate: rule.rate, enabled: action === 'on' });
    } catch (error) {
      window.alert(error instanceof Error ? error.message : String(error));
    }
  });

  const form = /** @type {HTMLFormElement} */ ($('chaos-form'));
  form.elements.namedItem('faultKind')?.addEventListener('change', () => {
    const kind = /** @type {HTMLSelectElement} */ (form.elements.namedItem('faultKind')).value;
    for (const label of form.querySelectorAll('[data-fault]')) /** @type {HTMLElement} */ (label).hidden = label.getAttribute('data-fault') !== kind;
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const kind = String(data.get('faultKind'));
    const fault =
      kind === 'latency'
        ? { kind, ms: Number(data.get('ms')) }
        : kind === 'http'
          ? { kind, status: Number(data.get('status')), headers: Number(data.get('retryAfter')) > 0 ? { 'retry-after': String(data.get('retryAfter')) } : {} }
          : { kind };
    const error = $('chaos-error');
    try {
      await send('POST', 'api/chaos/rules', { target: { [String(data.get('targetKind'))]: String(data.get('targetValue')).trim() }, fault, rate: Number(data.get('rate')) });
      error.hidden = true;
    } catch (failure) {
      error.hidden = false;
      error.textContent = failure instanceof Error ? failure.message : String(failure);
    }
  });

  // ── events and actions ───────────────────────────────────────────────────────────────────

  function eventItem(/** @type {any} */ event) {
    return el(
      'li',
      { 'data-event': event.event, 'data-level': event.level, 'data-chaos': event.chaos ? 'true' : undefined },
      el('time', { datetime: new Date(event.at).toISOString(), text: clock(event.at) }),
      el('span', { class: 'name', text: event.event }),
      el('span', { text: event.msg }),
    );
  }

  function auditItem(/** @type {any} */ entry) {
    return el(
      'li',
      { 'data-action': entry.action },
      el('time', { datetime: new Date(entry.at).toISOString(), text: clock(entry.at) }),
      el('span', { class: 'name', text: entry.actor }),
      el('span', { text: entry.summary }),
    );
  }

  /** Adds items at the top of `list`, keeping at most MAX_EVENTS. */
  function prepend(/** @type {HTMLElement} */ list, /** @type {HTMLElement[]} */ items) {
    list.querySelector(':scope > .empty')?.remove();
    list.prepend(...items);
    while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
  }

  // ── state and live stream ────────────────────────────────────────────────────────────────

  function render(/** @type {any} */ state) {
    lastState = state;
    $('instance').textContent = `${state.instance.hostname} · pid ${state.instance.pid}${state.sharedState.configured ? ` · shared state ${state.sharedState.available ? 'up' : 'DOWN'}` : ''}`;
    renderBreakers(state.breakers);
    renderBulkheads(state.bulkheads);
    renderBudgets(state.budgets);
    renderClients(state.httpClients);
    renderChaos(state.chaos, state);
    // a read-only console shows no action it would refuse
    for (const control of document.querySelectorAll('.actions button, #rules button, #chaos-form button')) /** @type {HTMLButtonElement} */ (control).disabled = state.readOnly;
    $('chaos-form').hidden = state.readOnly;
    document.body.setAttribute('data-generated-at', String(state.generatedAt));
  }

  async function start() {
    const [state, events, audit] = await Promise.all([send('GET', 'api/state'), send('GET', 'api/events'), send('GET', 'api/audit')]);
    render(state);
    if (events.length === 0) $('events').replaceChildren(el('li', { class: 'empty', text: 'No event yet.' }));
    else prepend($('events'), events.map(eventItem).reverse());
    if (audit.length > 0) prepend($('audit'), audit.map(auditItem).reverse());
    let lastEvent = events.length ? events[events.length - 1].seq : 0;
    let lastAudit = audit.length ? audit[audit.length - 1].seq : 0;

    const link = $('link');
    const stream = new EventSource('api/stream', { withCredentials: true });
    stream.addEventListener('open', () => {
      link.setAttribute('data-status', 'live');
      link.textContent = 'live';
    });
    stream.addEventListener('error', () => {
      link.setAttribute('data-status', 'reconnecting');
      link.textContent = 'reconnecting…';
    });
    stream.addEventListener('state', (message) => render(JSON.parse(message.data)));
    stream.addEventListener('event', (message) => {
      const event = JSON.parse(message.data);
      if (event.seq <= lastEvent) return;
      lastEvent = event.seq;
      prepend($('events'), [eventItem(event)]);
    });
    stream.addEventListener('audit', (message) => {
      const entry = JSON.parse(message.data);
      if (entry.seq <= lastAudit) return;
      lastAudit = entry.seq;
      prepend($('audit'), [auditItem(entry)]);
    });
  }

  start().catch((error) => {
    const link = $('link');
    link.setAttribute('data-status', 'reconnecting');
    link.textContent = `failed to load: ${error instanceof Error ? error.message : String(error)}`;
  });
})();
