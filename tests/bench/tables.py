#!/usr/bin/env python3
"""Writes the benchmark tables in docs/performance.md from tests/bench/results/*-latest.json.

    python3 tests/bench/tables.py            # rewrite the generated blocks in place
    python3 tests/bench/tables.py --check    # exit 1 (and show the diff) if the doc differs
                                             # from what the result files say

A generated block sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; its
first line says when and with which command the figures were measured. Everything between
the markers is replaced, so edit the prose around them, or the renderers here. Ratios are
computed from one result file, i.e. between rows measured in the same run.

A new block: a function `render_NAME(results) -> str` registered in BLOCKS below, and the
markers in the doc. A new data-plane target: a label in LABELS.
"""

import argparse
import difflib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(ROOT, "docs", "performance.md")
RESULTS = os.path.join(HERE, "results")

MODES = [("h1-small", "HTTP/1.1, 20 B"), ("h1-64k", "HTTP/1.1, 64 KiB"), ("h2-small", "HTTP/2, 20 B"), ("h2-64k", "HTTP/2, 64 KiB")]
LABELS = {
    "direct": "direct",
    "nginx": "nginx",
    "nginx-log": "nginx, access log on (`buffer=64k`)",
    "haproxy": "HAProxy",
    "envoy": "Envoy",
    "pingora": "Pingora (minimal proxy)",
    "warden": "Warden, plain",
    "warden-log": "Warden, plain, `--threads 1`, access log on",
    "warden-defaults": "Warden, plain, defaults (access log on, threads sized by the CPUs it may use)",
    "warden-threads1": "Warden, plain, 1 worker on both CPUs",
    "warden-threads2": "Warden, plain, 2 workers on both CPUs",
    "warden-base": "Warden, plain, base build {base}",
    "warden-full": "**Warden, full policy**",
    "warden-big": "Warden, 1,000 routes + {keys} keys",
}


class Missing(Exception):
    pass


def load(bench):
    path = os.path.join(RESULTS, f"{bench}-latest.json")
    if not os.path.exists(path):
        raise Missing(f"{os.path.relpath(path, ROOT)} is missing: run `tests/bench/run.sh {bench}`")
    with open(path) as f:
        return json.load(f)


def n0(v):
    """12,345 (no decimals, thousands separated); blank for None."""
    return "" if v is None else f"{v:,.0f}"


def n2(v):
    return "" if v is None else f"{v:.2f}"


def us(v):
    return "" if v is None else f"{v:,.0f} µs"


def signed_us(v):
    return "" if v is None else f"{v:+,.0f} µs"


def ms(v):
    if v is None:
        return ""
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms".replace(".0 ms", " ms")


def ratio(a, b):
    return None if not a or not b else a / b


def x(r):
    return "n/a" if r is None else f"{r:.2f}×"


def rounds(n):
    return f"{n} round" + ("" if n == 1 else "s")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def source(d, extra=""):
    """The block's first line: when, how, and from which file."""
    date = (d.get("date") or "?")[:10]
    rel = f"tests/bench/results/{d['bench']}-latest.json"
    conv = " (converted from the text table of that run)" if d.get("converted_from") else ""
    return f"*Measured {date} with `{d['command']}`{extra}; figures from [`{rel}`](../{rel}){conv}.*"


def label(d, t):
    keys = d.get("params", {}).get("keys")
    return LABELS.get(t, t).format(keys=f"{keys:,}" if isinstance(keys, int) else "?",
                                   base=f"`{d['base_name']}`" if d.get("base_name") else "(`WARDEN_BASE_BIN`)")


# The benchmark itself keeps about two CPUs busy (the load generator, the proxy and the
# upstream): a load average well above that means something else ran beside it.
BUSY_LOAD = 3.5


def notes(d):
    out = "".join(f"\n\nNote from this run: {n}" for n in d.get("notes", []) if not n.startswith("OTLP receiver"))
    busy = [x for x in d.get("load", []) if isinstance(x.get("loadavg"), (int, float)) and x["loadavg"] > BUSY_LOAD]
    if busy:
        peak = max(busy, key=lambda x: x["loadavg"])
        out += (f"\n\nNote from this run: the machine was busy with other work during it (load average up to "
                f"{peak['loadavg']}" + (f"; running beside it: {peak['others']}" if peak["others"] else "") +
                "), so its figures are noisier than usual.")
    return out


# ------------------------------------------------------------------ data plane


def render_dataplane_per_core(res):
    d = res("dataplane")
    p = d["params"]
    modes = [(m, name) for m, name in MODES if m in d["modes"]]
    rows = []
    for t in d["targets"]:
        if t == "direct":
            continue
        cells = [n0(d["modes"][m].get(t, {}).get("per_core")) for m, _ in modes]
        if t == "warden-full":
            cells = [f"**{c}**" if c else c for c in cells]
        rows.append([label(d, t)] + cells)
    extra = f" ({rounds(p['rounds'])} of {p['dur']} s per target and mode, interleaved; median)"
    return (source(d, extra) + "\n\nRequests/s per core of the proxy (1 s / its CPU per request; higher is better):\n\n"
            + table(["target"] + [name for _, name in modes], rows) + notes(d))


def mode_table(d, mode):
    rows = []
    for t in d["targets"]:
        r = d["modes"][mode].get(t)
        if r is None:
            continue
        rss = "" if t == "direct" else f"{r['rss_idle_mib']} / {r['rss_load_mib']} MiB"
        rows.append([label(d, t).replace("**", ""), n0(r["rps"]), "" if t == "direct" else n2(r["cpu_us"]),
                     us(r["p50_us"]), us(r["p99_us"]), us(r["p999_us"]), "" if t == "direct" else signed_us(r["add_p99_us"]), rss])
    return table(["target", "req/s", "CPU µs/req", "p50", "p99", "p99.9", "added p99", "RSS idle / under load"], rows)


def render_dataplane_h1_small(res):
    d = res("dataplane")
    p = d["params"]
    errs = sum(r["errors"] + r.get("lat_errors", 0) for m in d["modes"].values() for r in m.values())
    return (source(d, f" (latency at a fixed {p['rate']:,} req/s over 10 connections, {rounds(p['rounds'])} of {p['dur_lat']} s, "
                      "median of each quantile)")
            + "\n\n" + mode_table(d, "h1-small")
            + f"\n\nFailed or non-2xx requests over all modes and targets in this run: {errs:,}.")


def render_dataplane_latency(res):
    d = res("dataplane")
    modes = [(m, name) for m, name in MODES if m in d["modes"]]
    rows = []
    for t in d["targets"]:
        if t == "direct":
            continue
        rows.append([label(d, t).replace("**", "")] + [signed_us(d["modes"][m].get(t, {}).get("add_p99_us")) for m, _ in modes])
    rss = []
    for t in d["targets"]:
        if t == "direct":
            continue
        idle = d["modes"][modes[0][0]][t]["rss_idle_mib"]
        rss.append([label(d, t).replace("**", ""), f"{idle}"] + [str(d["modes"][m].get(t, {}).get("rss_load_mib", "")) for m, _ in modes])
    return (source(d) + "\n\nAdded p99 over direct at the fixed rate, every mode:\n\n"
            + table(["target"] + [name for _, name in modes], rows)
            + "\n\nRSS in MiB, idle and under each mode's load (the highest mid-run sample):\n\n"
            + table(["target", "idle"] + [name for _, name in modes], rss))


def render_dataplane_targets(res):
    """The release's targets, judged from this run's ratios."""
    d = res("dataplane")
    M = d["modes"]
    have = [m for m, _ in MODES if m in M]
    names = dict(MODES)

    def pc(m, t):
        return M[m].get(t, {}).get("per_core")

    def verdict(rs, line):
        got = [r for r in rs if r is not None]
        if not got:
            return "not measured in this run"
        met = [r >= line for r in got]
        if all(met):
            return "met"
        if not any(met):
            return "not met"
        return "met: " + "; ".join(names[m] for m, r in zip(have, rs) if r is not None and r >= line) + \
            ". Not met: " + "; ".join(names[m] for m, r in zip(have, rs) if r is not None and r < line)

    rows = []
    r = [ratio(pc(m, "warden-full"), pc(m, "envoy")) for m in have]
    rows.append(["full policy ≥ 1.5× Envoy's requests/s per core", "; ".join(f"{x(v)} ({names[m]})" for m, v in zip(have, r)), verdict(r, 1.5)])
    r = [ratio(pc(m, "warden-full"), pc(m, "nginx")) for m in have]
    rows.append(["full policy ≥ 1.0× nginx's requests/s per core", "; ".join(f"{x(v)} ({names[m]})" for m, v in zip(have, r)), verdict(r, 1.0)])
    r = [ratio(pc(m, "warden"), pc(m, "nginx")) for m in have]
    rows.append(["plain routing ≥ 1.1× nginx's requests/s per core (issue 16)", "; ".join(f"{x(v)} ({names[m]})" for m, v in zip(have, r)), verdict(r, 1.1)])

    if any("pingora" in M[m] for m in have):
        worst = []
        for m in have:
            ws = [t for t in ("warden", "warden-log", "warden-defaults", "warden-full") if t in M[m]]
            worst.append(min((ratio(pc(m, t), pc(m, "pingora")) for t in ws), default=None))
        rows.append(["every Warden row ahead of Pingora's requests/s per core (issue 16; the least of plain, log, defaults, full)",
                     "; ".join(f"{x(v)} ({names[m]})" for m, v in zip(have, worst)), verdict(worst, 1.0)])

    def add(m, t):
        return M[m].get(t, {}).get("add_p99_us")
    r = [None if add(m, "envoy") in (None, 0) or add(m, "warden-full") is None else add(m, "warden-full") / add(m, "envoy") for m in have]
    # lower is better: judge with the inverse
    inv = [None if v is None or v <= 0 else 1 / v for v in r]
    rows.append(["full policy's added p99 at a fixed rate ≤ 0.5× Envoy's", "; ".join(f"{x(v)} ({names[m]})" for m, v in zip(have, r)), verdict(inv, 2.0)])
    first = have[0]
    idle = {t: M[first].get(t, {}).get("rss_idle_mib") for t in ("warden", "warden-full", "warden-big")}
    mb = lambda mib: mib * 1048576 / 1e6  # noqa: E731
    if idle["warden"] is not None:
        parts = [f"{idle['warden']} MiB ({mb(idle['warden']):.1f} MB) plain"]
        if idle["warden-full"] is not None:
            parts.append(f"{idle['warden-full']} MiB ({mb(idle['warden-full']):.1f} MB) full policy")
        ok = [mb(v) <= 8 for v in (idle["warden"], idle["warden-full"]) if v is not None]
        rows.append(["idle RSS ≤ 8 MB", "; ".join(parts), "met" if all(ok) else ("met for plain routing" if ok[0] else "not met")])
    if idle["warden-big"] is not None:
        peak = max(M[m]["warden-big"]["rss_load_mib"] for m in have if "warden-big" in M[m])
        rows.append([f"RSS with 1,000 routes + {d['params']['keys']:,} keys ≤ 64 MB", f"{idle['warden-big']} MiB idle, {peak} MiB under load (highest mode)",
                     "met" if mb(peak) <= 64 else "not met"])
    return source(d) + "\n\n" + table(["target", "measured (ratios within this run)", "verdict"], rows) + notes(d)


def render_dataplane_anchors(res):
    d = res("dataplane")
    m = d["modes"].get("h1-small", {})
    full, envoy, big = m.get("warden-full"), m.get("envoy"), m.get("warden-big")
    if not full:
        return source(d) + "\n\n(warden-full was not measured in this run.)"
    out = (f"In this run Warden with the full policy used {full['cpu_us']:.1f} µs of CPU per small HTTP/1.1 request, "
           f"{full['cpu_us'] / 1000:.3f} vCPU at 1,000 req/s, and {full['rss_idle_mib']} MiB idle, {full['rss_load_mib']} MiB under load")
    if big:
        loads = [d["modes"][k]["warden-big"]["rss_load_mib"] for k in d["modes"] if "warden-big" in d["modes"][k]]
        out += f"; with 1,000 routes and {d['params']['keys']:,} keys, {big['rss_idle_mib']}-{max(loads)} MiB"
    out += "."
    if envoy:
        out += (f" Envoy needed {x(ratio(envoy['cpu_us'], full['cpu_us']))} Warden's CPU per small request and "
                f"{x(ratio(envoy['rss_idle_mib'], full['rss_idle_mib']))} its idle memory.")
    else:
        out += " (Envoy was not measured in this run.)"
    return source(d) + "\n\n" + out


def render_dataplane_access_log(res):
    """What the access log costs per request, Warden's against nginx's, and Warden's defaults."""
    d = res("dataplane")
    have = [(m, name) for m, name in MODES if m in d["modes"]]
    rows, verdicts = [], []
    for m, name in have:
        row = d["modes"][m]
        cpu = {t: row[t]["cpu_us"] for t in ("nginx", "nginx-log", "warden", "warden-log", "warden-defaults") if t in row}
        if "warden" not in cpu or "warden-log" not in cpu:
            continue
        added = cpu["warden-log"] - cpu["warden"]
        nginx_added = cpu["nginx-log"] - cpu["nginx"] if "nginx-log" in cpu and "nginx" in cpu else None
        rows.append([name, n2(cpu.get("nginx")), n2(cpu.get("nginx-log")), "" if nginx_added is None else f"{nginx_added:+.2f}",
                     n2(cpu["warden"]), n2(cpu["warden-log"]), f"{added:+.2f}", n2(cpu.get("warden-defaults"))])
        if m == "h1-small":
            verdicts.append(f"On small HTTP/1.1 requests Warden's access log added {added:+.2f} µs of CPU per request "
                            f"(target ≤ 2 µs; {'met' if added <= 2 else 'not met'}), nginx's "
                            + ("n/a" if nginx_added is None else f"{nginx_added:+.2f} µs") + ".")
    if not rows:
        return source(d) + "\n\nThis run had no `warden-log` row."
    return (source(d) + "\n\n" + table(["mode", "nginx", "nginx, log on", "added", "Warden `--threads 1 --access-log off`",
                                         "Warden `--threads 1`, log on", "added", "Warden, defaults"], rows)
            + "\n\nCPU µs per request; differences within about a microsecond are this machine's run-to-run noise. "
            + " ".join(verdicts))


def render_dataplane_workers(res):
    """What a second worker costs per request: 2 workers against 1, both on both CPUs."""
    d = res("dataplane")
    rows, verdicts = [], []
    for m, name in MODES:
        row = d["modes"].get(m, {})
        one, two = row.get("warden-threads1"), row.get("warden-threads2")
        if not one or not two:
            continue
        r = ratio(two["cpu_us"], one["cpu_us"])
        rows.append([name, n2(one["cpu_us"]), n2(two["cpu_us"]), x(r), n0(one["rps"]), n0(two["rps"])])
        verdicts.append(r is not None and r <= 1.05)
    if not rows:
        return source(d) + "\n\nThis run had no `warden-threads1`/`warden-threads2` rows."
    verdict = "met" if all(verdicts) else ("not met" if not any(verdicts) else "met in some modes")
    return (source(d) + "\n\n" + table(["mode", "CPU µs/request, 1 worker", "2 workers", "ratio", "req/s, 1 worker", "2 workers"], rows)
            + f"\n\nTarget: 2 workers ≤ 1.05× one worker's CPU per request in every mode: {verdict}.")


def render_dataplane_before_after(res):
    """This revision's plain routing against another revision's, measured in the same run."""
    d = res("dataplane")
    have = [(m, name) for m, name in MODES if m in d["modes"]]
    if not any("warden-base" in d["modes"][m] and "warden" in d["modes"][m] for m, _ in have):
        return (source(d) + "\n\nThis run had no `warden-base` row: `WARDEN_BASE_REV=<revision> "
                "TARGETS=\"direct nginx warden warden-base\" tests/bench/run.sh dataplane` measures one.")
    rows, worse = [], []
    for m, name in have:
        a, b = d["modes"][m].get("warden"), d["modes"][m].get("warden-base")
        if not a or not b:
            continue
        r = ratio(a["cpu_us"], b["cpu_us"])
        if r is not None and r > 1.0:
            worse.append(f"{name} {(r - 1) * 100:+.1f} %")
        rows.append([name, n2(b["cpu_us"]), n2(a["cpu_us"]), x(r), f"{b['rss_idle_mib']} / {a['rss_idle_mib']} MiB"])
    base = f"`{d['base_name']}`" if d.get("base_name") else "the base build"
    verdict = ("No mode costs more CPU per request than " + base + "." if not worse else
               "More CPU per request than " + base + " in: " + "; ".join(worse) +
               " (differences of a few per cent are within this machine's run-to-run noise).")
    this = f"`{d['git']}`" if d.get("git") else "this revision"
    return (source(d) + "\n\n" + table(["mode", f"CPU µs/req, {base}", f"CPU µs/req, {this}", "ratio", "idle RSS (base / this)"], rows)
            + "\n\n" + verdict)


# ------------------------------------------------------------------ the other benchmarks


def render_tls(res):
    d = res("tls")
    p = d["params"]
    names = {"nginx": "nginx", "nginx-tls": "nginx + TLS", "warden": "Warden", "warden-tls": "Warden + TLS"}
    rows = [[names.get(r["target"], r["target"]), n0(r["rps"]), f"{r['cpu_us']:.1f}"] for r in d["rows"]]
    by = {r["target"]: r for r in d["rows"]}
    tail = ""
    if "warden-tls" in by and "nginx-tls" in by:
        tail = (f"\n\nWith TLS, Warden served {x(ratio(by['warden-tls']['rps'], by['nginx-tls']['rps']))} nginx's requests/s "
                f"and spent {x(ratio(by['warden-tls']['cpu_us'], by['nginx-tls']['cpu_us']))} its CPU per request; "
                f"TLS added {by['warden-tls']['cpu_us'] - by['warden']['cpu_us']:+.1f} µs per request to Warden and "
                f"{by['nginx-tls']['cpu_us'] - by['nginx']['cpu_us']:+.1f} µs to nginx.")
    return source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians)") + "\n\n" + table(["target", "req/s", "proxy CPU µs/req"], rows) + tail


def render_grpc(res):
    d = res("grpc")
    p = d["params"]
    names = {"direct": "direct (no proxy)", "envoy": f"Envoy {p.get('envoy') or ''}".strip(),
             "warden": "Warden, one route", "warden-full": "Warden, full policy"}
    rows = [[names.get(r["target"], r["target"]), n0(r["rps"]), "" if r["target"] == "direct" else f"{r['cpu_us']:.1f}",
             n0(r["per_core"]), f"{r['p50_us']:,.0f}", f"{r['p99_us']:,.0f}",
             "" if r["added_p99_us"] is None else f"{r['added_p99_us']:+,.0f}"] for r in d["rows"]]
    by = {r["target"]: r for r in d["rows"]}
    tail = ""
    if "envoy" in by and "warden-full" in by:
        full, envoy = by["warden-full"], by["envoy"]
        tail = (f"\n\nWith the full policy, Warden served {x(ratio(full['per_core'], envoy['per_core']))} Envoy's calls per "
                f"core of the proxy (target ≥ 1.5×) and added {full['added_p99_us']:+,.0f} µs to the p99 at "
                f"{p['rate']:,} calls/s against Envoy's {envoy['added_p99_us']:+,.0f} µs (target: no more than Envoy's).")
    return (source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians; latency at {p['rate']:,} calls/s)") + "\n\n"
            + table(["target", "calls/s", "proxy CPU µs/call", "calls/s per proxy core", "p50 µs", "p99 µs", "added p99"], rows)
            + tail)


def render_retries(res):
    d = res("retries")
    p = d["params"]
    names = {"plain": "10 routes, no retries", "retries": "the same, `retries` on the route taken"}
    rows = [[names.get(r["target"], r["target"]), n0(r["rps"]), f"{r['cpu_us']:.2f}"] for r in d["rows"]]
    by = {r["target"]: r for r in d["rows"]}
    tail = ""
    if "plain" in by and "retries" in by:
        added = by["retries"]["cpu_us"] - by["plain"]["cpu_us"]
        tail = (f"\n\nA retry-enabled route cost {added:+.2f} µs of CPU per request when nothing failed "
                f"(target ≤ 0.3 µs; {'met' if added <= 0.3 else 'not met'}; differences of a few tenths of a µs are within this machine's noise).")
    return (source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians)") + "\n\n"
            + table(["route", "req/s", "sidecar CPU µs/req"], rows) + tail)


def render_websocket(res):
    d = res("websocket")
    p = d["params"]
    names = {"direct": "direct (no proxy)", "nginx": p.get("nginx") or "nginx", "warden": "Warden, `upgrades: true`"}
    rows = [[names.get(r["target"], r["target"]), f"{r['size']} B", n0(r["eps"]),
             "" if r["target"] == "direct" else f"{r['cpu_us']:.2f}", n0(r["per_core"]),
             "" if r["vs_nginx"] is None else x(r["vs_nginx"])] for r in d["rows"]]
    tail = "".join(
        f"\n\nWith {r['size']}-byte messages Warden echoed {x(r['vs_nginx'])} nginx's messages per core of the proxy "
        f"(target ≥ 1×; {'met' if r['vs_nginx'] >= 1 else 'not met'})."
        for r in d["rows"] if r["target"] == "warden" and r["vs_nginx"] is not None)
    return (source(d, f" ({p['conns']} connections × {p['window']} messages in flight, {rounds(p['rounds'])} of {p['dur']} s, medians)")
            + "\n\n" + table(["target", "message", "echoes/s", "proxy CPU µs/echo", "echoes/s per proxy core", "vs nginx"], rows)
            + tail)


def render_tracing(res):
    d = res("tracing")
    p = d["params"]
    names = {"off": "off (no endpoint)", "100%": "on, 100 % sampled", "1%": "on, 1 % (`traceidratio`)",
             "collector-down": "on, 100 %, collector down"}
    rows = [[names.get(r["tracing"], r["tracing"]), n0(r["rps"]), n2(r["cpu_us"]),
             "" if r["tracing"] == "off" else f"{r['added_us']:+.1f} µs", f"{r['p99_us'] / 1000:.2f} ms"] for r in d["rows"]]
    return (source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians; {d['spans']:,} spans received)")
            + "\n\n" + table(["tracing", "req/s", "sidecar CPU µs/req", "added", "p99 (wrk -c50)"], rows))


def render_auth(res):
    d = res("auth")
    p = d["params"]

    def name(t):
        if t == "plain":
            return "no auth"
        if t == "api_key":
            return "API key (`x-api-key`)"
        alg = t.split("-")[1]
        return f"JWT {alg}, " + ("every request a new token" if t.endswith("-new") else "one token sent again (verified once, then remembered)")
    rows = [[name(r["target"]), n2(r["cpu_us"]), "" if r["target"] == "plain" else f"{r['added_us']:+.1f} µs", n0(r["rps"])] for r in d["rows"]]
    out = (source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians; {p['keys']:,} API keys loaded; "
                     f"{p['uncached_tokens']:,} distinct tokens for the new-token rows)")
           + "\n\n" + table(["route", "sidecar CPU µs/req", "added by auth", "req/s"], rows))
    rv = d.get("revocation")
    if rv:
        out += (f"\n\nRevocation, from the start of `wardenctl keys revoke` (process start included) to both sidecars "
                f"answering 401 `key_revoked`, over {rv['count']} revocations: **p50 {rv['p50_ms']} ms, p99 {rv['p99_ms']} ms, "
                f"max {rv['max_ms']} ms** (target: ≤ 1 s).")
    return out


def render_limits(res):
    d = res("limits")
    p = d["params"]
    names = {"plain": "no limit", "one limit (per-ip)": "one per-address limit", "two limits": "two limits (address, route)"}
    rows = [[names.get(r["route"], r["route"]), n2(r["cpu_us"]), "" if r["route"] == "plain" else f"{r['added_us']:+.1f} µs", n0(r["rps"])]
            for r in d["rows"]]
    out = source(d, f" ({rounds(p['rounds'])} of {p['dur']} s, medians)") + "\n\n" + table(["route", "sidecar CPU µs/req", "added", "req/s"], rows)
    f = d.get("flood")
    if f:
        out += (f"\n\nA flood of {f['requests']:,} requests from random addresses in {f['seconds']} s against a 5/min per-address "
                f"limit: RSS {f['rss_before_mib']} MiB before, {f['rss_after_mib']} MiB after, {f['keys']:,} keys tracked (the "
                f"`--limit-keys` bound is {f['limit_keys']:,}), {f['evicted']:,} live keys evicted to stay within it.")
    return out


def render_quota(res):
    d = res("quota")
    p = d["params"]
    rows = [[", ".join(map(str, r["spread"])), n0(r["admitted"]), f"{r['vs_quota_pct']:+.1f} %".replace("-", "−")] for r in d["runs"]]
    return (source(d, f" ({p['sidecars']} sidecars, quota {p['rate']} burst {p['burst']}, {p['times']}× offered for {p['seconds']} s)")
            + "\n\n" + table([f"spread of the offered load over the {p['sidecars']} sidecars (%)", f"admitted in {p['seconds']} s",
                              f"vs the quota ({n0(d['runs'][0].get('quota'))})"], rows))


def render_cp_scale(res):
    d = res("cp-scale")
    rows = []
    for r in [r for r in d["runs"] if not r.get("replicas")]:
        what = f"{r['sidecars']:,} ({r['connections']:,})" + (f", a {r['routes']:,}-route policy" if r.get("routes") else "")
        rows.append([what, f"{ms(r['apply_p50_ms'])} / {ms(r['apply_p99_ms'])}", f"{r['rss_idle_mib']:.0f} MiB / {r['rss_after_mib']:.0f} MiB",
                     f"{r['cpu_s']:.2f} s", f"{r['storm_ms'] / 1000:.2f} s"])
    out = (source(d, f" ({d['params']['applies']} applies each)") + "\n\n"
           + table(["sidecars (connections)", "apply → all ACKed p50 / p99", "control-plane RSS idle / after the applies",
                    f"CPU for {d['params']['applies']} applies", "reconnect storm (kill -9, restart): all back"], rows))
    # The targets: 1,000 sidecars all ACKed in <= 300 ms p99 (a small policy); 10,000 streams in <= 1 GiB.
    one = [r for r in d["runs"] if not r.get("replicas")]
    small = [r for r in one if r["sidecars"] == 1000 and not r.get("routes")]
    big_policy = [r for r in one if r["sidecars"] == 1000 and r.get("routes")]
    many = [r for r in one if r["sidecars"] == 10000]
    verdicts = []
    if small:
        p99 = small[0]["apply_p99_ms"]
        verdicts.append(f"1,000 sidecars all ACKed in ≤ 300 ms p99: {'met' if p99 <= 300 else 'not met'} ({ms(p99)}"
                        + (f"; {ms(big_policy[0]['apply_p99_ms'])} with a 1,000-route policy" if big_policy else "") + ")")
    if many:
        peak = max(many[0]["rss_idle_mib"], many[0]["rss_after_mib"])
        verdicts.append(f"10,000 streams held in ≤ 1 GiB: {'met' if peak <= 1024 else 'not met'} ({peak:.0f} MiB at most)")
    if verdicts:
        out += "\n\nTargets: " + "; ".join(verdicts) + "."
    return out


def render_cp_replicas(res):
    d = res("cp-scale")
    runs = [r for r in d["runs"] if r.get("replicas")]
    if not runs:
        raise Missing("cp-scale-latest.json has no run over several replicas: run `tests/bench/run.sh cp-scale`")
    rows = []
    for r in runs:
        rss = " / ".join(f"{x:.0f}" for x in r["replica_rss_mib"])
        rows.append([f"{r['sidecars']:,} over {r['replicas']}", f"{ms(r['apply_p50_ms'])} / {ms(r['apply_p99_ms'])}",
                     f"{ms(r['revoke_p50_ms'])} / {ms(r['revoke_p99_ms'])}", f"{rss} MiB",
                     f"{r['orphans']:,} in {ms(r['failover_ms'])}"])
    out = (source(d, f" ({d['params']['applies']} applies and 20 revocations each, through the first replica)") + "\n\n"
           + table(["sidecars over replicas", "apply → all ACKed p50 / p99", "key revoked → all hold it p50 / p99",
                    "each replica's RSS", "last replica killed: its streams back"], rows))
    small = [r for r in runs if r["sidecars"] == 1000]
    verdicts = []
    if small:
        r = small[0]
        verdicts.append(f"apply to 1,000 sidecars over {r['replicas']} replicas all ACKed in ≤ 300 ms p99: "
                        f"{'met' if r['apply_p99_ms'] <= 300 else 'not met'} ({ms(r['apply_p99_ms'])})")
        verdicts.append(f"key revocation fleet-wide p99 ≤ 1 s across replicas: {'met' if r['revoke_p99_ms'] <= 1000 else 'not met'} "
                        f"({ms(r['revoke_p99_ms'])})")
    worst = max((r["failover_ms"] or float("inf")) for r in runs)
    verdicts.append(f"every orphaned sidecar back on another replica within 5 s: {'met' if worst <= 5000 else 'not met'} "
                    f"(at most {ms(worst)})")
    return out + "\n\nTargets: " + "; ".join(verdicts) + "."


def render_swap(res):
    d = res("swap")
    rows = []
    for ld in d["loads"]:
        m = re.match(r"(\d+) req/s on a fixed schedule", ld["load"])
        name = f"{int(m.group(1)):,} req/s fixed" if m else ld["load"].replace("closed-loop clients", "clients, closed loop")
        for i, ph in enumerate(ld["phases"]):
            phase = {"no applies": "no applies", "applies to another service": "100 applies/s, another service",
                     "applies to this sidecar": f"100 applies/s, this sidecar ({ph['swaps']:,} swaps)"}.get(ph["phase"], ph["phase"])
            rows.append([name if i == 0 else "", phase, n0(ph["requests"]), n0(ph["failed"]),
                         f"{ph['p50_ms'] * 1000:,.0f} µs" if ph["p50_ms"] < 1 else f"{ph['p50_ms']:.2f} ms",
                         f"{ph['p99_ms'] * 1000:,.0f} µs" if ph["p99_ms"] < 1 else f"{ph['p99_ms']:.2f} ms", f"{ph['cpu_us']:.1f}"])
    fixed = d["loads"][0]
    tail = ""
    if "p99_all_pct" in fixed:
        tail = (f"\n\nAt the fixed rate, this run's p99 moved {fixed['p99_all_pct']:+.1f} % against no applies at all and "
                f"{fixed['p99_swaps_pct']:+.1f} % against applies to another service; the sidecar's CPU per swap "
                f"~{fixed['cpu_per_swap_us']:.0f} µs.")
    return (source(d, f" ({fixed.get('rounds', '?')} interleaved rounds of {fixed.get('seconds', '?')} s per phase)") + "\n\n"
            + table(["load", "phase", "requests", "failed", "p50", "p99", "sidecar CPU µs/req"], rows) + tail)


def render_rollout(res):
    d = res("rollout")
    sh, pv, ab = d["shadow"], d["preview"], d["abort"]
    rows = [
        ["decision sampling, added per request (default 10 per route per second, the sampler alone)", f"{d['sampling_ns']} ns", "≤ 300 ns"],
        ["a candidate in shadow, added per request (full policy)", f"{sh['added_ns']} ns = {sh['ratio']:.2f}× the live decision ({sh['live_ns']} ns)", "≤ 1× the live decision"],
        [f"preview of {pv['samples']:,} samples, current and proposed {pv['routes']:,}-route policy", f"{pv['best_s']:.2f} s best, {pv['median_s']:.2f} s median", "≤ 2 s"],
        [f"bad canary: abort condition held → canary back on the live version ({ab['runs']} runs, {ab['rate']} req/s per sidecar)", f"{ab['median_s']:.1f} s median, {ab['max_s']:.1f} s max", "≤ 10 s"],
    ]
    return source(d, "") + "\n\n" + table(["what", "measured", "target"], rows)


BLOCKS = {
    "dataplane-per-core": render_dataplane_per_core,
    "dataplane-h1-small": render_dataplane_h1_small,
    "dataplane-latency": render_dataplane_latency,
    "dataplane-targets": render_dataplane_targets,
    "dataplane-anchors": render_dataplane_anchors,
    "dataplane-access-log": render_dataplane_access_log,
    "dataplane-workers": render_dataplane_workers,
    "dataplane-before-after": render_dataplane_before_after,
    "grpc": render_grpc,
    "retries": render_retries,
    "websocket": render_websocket,
    "tls": render_tls,
    "tracing": render_tracing,
    "auth": render_auth,
    "limits": render_limits,
    "quota": render_quota,
    "cp-scale": render_cp_scale,
    "cp-replicas": render_cp_replicas,
    "swap": render_swap,
    "rollout": render_rollout,
}

MARKER = re.compile(r"(<!-- bench:([a-z0-9-]+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.S)


def generate(text):
    cache = {}

    def res(bench):
        if bench not in cache:
            cache[bench] = load(bench)
        return cache[bench]

    seen = []

    def sub(m):
        name = m.group(2)
        if name not in BLOCKS:
            raise Missing(f"docs/performance.md: no renderer for block {name!r} (known: {', '.join(BLOCKS)})")
        seen.append(name)
        return m.group(1) + "\n" + BLOCKS[name](res).strip("\n") + "\n\n" + m.group(4)

    out = MARKER.sub(sub, text)
    opened = re.findall(r"<!-- bench:([a-z0-9-]+) -->", text)
    if sorted(opened) != sorted(seen):
        raise Missing(f"docs/performance.md: unclosed or malformed block(s): {sorted(set(opened) - set(seen))}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if docs/performance.md differs from the result files")
    ap.add_argument("--doc", default=DOC)
    ap.add_argument("--results", help="where the *-latest.json files are (default tests/bench/results)")
    args = ap.parse_args()
    if args.results:
        global RESULTS
        RESULTS = args.results
    with open(args.doc) as f:
        text = f.read()
    try:
        new = generate(text)
    except Missing as e:
        print(f"tables.py: {e}", file=sys.stderr)
        return 1
    rel = os.path.relpath(args.doc, ROOT)
    if args.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), rel, rel + " (from the results)"))
            print(f"tables.py: {rel} differs from tests/bench/results/*.json: run `python3 tests/bench/tables.py`", file=sys.stderr)
            return 1
        print(f"tables.py: {rel} matches the result files ({len(MARKER.findall(text))} blocks)")
        return 0
    if new != text:
        with open(args.doc, "w") as f:
            f.write(new)
        print(f"tables.py: {rel} rewritten from the result files")
    else:
        print(f"tables.py: {rel} already matches the result files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
