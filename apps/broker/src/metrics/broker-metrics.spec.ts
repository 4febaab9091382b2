import { AggregatorRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BrokerMetrics, MAX_ACTIONS_PER_KIND, MAX_RESOLVERS } from './broker-metrics.js';

const lines = async (sut: BrokerMetrics, name: string): Promise<string[]> => (await sut.registry.metrics()).split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

describe(BrokerMetrics.name, () => {
  it('counts kinds outside the policy set, and actions beyond the cap, as `other`', async () => {
    const sut = new BrokerMetrics();
    sut.policiesLoaded(['doc']);
    for (let i = 0; i < MAX_ACTIONS_PER_KIND + 10; i++) sut.decision('doc', `a${i}`, true);
    sut.decision('doc', 'a0', true);
    sut.decision('evil-kind-1', 'read', false);
    sut.decision('evil-kind-2', 'read', false);
    const series = await lines(sut, 'warden_decisions_total');
    // One ALLOW and one DENY series per counted action of `doc` (the capped ones share `other`), and `other`/read.
    expect(series).toHaveLength(2 * (MAX_ACTIONS_PER_KIND + 1) + 2);
    expect(series).toContain('warden_decisions_total{effect="ALLOW",kind="doc",action="a0"} 2');
    expect(series).toContain('warden_decisions_total{effect="ALLOW",kind="doc",action="other"} 10');
    expect(series).toContain('warden_decisions_total{effect="DENY",kind="other",action="read"} 2');
    expect(series.join('\n')).not.toContain('evil-kind');
  });

  it('caps resolver names and keeps histogram buckets cumulative', async () => {
    const sut = new BrokerMetrics();
    const runs = Array.from({ length: MAX_RESOLVERS + 3 }, (_, i) => ({ resolver: `r${i}`, calls: 1, keys: 2, hits: 1, durationMs: i === 0 ? 0.05 : 5000 }));
    sut.enrichment('v1', { items: [{ input: {}, provenance: {}, denials: [], failures: [{ resolver: 'r0', code: 'x', message: 'm', onError: 'deny' }] }], runs, durationMs: 3 });
    const calls = await lines(sut, 'warden_resolver_calls_total');
    expect(calls).toHaveLength(MAX_RESOLVERS + 1);
    expect(calls).toContain('warden_resolver_calls_total{resolver="other"} 3');
    expect(await lines(sut, 'warden_resolver_errors_total')).toContain('warden_resolver_errors_total{resolver="r0"} 1');
    const r0 = (await lines(sut, 'warden_resolver_duration_seconds_bucket')).filter((l) => l.includes('resolver="r0"'));
    expect(r0[0]).toBe('warden_resolver_duration_seconds_bucket{resolver="r0",le="0.0001"} 1');
    expect(r0.at(-1)).toBe('warden_resolver_duration_seconds_bucket{resolver="r0",le="+Inf"} 1');
    const slow = (await lines(sut, 'warden_resolver_duration_seconds_bucket')).filter((l) => l.includes('resolver="r1"'));
    expect(slow.filter((l) => l.endsWith(' 0'))).toHaveLength(slow.length - 1);
    expect(await lines(sut, 'warden_stage_duration_seconds_sum')).toContain('warden_stage_duration_seconds_sum{api="v1",stage="enrich"} 0.003');
  });

  it('shows the policy version in force and a pending refusal; summed across workers they count the workers in each state', async () => {
    const [w1, w2] = [new BrokerMetrics(), new BrokerMetrics()];
    w1.policyActive('sha256:aaaa', 'disk');
    w2.policyActive('sha256:aaaa', 'disk');
    w2.policyActive('sha256:bbbb', 'disk');
    w2.policyStaleState('refused');
    w1.policyReload('ok');
    w2.policyReload('refused');
    // A worker shows only the version it serves now.
    expect(await lines(w2, 'warden_policy_info')).toEqual(['warden_policy_info{version="sha256:bbbb",source="disk"} 1']);
    const all = await AggregatorRegistry.aggregate([await w1.registry.getMetricsAsJSON(), await w2.registry.getMetricsAsJSON()]).metrics();
    const series = (name: string): string[] => all.split('\n').filter((l) => l.startsWith(`${name}{`));
    expect(series('warden_policy_info').sort()).toEqual(['warden_policy_info{version="sha256:aaaa",source="disk"} 1', 'warden_policy_info{version="sha256:bbbb",source="disk"} 1']);
    expect(series('warden_policy_stale')).toEqual(['warden_policy_stale{reason="refused"} 1', 'warden_policy_stale{reason="error"} 0']);
    expect(series('warden_policy_reloads_total')).toEqual(['warden_policy_reloads_total{result="ok"} 1', 'warden_policy_reloads_total{result="refused"} 1', 'warden_policy_reloads_total{result="error"} 0']);
    expect(all).toContain('# TYPE warden_policy_info gauge');
  });
});
