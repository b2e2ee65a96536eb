// The original platform's full flow, in its shape: authorize → 0.1 s → capture → 0.1 s → refund,
// merchants MERCHANT-1..1000 at random, amounts 1,000–50,000 KRW, constant arrival rate.
import { sleep } from 'k6';
import { arrivalScenario, authorize, baseThresholds, capture, markIteration, refund, summaryOutputs, trendStats } from './lib/common.js';

export const options = {
  scenarios: arrivalScenario('original_flow', 'run'),
  thresholds: baseThresholds(['authorize', 'capture', 'refund']),
  summaryTrendStats: trendStats,
};

export function run() {
  markIteration();
  const m = `MERCHANT-${1 + Math.floor(Math.random() * 1000)}`;
  const id = authorize(m, 1000 + Math.floor(Math.random() * 49001));
  if (id === null) return;
  sleep(0.1);
  if (!capture(m, id)) return;
  sleep(0.1);
  refund(m, id);
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
