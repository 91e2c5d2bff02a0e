// Warden console: live traffic charts on a service's page. Polls the service's
// traffic.json every 2 s (the sidecars report every 2 s) and draws the last minutes of
// requests/s, refused % and p50/p99 per route as small SVG lines. Text is set with
// textContent only, never as HTML.
"use strict";

(function () {
  const box = document.getElementById("traffic");
  if (!box) return;
  const service = box.dataset.service;
  const POINTS = 90;
  const history = new Map(); // route -> {rps: [], refused: [], p50: [], p99: []}
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function spark(values, cls) {
    const w = 160, h = 28;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    if (cls) svg.setAttribute("class", cls);
    const max = Math.max(1e-9, ...values.filter((v) => v !== null));
    const pts = values.map((v, i) => {
      const x = (i * w) / (POINTS - 1);
      const y = h - 1 - ((v || 0) / max) * (h - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
    return svg;
  }

  function metric(label, value, values, cls) {
    const row = el("div", "metric");
    row.appendChild(el("span", null, label));
    row.appendChild(spark(values, cls));
    row.appendChild(el("b", null, value));
    return row;
  }

  const fmt = (v, unit) => (v === null || v === undefined ? "-" : `${Number(v).toFixed(v < 10 ? 1 : 0)}${unit}`);

  function render() {
    box.replaceChildren();
    if (history.size === 0) {
      box.appendChild(el("p", "muted", "No traffic reported in the last 30 s."));
      return;
    }
    const grid = el("div", "charts");
    for (const [route, h] of history) {
      const card = el("div", "route");
      card.dataset.route = route;
      card.appendChild(el("h3", null, route));
      const last = (a) => a[a.length - 1];
      card.appendChild(metric("requests/s", fmt(last(h.rps), ""), h.rps));
      card.appendChild(metric("refused", fmt(last(h.refused), "%"), h.refused, "refused"));
      card.appendChild(metric("p50", fmt(last(h.p50), " ms"), h.p50));
      card.appendChild(metric("p99", fmt(last(h.p99), " ms"), h.p99));
      grid.appendChild(card);
    }
    box.appendChild(grid);
  }

  function push(arr, v) {
    arr.push(v);
    while (arr.length < POINTS) arr.unshift(null);
    while (arr.length > POINTS) arr.shift();
  }

  async function poll() {
    try {
      const resp = await fetch(`/services/${encodeURIComponent(service)}/traffic.json`, { credentials: "same-origin" });
      if (resp.ok) {
        const data = await resp.json();
        const seen = new Set();
        for (const r of data.routes) {
          seen.add(r.route);
          if (!history.has(r.route)) history.set(r.route, { rps: [], refused: [], p50: [], p99: [] });
          const h = history.get(r.route);
          push(h.rps, r.rps);
          push(h.refused, r.refused_pct);
          push(h.p50, r.p50_ms);
          push(h.p99, r.p99_ms);
        }
        for (const [route, h] of history) {
          if (!seen.has(route)) for (const k of Object.keys(h)) push(h[k], 0);
        }
        render();
        box.dataset.updated = String(data.unix_ms);
        box.dataset.polls = String(Number(box.dataset.polls || 0) + 1);
      }
    } catch (e) {
      // The control plane restarted or the network blinked: the next poll tries again.
    }
    setTimeout(poll, 2000);
  }
  poll();
})();
