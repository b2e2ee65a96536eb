// Authorize only, open model (constant arrival rate).
import { arrivalScenario, authorize, baseThresholds, markIteration, merchant, summaryOutputs, trendStats } from './lib/common.js';

export const options = {
  scenarios: arrivalScenario('authorize', 'run'),
  thresholds: baseThresholds(['authorize']),
  summaryTrendStats: trendStats,
};

export function run() {
  markIteration();
  authorize(merchant());
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
