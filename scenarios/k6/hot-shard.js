// The full flow (authorize → capture → refund) with every payment on one shard: odd merchants only,
// so shard2 and the workers of VM2's partitions take all of it while shard1 idles. The traffic
// shape of a merchant base that is not spread evenly (and of the original platform's own
// full-flow script); the bench runs it beside the even split.
import { arrivalScenario, baseThresholds, fullFlow, markIteration, MERCHANTS, summaryOutputs, trendStats } from './lib/common.js';

export const options = {
  scenarios: arrivalScenario('hot_shard', 'run'),
  thresholds: baseThresholds(['authorize', 'capture', 'refund']),
  summaryTrendStats: trendStats,
};

// MERCHANT-1, -3, -5 … below MERCHANTS: odd numbers land on shard2.
function oddMerchant() {
  return `MERCHANT-${1 + 2 * Math.floor(Math.random() * Math.floor(MERCHANTS / 2))}`;
}

export function run() {
  markIteration();
  fullFlow(oddMerchant());
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
