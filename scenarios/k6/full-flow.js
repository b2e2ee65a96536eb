// authorize → capture → refund, the payment id carried through each step.
import { arrivalScenario, baseThresholds, fullFlow, markIteration, merchant, summaryOutputs, trendStats } from './lib/common.js';

export const options = {
  scenarios: arrivalScenario('full_flow', 'run'),
  thresholds: baseThresholds(['authorize', 'capture', 'refund']),
  summaryTrendStats: trendStats,
};

export function run() {
  markIteration();
  fullFlow(merchant());
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
