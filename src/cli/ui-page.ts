// The page at / when the web UI is not built (web/dist missing): where to look and what to run.
export function uiPage(): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Osprey</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}code{background:#eee;padding:0 .3em}</style></head>
<body><h1>Osprey</h1><p>The agent is capturing. Query it with the CLI or the API:</p>
<ul>
<li><a href="/api/osprey/services?since=15m">/api/osprey/services</a> — rate, errors, latency per service</li>
<li><a href="/api/osprey/graph?since=15m">/api/osprey/graph</a> — caller → callee edges</li>
<li><a href="/api/osprey/spans?q=%7Bkind%3Dserver%7D&amp;since=15m&amp;order=duration&amp;limit=20">/api/osprey/spans</a> — slowest server spans (TraceQL in <code>q</code>)</li>
<li><a href="/api/osprey/status">/api/osprey/status</a> — what is attached, every counter</li>
<li><a href="/metrics">/metrics</a> — Prometheus exposition</li>
</ul>
<p>Grafana: add a Tempo data source pointing at this address.</p></body></html>`;
}
