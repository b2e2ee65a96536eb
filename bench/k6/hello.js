// The ceiling for a Python WSGI app on this machine: the same open-model load, the same JSON body,
// against a bare Flask endpoint served the same way as the ingest (bench/hello_app.py).
import http from 'k6/http';
import { check } from 'k6';
import { arrivalScenario, markIteration, summaryOutputs, trendStats } from '../../scenarios/k6/lib/common.js';

export const options = {
  scenarios: arrivalScenario('hello', 'run'),
  summaryTrendStats: trendStats,
};

const BASE_URL = __ENV.BASE_URL;
const BODY = JSON.stringify({ merchantId: 'MERCHANT-2', amount: 1000, currency: 'KRW', idempotencyKey: 'hello' });

export function run() {
  markIteration();
  const res = http.post(`${BASE_URL}/payments/authorize`, BODY, { headers: { 'Content-Type': 'application/json' },
    tags: { op: 'hello', name: 'POST /hello' } });
  check(res, { 'hello status 200': (r) => r.status === 200 });
}

export function handleSummary(data) {
  return summaryOutputs(data);
}
