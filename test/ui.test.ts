// The web UI as a user drives it: Debian's Chromium (playwright-core) against a real
// `osprey up` serving web/dist, tracing the real demo stack (nginx -> node -> python)
// that curl sends requests through. Each test saves a screenshot (ui-*.png in a temporary
// folder, or in docs/ with OSPREY_UI_SHOTS=docs: that is how docs/ui-*.png are made).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { startDemo, type Demo } from '../src/demo/index.js';
import { freePort, ospreyUp, run, sleep, type OspreyUp } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
// screenshots go to a temporary folder; OSPREY_UI_SHOTS=docs writes the ones in docs/ instead
const SHOTS = process.env.OSPREY_UI_SHOTS === 'docs' ? fileURLToPath(new URL('../../docs/', import.meta.url)) : mkdtempSync(join(tmpdir(), 'osprey-ui-shots-'));
// letters only: a number in the path would become {id} in the route
const TAG = `ui${Array.from({ length: 8 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('')}`;
const SLOW = `/chain/${TAG}/slow`;
const FAST = `/chain/${TAG}/fast`;
// one route hit 6 times fast and once slow (outside the /chain/TAG/ paths the other tests count)
const CMP = `/chain/${TAG}x/cmp`;
// Kubernetes identity: two namespaces of services exporting through the OTLP receiver
const SHOP = `shop-${TAG}`;
const IDP = `idp-${TAG}`;

/**
 * Spans with k8s.namespace.name on their resource, sent the way an instrumented pod sends them:
 * the official OpenTelemetry JS SDK and its OTLP/HTTP protobuf exporter, to osprey's /v1/traces.
 * Per namespace one service; each trace a SERVER root and an INTERNAL child, durations given.
 */
async function exportK8sSpans(otlpBase: string, traces: { ns: string; service: string; name: string; ms: number; error?: boolean }[]): Promise<void> {
  const providers = new Map<string, TracerProvider>();
  const now = Date.now();
  for (const [i, t] of traces.entries()) {
    let provider = providers.get(t.service);
    if (!provider) {
      provider = new TracerProvider({
        resource: resourceFromAttributes({ 'service.name': t.service, 'k8s.namespace.name': t.ns, 'k8s.pod.name': `${t.service}-7d9f-x${i}`, 'k8s.deployment.name': t.service }),
        spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${otlpBase}/v1/traces` }) })],
      });
      providers.set(t.service, provider);
    }
    const tracer = provider.getTracer('osprey-ui-test');
    const start = now - 60_000 + i * 1000;
    const root = tracer.startSpan(t.name, { kind: SpanKind.SERVER, startTime: start, attributes: { 'http.request.method': 'GET', 'http.route': t.name.split(' ')[1] ?? '/', 'http.response.status_code': t.error ? 500 : 200 } });
    if (t.error) root.setStatus({ code: SpanStatusCode.ERROR });
    const ctx = trace.setSpan(context.active(), root);
    tracer.startSpan('work', { kind: SpanKind.INTERNAL, startTime: start + 1 }, ctx).end(start + Math.max(2, t.ms - 1));
    root.end(start + t.ms);
  }
  for (const p of providers.values()) {
    await p.forceFlush();
    await p.shutdown();
  }
}

describe('web UI', { timeout: 240_000 }, () => {
  let agent: OspreyUp;
  let demo: Demo;
  let browser: Browser;
  let page: Page;

  async function shot(name: string) {
    await page.screenshot({ path: join(SHOTS, `ui-${name}.png`) });
  }

  async function stored(q: string): Promise<number> {
    const r = await fetch(`${agent.url}/api/osprey/count?since=10m&q=${encodeURIComponent(q)}`);
    return ((await r.json()) as { count: number }).count;
  }

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: make build installs the Debian package chromium`);
    const data = mkdtempSync(join(tmpdir(), 'osprey-ui-'));
    agent = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`]);
    demo = await startDemo({ dataDir: data, traffic: false });
    // 3 slow requests (the backend sleeps 300 ms) and 12 fast ones through nginx -> frontend -> backend
    for (let i = 0; i < 3; i++) assert.equal((await run('curl', ['-sS', '-o', '/dev/null', `${demo.entryUrl.replace(/\/$/, '')}${SLOW}?sleep=300`])).code, 0);
    for (let i = 0; i < 12; i++) assert.equal((await run('curl', ['-sS', '-o', '/dev/null', `${demo.entryUrl.replace(/\/$/, '')}${FAST}`])).code, 0);
    for (let i = 0; i < 6; i++) assert.equal((await run('curl', ['-sS', '-o', '/dev/null', `${demo.entryUrl.replace(/\/$/, '')}${CMP}`])).code, 0);
    assert.equal((await run('curl', ['-sS', '-o', '/dev/null', `${demo.entryUrl.replace(/\/$/, '')}${CMP}?sleep=400`])).code, 0);
    await exportK8sSpans(agent.url, [
      ...[40, 900, 120, 60, 300].map((ms) => ({ ns: SHOP, service: `cart-${TAG}`, name: 'GET /cart', ms })),
      { ns: SHOP, service: `pay-${TAG}`, name: 'POST /pay', ms: 250, error: true },
      ...[2000, 30, 50].map((ms) => ({ ns: IDP, service: `auth-${TAG}`, name: 'POST /token', ms })),
    ]);
    // curl, nginx server + client, frontend server + client, backend server: 6 spans a request
    const deadline = Date.now() + 30_000;
    while (((await stored(`{ span.url.path = "${SLOW}" }`)) < 18 || (await stored(`{ span.url.path = "${CMP}" }`)) < 42) && Date.now() < deadline) await sleep(300);
    // and the edges of the last requests: the service graph pairs spans after a short wait
    await sleep(1500);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => console.error('page error:', e.message));
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
    if (agent && !agent.child.exited) await agent.stop();
  });

  it('serves the built UI at / with content types, caching and deep links', async () => {
    const index = await fetch(`${agent.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(js, html);
    const asset = await fetch(`${agent.url}${js}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    const deep = await fetch(`${agent.url}/trace/0123456789abcdef0123456789abcdef?span=1`);
    assert.equal(deep.status, 200);
    assert.equal(await deep.text(), html);
    // the API is still the API, and a mistyped path is still a 404
    assert.equal((await fetch(`${agent.url}/api/osprey/nope`)).status, 404);
    assert.equal((await fetch(`${agent.url}/nope`)).status, 404);
    assert.equal((await fetch(`${agent.url}/assets/missing-123.js`)).status, 404);
  });

  it('search opens on recent traces; a query and the Slowest sort find the slow request; its waterfall shows the chain', async () => {
    await page.goto(`${agent.url}/`);
    await page.locator('table.traces tbody tr').first().waitFor();
    // `/` focuses the TraceQL box; typing a query and Enter runs it
    await page.locator('body').press('/');
    const box = page.getByLabel('TraceQL query');
    assert.ok(await box.evaluate((el) => el === document.activeElement), '/ focuses the query box');
    await box.fill(`{ span.url.path =~ "/chain/${TAG}/.*" && kind = server }`);
    await box.press('Escape');
    await box.press('Enter');
    await page.waitForURL(/q=/);
    await page.getByRole('button', { name: 'Slowest', exact: true }).click();
    await page.waitForURL(/order=duration/);
    await page.locator('section.results[aria-busy=false]').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '15');
    const first = page.locator('table.traces tbody tr').first();
    assert.match(await first.innerText(), /GET \/chain\/\{?[\w]+\}?\/slow|slow/);
    // the service quick filter writes its condition into the query
    await page.getByLabel('Service', { exact: true }).selectOption('backend');
    await page.waitForURL(/backend/);
    assert.match(await box.inputValue(), /resource\.service\.name = "backend"/);
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '15');
    await shot('search');

    await first.locator('a.trace-link').click();
    await page.waitForURL(/\/trace\/[0-9a-f]{32}/);
    const wf = page.getByTestId('waterfall');
    await wf.locator('[role=treeitem]').nth(5).waitFor();
    const rows = await wf.locator('[role=treeitem]').allInnerTexts();
    assert.equal(rows.length, 6, rows.join('\n'));
    const text = rows.join('\n');
    for (const svc of ['curl', 'nginx', 'frontend', 'backend']) assert.ok(text.includes(svc), `${svc} in the waterfall:\n${text}`);
    assert.match(text, /backend\s+GET \/chain/);
    // how each parent was found is on every linked span; the chain is linked by connection tuples
    const badges = await wf.getByTestId('link-badge').allInnerTexts();
    assert.ok(badges.filter((b) => b === 'tuple').length >= 3, badges.join(','));
    // the backend span (the slow one) is on the critical path and its details open
    const backend = wf.locator('[role=treeitem]', { hasText: 'backend' });
    assert.match((await backend.getAttribute('class')) ?? '', /critical/);
    await backend.click();
    await page.waitForURL(/span=[0-9a-f]{16}/);
    const details = page.getByTestId('span-details');
    assert.match(await details.innerText(), /url\.path\s+\/chain\/\w+\/slow/);
    await shot('trace');

    // deep link: reload restores the trace and the selected span
    const url = page.url();
    await page.reload();
    await page.getByTestId('span-details').waitFor();
    assert.equal(page.url(), url);
    assert.match(await page.getByTestId('span-details').innerText(), /backend/);
    // back returns to the search with its query and sort
    await page.goBack();
    await page.waitForURL(/order=duration/);
    assert.match(await page.getByLabel('TraceQL query').inputValue(), /backend/);
    assert.equal(await page.getByRole('button', { name: 'Slowest', exact: true }).getAttribute('aria-pressed'), 'true');
  });

  it('services: rate, errors, percentiles; a service opens its slowest requests', async () => {
    await page.goto(`${agent.url}/services?since=15m`);
    const row = page.locator('tr[data-service="backend"]');
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    assert.match(cells[4] ?? '', /\d+(\.\d+)? (ms|µs|s)/, cells.join(' | '));
    await shot('services');
    await row.click();
    await page.waitForURL(/order=duration/);
    assert.equal(new URL(page.url()).searchParams.get('q'), '{ resource.service.name = "backend" && kind = server }');
    await page.locator('table.traces tbody tr').first().waitFor();
  });

  it('service map: an edge opens the traces over it', async () => {
    await page.goto(`${agent.url}/map?since=15m`);
    const edge = page.locator('[data-edge="frontend->backend"]');
    await edge.waitFor();
    assert.match(await edge.textContent() ?? '', /err.*p95/);
    await shot('map');
    // the label is on the edge whatever its route; the map is drawn once services and edges are in
    await page.locator('[data-node="backend"] .node-stats', { hasText: 'p95' }).waitFor();
    await edge.locator('text').first().click();
    await page.waitForURL(/q=/);
    const p = new URL(page.url()).searchParams;
    assert.equal(p.get('q'), '{ resource.service.name = "backend" && kind = server }');
    assert.equal(p.get('edge'), 'frontend>backend');
    await page.locator('table.traces tbody tr').first().waitFor();
    assert.ok(Number(await page.getByTestId('total').innerText()) >= 15);
  });

  it('heatmap: brushing the slow region lists its traces and compares it with the rest', async () => {
    await page.goto(`${agent.url}/?since=15m&q=${encodeURIComponent(`{ span.url.path =~ "/chain/${TAG}/.*" && resource.service.name = "backend" }`)}`);
    const heat = page.getByTestId('heatmap');
    await heat.waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '15');
    const b = (await heat.boundingBox())!;
    // the whole width, from the top down to a third of the height: the rows span ~100 µs (the
    // fast requests) to ~300 ms (the slow ones) on a log scale, so this holds the slow ones only
    await page.mouse.move(b.x + 70, b.y + 2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width - 2, b.y + b.height * 0.35, { steps: 5 });
    await page.mouse.up();
    await page.waitForURL(/selStart=/);
    await page.getByTestId('comparison').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '3');
    const cmp = await page.getByTestId('comparison').innerText();
    assert.match(cmp, /3\s+spans selected vs\s+12\s+others/, cmp);
    assert.match(cmp, /\/slow/);
    await shot('heatmap');
  });

  it('trace: compared with a typical trace of the same root, time per service side by side', async () => {
    // the slow request of the CMP route, found through the API the search view uses
    const q = `{ span.url.path = "${CMP}" && resource.service.name = "backend" }`;
    const list = (await (await fetch(`${agent.url}/api/osprey/ui/traces?since=15m&order=duration&limit=1&q=${encodeURIComponent(q)}`)).json()) as { traces: { traceId: string }[] };
    const slowId = list.traces[0]!.traceId;
    const api = (await (await fetch(`${agent.url}/api/osprey/ui/typical/${slowId}`)).json()) as {
      root: { service: string; name: string };
      peers: number;
      trace: { durationNs: number; services: { service: string; selfNs: number }[] };
      typical: { traceId: string; durationNs: number; services: { service: string; selfNs: number }[] } | null;
    };
    // peers: the six fast requests of the same route (the root is curl's client span)
    assert.ok(api.typical, JSON.stringify(api));
    assert.ok(api.peers >= 6, `peers ${api.peers}`);
    assert.notEqual(api.typical.traceId, slowId);
    const self = (l: { service: string; selfNs: number }[], svc: string) => l.find((x) => x.service === svc)?.selfNs ?? 0;
    // the backend slept 400 ms in this one: that is where the time went, not in the typical one
    assert.ok(self(api.trace.services, 'backend') >= 380e6, JSON.stringify(api.trace.services));
    assert.ok(self(api.typical.services, 'backend') < 100e6, JSON.stringify(api.typical.services));
    assert.ok(api.typical.durationNs < api.trace.durationNs / 3);

    await page.goto(`${agent.url}/trace/${slowId}`);
    const panel = page.getByTestId('typical');
    await panel.locator('tr[data-service]').first().waitFor();
    // most different first: the backend, its difference marked
    const first = panel.locator('tr[data-service]').first();
    assert.equal(await first.getAttribute('data-service'), 'backend');
    assert.match(await first.innerText(), /\+\d+(\.\d+)? ms/);
    for (const svc of ['curl', 'nginx', 'frontend']) await panel.locator(`tr[data-service="${svc}"]`).waitFor();
    assert.match(await panel.innerText(), new RegExp(`over ${api.peers} traces`));
    await page.getByRole('button', { name: 'vs typical ↓' }).click();
    await panel.screenshot({ path: join(SHOTS, 'ui-typical.png') });
    // the typical trace opens from the panel
    await page.getByTestId('typical-link').click();
    await page.waitForURL(new RegExp(`/trace/${api.typical.traceId}`));
    await page.getByTestId('waterfall').locator('[role=treeitem]').nth(5).waitFor();
  });

  it('namespace: the quick filter writes TraceQL, the list keeps to the namespace, its slowest request is two clicks away', async () => {
    await page.goto(`${agent.url}/?since=15m`);
    await page.locator('table.traces tbody tr').first().waitFor();
    // click 1: the namespace chip (namespaces come from the spans' k8s.namespace.name)
    await page.getByRole('button', { name: SHOP, exact: true }).click();
    await page.waitForURL(/q=/);
    const box = page.getByLabel('TraceQL query');
    assert.equal(await box.inputValue(), `{ resource.k8s.namespace.name = "${SHOP}" }`);
    assert.equal(await page.getByRole('button', { name: SHOP, exact: true }).getAttribute('aria-pressed'), 'true');
    // 6 traces in shop (5 cart, 1 pay), none of the idp or demo traffic
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '6');
    const services = await page.locator('table.traces tbody tr td:nth-child(2)').allInnerTexts();
    assert.deepEqual([...new Set(services)].sort(), [`cart-${TAG}`, `pay-${TAG}`]);
    // click 2: Slowest; the 900 ms cart request is first
    await page.getByRole('button', { name: 'Slowest', exact: true }).click();
    await page.waitForURL(/order=duration/);
    await page.locator('section.results[aria-busy=false]').waitFor();
    const rows = page.locator('table.traces tbody tr');
    await page.waitForFunction(() => document.querySelector('table.traces tbody tr')?.textContent?.includes('900'));
    assert.match(await rows.first().innerText(), new RegExp(`cart-${TAG}[\\s\\S]*GET /cart[\\s\\S]*900(\\.0)? ms`));
    // the error is marked
    assert.equal(await page.locator('table.traces tbody tr.has-error').count(), 1);
    await shot('namespace');
    // the other namespace: its own traces only; the chip toggles off again
    await page.getByRole('button', { name: IDP, exact: true }).click();
    await page.waitForURL(new RegExp(encodeURIComponent(IDP)));
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '3');
    assert.match(await rows.first().innerText(), /auth-\w+[\s\S]*2(\.0+)? s/);
    await page.getByRole('button', { name: IDP, exact: true }).click();
    await page.waitForFunction(() => !new URL(location.href).searchParams.get('q')?.includes('namespace'));
  });

  it('dark and light themes follow the system; `/` focuses the query box from another view', async () => {
    for (const scheme of ['dark', 'light'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${agent.url}/services?since=15m`);
      await page.locator('tr[data-service="backend"]').waitFor();
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r, g, b] = (bg.match(/\d+/g) ?? []).map(Number);
      const lum = (r! + g! + b!) / 3;
      assert.ok(scheme === 'dark' ? lum < 60 : lum > 200, `${scheme}: body background ${bg}`);
      if (scheme === 'dark') await shot('dark');
    }
    // `/` on the services view opens Search with the box focused
    await page.locator('body').press('/');
    await page.waitForURL((u) => u.pathname === '/');
    const box = page.getByLabel('TraceQL query');
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'TraceQL query');
    assert.ok(await box.evaluate((el) => el === document.activeElement));
    // typed into the box, `/` is a character, not the shortcut
    await box.fill('{ span.url.path = "/a');
    await box.press('/');
    assert.equal(await box.inputValue(), '{ span.url.path = "/a/');
  });
});
