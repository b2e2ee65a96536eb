// Short and gentle: every endpoint once per iteration, both shards every time.
import { authorize, baseThresholds, cancel, capture, getPayment, markIteration, refund, summaryOutputs, trendStats, RATE, DURATION, VUS, MAX_VUS } from './lib/common.js';
import exec from 'k6/execution';

export const options = {
  scenarios: {
    smoke: { executor: 'constant-arrival-rate', exec: 'run', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: VUS, maxVUs: MAX_VUS },
  },
  thresholds: baseThresholds(['authorize', 'capture', 'refund', 'cancel', 'get']),
  summaryTrendStats: trendStats,
};

export function run() {
  markIteration();
  const n = exec.scenario.iterationInTest;
  for (const m of [`MERCHANT-${2 * (n % 50)}`, `MERCHANT-${2 * (n % 50) + 1}`]) {
    const id = authorize(m);
    if (id === null) continue;
    getPayment(m, id);
    capture(m, id);
    refund(m, id, 100);
    const other = authorize(m);
    if (other !== null) cancel(m, other);
  }
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
