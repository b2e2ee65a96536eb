// Shared helpers for the payctl k6 scenarios: configuration from the environment, merchants
// spread over both shards, unique idempotency keys, strict checks. Per-operation latency comes from
// the `http_req_duration{op:X}` thresholds (k6 keeps a sub-metric for each) and the `op` tag.
import http from 'k6/http';
import { check } from 'k6';
import { Gauge } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080/api').replace(/\/$/, '');
export const RATE = parseInt(__ENV.RATE || '20', 10);
export const DURATION = __ENV.DURATION || '30s';
export const VUS = parseInt(__ENV.VUS || '20', 10);
export const MAX_VUS = parseInt(__ENV.MAX_VUS || String(VUS * 5), 10);
export const MERCHANTS = parseInt(__ENV.MERCHANTS || '100', 10);
export const P95_MS = parseInt(__ENV.P95_MS || '200', 10);

// The configured rate is recorded as a metric so analyze can compare achieved vs target.
const targetRate = new Gauge('scenario_target_rate');

export function arrivalScenario(name, exec_fn) {
  return {
    [name]: {
      executor: 'constant-arrival-rate',
      exec: exec_fn,
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
    },
  };
}

export const trendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

export function baseThresholds(ops) {
  const t = {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  };
  for (const op of ops) {
    t[`http_req_duration{op:${op}}`] = [`p(95)<${P95_MS}`];
  }
  return t;
}

// Once per VU, not per iteration: a gauge keeps its last value, and every sample costs k6 CPU
// on the same 2 cores as the platform it measures.
export function markIteration() {
  if (__ITER === 0) targetRate.add(RATE);
}

// Even and odd merchant numbers land on shard1 and shard2 respectively.
export function merchant() {
  return `MERCHANT-${Math.floor(Math.random() * MERCHANTS)}`;
}

// (VU, its iteration) is unique within a run; the clock and a random tail keep runs apart.
// __VU/__ITER rather than k6/execution: the same uniqueness for less k6 CPU per iteration.
export function uniqueKey(prefix) {
  return `${prefix}-${__VU}-${__ITER}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// Merchants' API keys: `payctl loadtest run` names the file of keys it issued for the scenarios'
// merchants (PAYFLOW_KEYS_FILE, in the stack's state folder, never in a report). Without it
// (api_auth = "off") requests carry no key. Headers are built once per merchant, not per request.
const KEYS = __ENV.PAYFLOW_KEYS_FILE ? JSON.parse(open(__ENV.PAYFLOW_KEYS_FILE)) : {};
const HEADERS = {};

function headersFor(m, json) {
  const id = `${json ? 'j' : 'g'}${m}`;
  let h = HEADERS[id];
  if (h === undefined) {
    h = json ? Object.assign({}, JSON_HEADERS) : {};
    if (KEYS[m]) h.Authorization = `Bearer ${KEYS[m]}`;
    HEADERS[id] = h;
  }
  return h;
}

function post(op, path, body, expected) {
  const res = http.post(`${BASE_URL}${path}`, JSON.stringify(body), {
    headers: headersFor(body.merchantId, true),
    tags: { op, name: `POST /payments/${op}` },
    responseCallback: http.expectedStatuses(expected),
  });
  return res;
}

// A check passes only on the status the business expects: a 409 is NOT a success.
function expect(res, op, status, extra) {
  const checks = { [`${op} status ${status}`]: (r) => r.status === status };
  if (extra) Object.assign(checks, extra);
  return check(res, checks);
}

export function authorize(m, amount) {
  const res = post('authorize', '/payments/authorize',
    { merchantId: m, amount: amount || 1000 + Math.floor(Math.random() * 9000), currency: 'KRW', idempotencyKey: uniqueKey('k6') }, 200);
  // Parsed once for the check and the id; a 200 whose body is not JSON fails the check (res.json()
  // throws on it, and a throw would skip both checks).
  let body = null;
  if (res.status === 200) {
    try { body = res.json(); } catch (e) { body = null; }
  }
  const ok = expect(res, 'authorize', 200, { 'authorize returns AUTHORIZED': () => body !== null && typeof body === 'object' && body.status === 'AUTHORIZED' });
  return ok ? body.paymentId : null;
}

export function capture(m, id) {
  const res = post('capture', `/payments/capture/${id}`, { merchantId: m }, 200);
  return expect(res, 'capture', 200);
}

export function refund(m, id, amount) {
  const body = { merchantId: m, reason: 'k6' };
  if (amount) body.amount = amount;
  const res = post('refund', `/payments/refund/${id}`, body, 200);
  return expect(res, 'refund', 200);
}

// authorize → capture → refund for merchant `m`, the payment id carried through each step.
export function fullFlow(m) {
  const id = authorize(m);
  if (id === null) return;
  if (!capture(m, id)) return;
  refund(m, id);
}

export function cancel(m, id) {
  const res = post('cancel', `/payments/cancel/${id}`, { merchantId: m }, 200);
  return expect(res, 'cancel', 200);
}

export function getPayment(m, id) {
  const res = http.get(`${BASE_URL}/payments/${id}?merchantId=${m}`, { headers: headersFor(m, false), tags: { op: 'get', name: 'GET /payments/{id}' } });
  return expect(res, 'get', 200);
}

// handleSummary: keep k6's data as JSON when asked (payctl sets SUMMARY_JSON) and print a short
// text summary (the remote textSummary helper is not reachable offline).
export function summaryOutputs(data) {
  const m = data.metrics;
  const val = (name, key) => (m[name] && m[name].values[key] !== undefined ? m[name].values[key] : NaN);
  const text = [
    `requests: ${val('http_reqs', 'count')}  rate: ${val('http_reqs', 'rate').toFixed(1)}/s`,
    `http_req_duration p95: ${val('http_req_duration', 'p(95)').toFixed(1)} ms  p99: ${val('http_req_duration', 'p(99)').toFixed(1)} ms`,
    `http_req_failed: ${(val('http_req_failed', 'rate') * 100).toFixed(2)} %  checks: ${(val('checks', 'rate') * 100).toFixed(2)} %`,
    '',
  ].join('\n');
  const out = { stdout: text };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 1);
  return out;
}
