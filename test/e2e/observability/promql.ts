// Just enough PromQL reading to list what an expression refers to: metric names, the label
// matchers on each, and the labels it groups by. Not a parser: promtool checks the syntax.

/** One label matcher of a selector. */
export interface LabelMatcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

/** One metric an expression selects, with its matchers. */
export interface MetricSelector {
  readonly metric: string;
  readonly matchers: readonly LabelMatcher[];
}

/** What a PromQL expression refers to. */
export interface PromQlReferences {
  readonly selectors: readonly MetricSelector[];
  /** Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`. */
  readonly groupingLabels: readonly string[];
}

/** Functions, aggregations and keywords: never metric names. */
const NOT_METRICS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'predict_linear', 'resets', 'changes',
  'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'last_over_time', 'present_over_time', 'quantile_over_time',
  'histogram_quantile', 'abs', 'ceil', 'floor', 'round', 'clamp', 'clamp_min', 'clamp_max', 'vector', 'scalar', 'absent', 'absent_over_time',
  'label_replace', 'label_join', 'sort', 'sort_desc', 'time', 'timestamp',
  'and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right',
]);

const IDENTIFIER = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;

/** Grafana's built-in and dashboard variables, replaced by values PromQL accepts. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{?([a-zA-Z_]\w*)\}?/g, '.*');
}

/** The metrics, matchers and grouping labels `expr` refers to. */
export function referencesOf(expr: string): PromQlReferences {
  const source = withoutGrafanaVariables(expr);
  const selectors: MetricSelector[] = [];
  const groupingLabels: string[] = [];
  let rest = '';
  let index = 0;
  while (index < source.length) {
    const char = source[index]!;
    if (char === '"' || char === "'") {
      // a string outside a selector (label_replace arguments): skipped
      index = endOfString(source, index);
      rest += ' ';
      continue;
    }
    if (char === '[') {
      index = source.indexOf(']', index) + 1;
      rest += ' ';
      continue;
    }
    if (char === '{') {
      const end = endOfBraces(source, index);
      const before = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(rest);
      const matchers = matchersOf(source.slice(index + 1, end));
      if (before !== null && !NOT_METRICS.has(before[1]!)) {
        rest = rest.slice(0, before.index);
        selectors.push({ metric: before[1]!, matchers });
      } else {
        // `{__name__=~"…"}` or a selector without a name
        selectors.push({ metric: '', matchers });
      }
      rest += ' ';
      index = end + 1;
      continue;
    }
    rest += char;
    index++;
  }
  // grouping clauses: their labels are not metrics
  const withoutGrouping = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_whole, _keyword: string, labels: string) => {
    groupingLabels.push(...labels.split(',').map((label) => label.trim()).filter(Boolean));
    return ' ';
  });
  // bare metric names: identifiers that are not functions, keywords or numbers with units
  for (let at = 0; at < withoutGrouping.length; ) {
    IDENTIFIER.lastIndex = at;
    const match = IDENTIFIER.exec(withoutGrouping);
    const previous = at === 0 ? '' : withoutGrouping[at - 1]!;
    if (match === null || /[0-9.]/.test(previous)) {
      at++;
      continue;
    }
    const name = match[0];
    const next = withoutGrouping.slice(at + name.length).trimStart()[0];
    if (!NOT_METRICS.has(name) && next !== '(') selectors.push({ metric: name, matchers: [] });
    at += name.length;
  }
  return { selectors, groupingLabels };
}

/**
 * The references of a Grafana variable query: `label_values(<selector>, <label>)` selects a metric
 * and reads one of its labels; anything else is an ordinary expression.
 */
export function variableReferencesOf(query: string): PromQlReferences & { readonly readsLabel?: string } {
  const match = /^\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*$/.exec(query);
  if (match === null) return referencesOf(query);
  return { ...referencesOf(match[1]!), readsLabel: match[2]! };
}

/** The values a matcher accepts, when it is an exact value or an alternation of exact values. */
export function exactValuesOf(matcher: LabelMatcher): string[] | undefined {
  if (matcher.op === '=') return [matcher.value];
  if (matcher.op === '=~' && /^[\w|]+$/.test(matcher.value)) return matcher.value.split('|');
  return undefined;
}

function matchersOf(body: string): LabelMatcher[] {
  const matchers: LabelMatcher[] = [];
  for (const match of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
    matchers.push({ label: match[1]!, op: match[2] as LabelMatcher['op'], value: match[3]! });
  }
  return matchers;
}

function endOfString(source: string, start: number): number {
  const quote = source[start];
  let index = start + 1;
  while (index < source.length && source[index] !== quote) index += source[index] === '\\' ? 2 : 1;
  return index + 1;
}

function endOfBraces(source: string, start: number): number {
  let index = start + 1;
  while (index < source.length && source[index] !== '}') {
    index = source[index] === '"' ? endOfString(source, index) : index + 1;
  }
  return index;
}

/** Metric names and label names of a Prometheus text exposition. */
export function exposedMetrics(text: string): Map<string, Set<string>> {
  const metrics = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    if (match === null) continue;
    const labels = metrics.get(match[1]!) ?? new Set<string>();
    for (const label of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(label[1]!);
    metrics.set(match[1]!, labels);
  }
  return metrics;
}
