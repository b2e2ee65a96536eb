// authorize → capture → refund, the payment id carried through each step.
import { arrivalScenario, authorize, baseThresholds, capture, markIteration, merchant, refund, summaryOutputs, trendStats } from './lib/common.js';

export const options = {
  scenarios: arrivalScenario('full_flow', 'run'),
  thresholds: baseThresholds(['authorize', 'capture', 'refund']),
  summaryTrendStats: trendStats,
};

export function run() {
  markIteration();
  const m = merchant();
  const id = authorize(m);
  if (id === null) return;
  if (!capture(m, id)) return;
  refund(m, id);
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
