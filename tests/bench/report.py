#!/usr/bin/env python3
"""Turns a benchmark run into its result files under tests/bench/results/.

    report.py dataplane RAW.jsonl --json OUT.json --txt OUT.txt [--command CMD]
        dataplane.sh's raw records (one JSON object a line: meta, note, idle, tput, lat)
        -> the medians, CPU per request, per-core rates and latency quantiles per mode and
        target, as JSON (what tables.py reads) and as the text table.

    report.py from-txt BENCH TXT [--command CMD]  > OUT.json
        a benchmark's text table (what auth.sh, limits.sh, tls.sh, tracing.sh, quota.sh,
        cp-scale.sh and swap.sh print; also dataplane's own text form) -> its JSON. The
        scripts run this on their own output; it also converted the results kept from
        before the JSON files existed.

Every JSON file has: bench, schema, date (when measured), command (what reproduces it),
and the bench's own fields (documented by the function that builds them below).
"""

import argparse
import json
import re
import statistics
import sys

SCHEMA = 1


def num(v):
    """A raw string value as int or float where it is one."""
    if isinstance(v, (int, float)) or v is None:
        return v
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def median(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ dataplane from raw records


def dataplane_from_raw(path, command):
    """{modes: {mode: {target: {rps, rps_rounds, cpu_us, per_core, p50_us, p99_us, p999_us,
    add_p99_us, errors, lat_errors, rss_idle_mib, rss_load_mib}}}, targets, params, ...}"""
    meta, notes, idle, load = {}, [], {}, []
    tput, lat = {}, {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = {k: num(v) for k, v in json.loads(line).items()}
            kind = r.pop("kind")
            if kind == "meta":
                meta = r
            elif kind == "note":
                notes.append(r["text"])
            elif kind == "load":
                load.append({"at": r["at"], "loadavg": r["loadavg"], "others": r.get("others") or ""})
            elif kind == "idle":
                idle[r["target"]] = r["rss_mib"]
            elif kind == "tput":
                tput.setdefault((r["mode"], r["target"]), []).append(r)
            elif kind == "lat":
                lat.setdefault((r["mode"], r["target"]), []).append(r)
    targets = str(meta.get("targets", "")).split()
    modes = {}
    for mode in str(meta.get("modes", "")).split():
        rows = {}
        for t in targets:
            runs, lats = tput.get((mode, t), []), lat.get((mode, t), [])
            if not runs:
                continue
            ticks = sum(x["ticks"] for x in runs)
            reqs = sum(x["requests"] for x in runs if isinstance(x["requests"], int))
            cpu = ticks / runs[0]["clk"] * 1e6 / reqs if reqs else None
            rows[t] = {
                "rps": round(median([x["rps"] for x in runs]) or 0),
                "rps_rounds": [x["rps"] for x in runs],
                "cpu_us": round(cpu, 2) if cpu is not None else None,
                "per_core": round(1e6 / cpu) if cpu and t != "direct" else None,
                "p50_us": median([x["p50_us"] for x in lats]),
                "p99_us": median([x["p99_us"] for x in lats]),
                "p999_us": median([x["p999_us"] for x in lats]),
                "errors": sum(x["errors"] for x in runs if isinstance(x["errors"], int)),
                "lat_errors": sum(x.get("non2xx", 0) for x in lats if isinstance(x.get("non2xx"), int)),
                "lat_unfinished": sum(x.get("unfinished", 0) for x in lats if isinstance(x.get("unfinished"), int)),
                "rss_idle_mib": idle.get(t),
                "rss_load_mib": max((x["rss_mib"] for x in runs if isinstance(x["rss_mib"], (int, float))), default=None),
            }
        direct = rows.get("direct", {}).get("p99_us")
        for t, row in rows.items():
            row["add_p99_us"] = round(row["p99_us"] - direct) if direct is not None and row["p99_us"] is not None else None
        modes[mode] = rows
    return {
        "bench": "dataplane",
        "schema": SCHEMA,
        "date": meta.get("date"),
        "command": command,
        "git": meta.get("git"),
        "cpus": meta.get("cpus"),
        "kernel": meta.get("kernel"),
        "versions": meta.get("versions"),
        "pinned": bool(meta.get("pinned")),
        "params": {k: meta.get(k) for k in ("rounds", "dur", "dur_lat", "rate", "keys")},
        "base_name": meta.get("base_name") or None,
        "notes": notes,
        "load": load,
        "targets": targets,
        "modes": modes,
    }


def dataplane_txt(d):
    p = d["params"]
    out = [
        f"# Data-plane benchmark {d['date']}, {d['cpus']} CPUs: each proxy one worker on CPU 1 with the upstream; h2load on CPU 0",
        f"# {d['versions']}",
        f"# max throughput: h2load -c50 (h2: -c5 -m10) -D{p['dur']} x {p['rounds']} rounds (median req/s); cpu = the proxy's own CPU µs/req;",
        f"# per_core = 1e6 / cpu: requests/s one core of the proxy sustains. Fixed rate: {p['rate']} req/s over 10 connections, {p['dur_lat']}s x {p['rounds']}",
        "# rounds (median of each quantile; h2load's rate mode, not corrected for coordinated omission; over HTTP/2 its own pacing dominates:",
        "# compare the direct row);",
        "# latency in µs, add_p99 = p99 minus the direct row's. RSS in MiB: idle (before any load), and under this mode's load (mid-run, highest of the rounds).",
        f"# warden-big: 1,000 routes and {p['keys']} API keys.",
    ]
    out += [f"# note: {n}" for n in d.get("notes", [])]
    if d.get("load"):
        out.append("# machine load (1-min average; other processes on a CPU): " + "; ".join(
            f"{x['at']} {x['loadavg']}" + (f" ({x['others']})" if x["others"] else "") for x in d["load"]))
    fmt = "{:<15} {:>9} {:>8} {:>9} {:>7} {:>7} {:>7} {:>8} {:>5} {:>8} {:>8}"
    for mode, rows in d["modes"].items():
        out += ["", f"## {mode}", fmt.format("target", "req/s", "cpu_us", "per_core", "p50", "p99", "p99.9", "add_p99", "errs", "rss_idle", "rss_load")]
        for t, r in rows.items():
            def f(v, spec="{}"):
                return "NA" if v is None else spec.format(v)
            out.append(fmt.format(t, f(r["rps"]), f(r["cpu_us"], "{:.2f}"), "-" if r["per_core"] is None else r["per_core"],
                                  f(r["p50_us"], "{:.0f}"), f(r["p99_us"], "{:.0f}"), f(r["p999_us"], "{:.0f}"),
                                  f(r["add_p99_us"]), r["errors"] + r.get("lat_errors", 0), f(r["rss_idle_mib"]), f(r["rss_load_mib"])))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ text tables -> JSON

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def date_of(text):
    m = ISO.search(text)
    return m.group(0) if m else None


def rows_after(lines, header_word):
    """The whitespace-split rows following the header line starting with header_word,
    up to the first blank or comment line."""
    out, on = [], False
    for line in lines:
        if on:
            if not line.strip() or line.startswith("#"):
                break
            out.append(line.split())
        elif line.split()[:1] == [header_word]:
            on = True
    return out


def duration_ms(s):
    """Rust's Debug form of a Duration ('16.84ms', '1.17s', '2.003µs', 'Some(98.9ms)') in ms."""
    m = re.fullmatch(r"(?:Some\()?([0-9.]+)(ns|µs|us|ms|s)\)?", s.strip().rstrip(",;"))
    if not m:
        return None
    scale = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return round(float(m.group(1)) * scale, 3)


def parse_dataplane(text):
    lines = text.splitlines()
    d = {"bench": "dataplane", "date": date_of(lines[0]), "cpus": None, "versions": lines[1].lstrip("# ").strip(),
         "notes": [], "modes": {}, "targets": []}
    m = re.search(r"(\d+) CPUs", lines[0])
    d["cpus"] = int(m.group(1)) if m else None
    m = re.search(r"-D(\d+) x (\d+) rounds", text)
    m2 = re.search(r"Fixed rate: (\d+) req/s over 10 connections, (\d+)s", text)
    m3 = re.search(r"warden-big: 1,000 routes and (\d+) API keys", text)
    d["params"] = {"rounds": int(m.group(2)), "dur": int(m.group(1)), "dur_lat": int(m2.group(2)),
                   "rate": int(m2.group(1)), "keys": int(m3.group(1))}
    m = re.search(r"Spans the OTLP receiver got \(1 % sampling\): (.*)", text)
    if m:
        d["notes"].append(f"OTLP receiver (1 % sampling of warden-full and warden-big): {m.group(1).strip()}")
    d["notes"] += [line[len("# note: "):] for line in lines if line.startswith("# note: ")]
    mode = None
    for line in lines:
        if line.startswith("## "):
            mode = line[3:].strip()
            d["modes"][mode] = {}
            continue
        f = line.split()
        if mode is None or not f or f[0] == "target" or line.startswith("#"):
            continue
        t = f[0]
        if t not in d["targets"]:
            d["targets"].append(t)
        d["modes"][mode][t] = {
            "rps": num(f[1]), "cpu_us": num(f[2]), "per_core": None if f[3] == "-" else num(f[3]),
            "p50_us": num(f[4]), "p99_us": num(f[5]), "p999_us": num(f[6]), "add_p99_us": num(f[7]),
            "errors": num(f[8]), "rss_idle_mib": num(f[9]), "rss_load_mib": num(f[10]),
        }
    return d


def parse_tls(text):
    lines = text.splitlines()
    m = re.search(r"-d(\d+)s x (\d+) rounds", lines[0])
    return {"bench": "tls", "date": date_of(lines[0]), "params": {"dur": int(m.group(1)), "rounds": int(m.group(2))},
            "rows": [{"target": r[0], "rps": num(r[1]), "cpu_us": num(r[2])} for r in rows_after(lines, "target")]}


def parse_grpc(text):
    lines = text.splitlines()
    m = re.search(r"-D(\d+) x (\d+) rounds.*latency at (\d+) calls/s", lines[0])
    envoy = re.search(r"envoy ([^ ;]+)", lines[0])
    rows = [{"target": r[0], "rps": num(r[1]), "cpu_us": num(r[2]), "per_core": num(r[3]) if r[3] != "-" else None,
             "p50_us": num(r[4]), "p99_us": num(r[5]), "added_p99_us": num(r[6]) if r[6] != "-" else None}
            for r in rows_after(lines, "target")]
    return {"bench": "grpc", "date": date_of(lines[0]),
            "params": {"dur": int(m.group(1)), "rounds": int(m.group(2)), "rate": int(m.group(3)),
                       "envoy": envoy.group(1) if envoy else None},
            "rows": rows}


def parse_retries(text):
    lines = text.splitlines()
    m = re.search(r"-d(\d+)s x (\d+) rounds", lines[0])
    return {"bench": "retries", "date": date_of(lines[0]), "params": {"dur": int(m.group(1)), "rounds": int(m.group(2))},
            "rows": [{"target": r[0], "rps": num(r[1]), "cpu_us": num(r[2])} for r in rows_after(lines, "target")]}


def parse_websocket(text):
    lines = text.splitlines()
    m = re.search(r"over (\d+) connections x (\d+) in flight, (\d+)s x (\d+) rounds", lines[0])
    nginx = re.search(r"; (nginx/[^ ;]+)", lines[0])
    rows = [{"target": r[0], "size": num(r[1]), "eps": num(r[2]), "cpu_us": num(r[3]),
             "per_core": num(r[4]) if r[4] != "-" else None, "vs_nginx": num(r[5]) if r[5] != "-" else None}
            for r in rows_after(lines, "target")]
    return {"bench": "websocket", "date": date_of(lines[0]),
            "params": {"conns": int(m.group(1)), "window": int(m.group(2)), "dur": int(m.group(3)), "rounds": int(m.group(4)),
                       "nginx": nginx.group(1) if nginx else None},
            "rows": rows}


def parse_tracing(text):
    lines = text.splitlines()
    m = re.search(r"-d(\d+)s x (\d+) rounds", lines[0])
    spans = re.search(r"spans received by the sink: spans (\d+)", text)
    return {"bench": "tracing", "date": date_of(lines[0]), "params": {"dur": int(m.group(1)), "rounds": int(m.group(2))},
            "spans": int(spans.group(1)) if spans else None,
            "rows": [{"tracing": r[0], "rps": num(r[1]), "cpu_us": num(r[2]), "added_us": num(r[3]), "p99_us": num(r[4])}
                     for r in rows_after(lines, "tracing")]}


def parse_auth(text):
    lines = text.splitlines()
    m = re.search(r"-d(\d+)s x (\d+) rounds", lines[0])
    keys = re.search(r"(\d+) API keys loaded", text)
    unc = re.search(r"jwt-ALG-new: (\d+) distinct tokens", text)
    rev = re.search(r"\((\d+) revocations.*\n\s*p50 ([0-9.]+) ms\s+p99 ([0-9.]+) ms\s+max ([0-9.]+) ms", text)
    return {"bench": "auth", "date": date_of(lines[0]),
            "params": {"dur": int(m.group(1)), "rounds": int(m.group(2)), "keys": int(keys.group(1)),
                       "uncached_tokens": int(unc.group(1))},
            "rows": [{"target": r[0], "rps": num(r[1]), "cpu_us": num(r[2]), "added_us": num(r[3])}
                     for r in rows_after(lines, "target")],
            "revocation": {"count": int(rev.group(1)), "p50_ms": float(rev.group(2)), "p99_ms": float(rev.group(3)),
                           "max_ms": float(rev.group(4))} if rev else None}


def parse_limits(text):
    lines = text.splitlines()
    m = re.search(r"-d(\d+)s x (\d+) rounds", lines[0])
    rows = [{"route": " ".join(r[:-3]), "rps": num(r[-3]), "cpu_us": num(r[-2]), "added_us": num(r[-1])}
            for r in rows_after(lines, "route")]
    fl = re.search(r"Flood: (\d+) requests from random addresses in (\d+) s .*--limit-keys (\d+)\n"
                   r"RSS before ([0-9.]+) MiB, after ([0-9.]+) MiB; keys tracked (\d+), active keys evicted (\d+)", text)
    flood = None
    if fl:
        flood = dict(zip(["requests", "seconds", "limit_keys", "rss_before_mib", "rss_after_mib", "keys", "evicted"],
                         [num(x) for x in fl.groups()]))
    return {"bench": "limits", "date": date_of(lines[0]), "params": {"dur": int(m.group(1)), "rounds": int(m.group(2))},
            "rows": rows, "flood": flood}


def parse_quota(text):
    lines = text.splitlines()
    head = re.search(r"(\d+) sidecars, quota (\S+) burst (\d+), (\d+)x offered, (\d+) s", lines[0])
    runs, cur = [], None
    for line in lines:
        if line.startswith("## spread "):
            cur = {"spread": [int(x) for x in line.split()[2].split(",")], "sidecars": []}
            runs.append(cur)
        elif cur is not None:
            f = line.split()
            if len(f) == 5 and f[0].isdigit():
                cur["sidecars"].append(dict(zip(["sidecar", "weight", "offered_per_s", "sent", "admitted"], map(num, f))))
            m = re.match(r"quota \S+ over \d+ s = (\d+) requests", line)
            if m:
                cur["quota"] = int(m.group(1))
            m = re.match(r"admitted (\d+) = ([+-]?[0-9.]+)% of the quota", line)
            if m:
                cur["admitted"], cur["vs_quota_pct"] = int(m.group(1)), float(m.group(2))
    return {"bench": "quota", "date": date_of(lines[0]),
            "params": {"sidecars": int(head.group(1)), "rate": head.group(2), "burst": int(head.group(3)),
                       "times": int(head.group(4)), "seconds": int(head.group(5))},
            "runs": runs}


def parse_cp_scale(text):
    lines = text.splitlines()
    runs, cur = [], None
    for line in lines:
        if line.startswith("## "):
            title = line[3:].strip()
            m = re.match(r"(\d+) sidecars(?:, a (\d+)-route policy)?(?: over (\d+) replicas)?", title)
            cur = {"title": title, "sidecars": int(m.group(1)), "routes": int(m.group(2)) if m.group(2) else None}
            if m.group(3):
                cur["replicas"] = int(m.group(3))
            runs.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"(\d+) streams over (\d+) connections: all on v1 after (.*)", line)
        if m:
            cur["connections"], cur["connected_ms"] = int(m.group(2)), duration_ms(m.group(3))
        m = re.match(r"\d+ streams over \d+ replicas \((\d+) connections each\): all on v1 after (.*)", line)
        if m:
            cur["connections"], cur["connected_ms"] = int(m.group(1)) * cur["replicas"], duration_ms(m.group(2))
        m = re.match(r"key revocation through replica 1 -> every stream holds it.*: p50 (\S+), p99 (\S+), max (\S+)", line)
        if m:
            cur["revoke_p50_ms"], cur["revoke_p99_ms"], cur["revoke_max_ms"] = (duration_ms(x) for x in m.groups())
        m = re.match(r"replicas' RSS \(MiB\) with \d+ streams spread over them: (.*)", line)
        if m:
            cur["replica_rss_mib"] = [float(x) for x in m.group(1).split(",")]
        m = re.match(r"replica \d+ of \d+ killed \(kill -9\): its (\d+) streams back on the others after (.*)", line)
        if m:
            cur["orphans"], cur["failover_ms"] = int(m.group(1)), duration_ms(m.group(2))
        m = re.match(r"apply (?:through replica 1 )?-> all \d+ ACKed.*: p50 (\S+), p99 (\S+), max (\S+)", line)
        if m:
            cur["apply_p50_ms"], cur["apply_p99_ms"], cur["apply_max_ms"] = (duration_ms(x) for x in m.groups())
        m = re.match(r"control plane: RSS ([0-9.]+) MiB with the streams idle, ([0-9.]+) MiB after the applies; CPU ([0-9.]+) s", line)
        if m:
            cur["rss_idle_mib"], cur["rss_after_mib"], cur["cpu_s"] = (float(x) for x in m.groups())
        m = re.match(r"reconnect storm: (\d+) of (\d+) streams back (\S+) after the restart; the next apply reached all in (\S+); RSS ([0-9.]+) MiB", line)
        if m:
            cur["storm_back"], cur["storm_of"] = int(m.group(1)), int(m.group(2))
            cur["storm_ms"], cur["storm_next_apply_ms"] = duration_ms(m.group(3)), duration_ms(m.group(4))
            cur["storm_rss_mib"] = float(m.group(5))
    m = re.search(r"one service, (\d+) applies", lines[0])
    return {"bench": "cp-scale", "date": date_of(lines[0]), "params": {"applies": int(m.group(1))}, "runs": runs}


def parse_swap(text):
    lines = text.splitlines()
    loads, cur = [], None
    for line in lines:
        if line.startswith("## "):
            cur = {"load": line[3:].strip(), "phases": []}
            loads.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"(.+?)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+([0-9.]+)$", line)
        if m and not line.startswith("phase"):
            cur["phases"].append({"phase": m.group(1).strip(), "requests": int(m.group(2)), "failed": int(m.group(3)),
                                  "p50_ms": duration_ms(m.group(4)), "p99_ms": duration_ms(m.group(5)),
                                  "swaps": int(m.group(6)), "cpu_us": float(m.group(7))})
        m = re.match(r"(\d+) rounds of (\d+) s per phase; (\d+) applies/s offered: (\d+), stored (\d+); sidecar CPU per swap ~([0-9.]+) µs", line)
        if m:
            cur.update(rounds=int(m.group(1)), seconds=int(m.group(2)), applies_offered=int(m.group(4)),
                       applies_stored=int(m.group(5)), cpu_per_swap_us=float(m.group(6)))
        m = re.match(r"p99 moved ([+-]?[0-9.]+)% by the swaps .*, ([+-]?[0-9.]+)% in all", line)
        if m:
            cur["p99_swaps_pct"], cur["p99_all_pct"] = float(m.group(1)), float(m.group(2))
    return {"bench": "swap", "date": date_of(lines[0]), "loads": loads}


def parse_rollout(text):
    """Safe policy changes: sampling_ns (added per request), shadow (live_ns, with_ns,
    added_ns, ratio), preview (samples, routes, best_s, median_s), abort (runs, rate,
    median_s, max_s, per_run_s)."""
    lines = text.splitlines()
    d = {"bench": "rollout", "date": date_of(lines[0])}
    runs = []
    for line in lines:
        m = re.search(r": (\d+) ns per request added", line)
        if m and line.startswith("sampling"):
            d["sampling_ns"] = int(m.group(1))
        m = re.search(r"live decision (\d+) ns; with a candidate in shadow (\d+) ns; the shadow adds (\d+) ns = ([0-9.]+)x", line)
        if m:
            d["shadow"] = {"live_ns": int(m.group(1)), "with_ns": int(m.group(2)), "added_ns": int(m.group(3)), "ratio": float(m.group(4))}
        m = re.search(r"preview: (\d+) samples, (\d+) routes, .*best ([0-9.]+) s, median ([0-9.]+) s", line)
        if m:
            d["preview"] = {"samples": int(m.group(1)), "routes": int(m.group(2)), "best_s": float(m.group(3)), "median_s": float(m.group(4))}
        m = re.match(r"run \d+: canary back on v\d+ ([0-9.]+) s after", line)
        if m:
            runs.append(float(m.group(1)))
        m = re.search(r"median ([0-9.]+) s, max ([0-9.]+) s over (\d+) runs at (\d+) req/s", line)
        if m and line.startswith("abort"):
            d["abort"] = {"median_s": float(m.group(1)), "max_s": float(m.group(2)), "runs": int(m.group(3)), "rate": int(m.group(4)), "per_run_s": runs}
    return d


PARSERS = {"dataplane": parse_dataplane, "grpc": parse_grpc, "retries": parse_retries, "websocket": parse_websocket, "tls": parse_tls, "tracing": parse_tracing, "auth": parse_auth,
           "limits": parse_limits, "quota": parse_quota, "cp-scale": parse_cp_scale, "swap": parse_swap, "rollout": parse_rollout}


def from_txt(bench, path, command):
    with open(path) as f:
        d = PARSERS[bench](f.read())
    d = {"bench": d.pop("bench"), "schema": SCHEMA, "date": d.pop("date"), "command": command, **d}
    return d


def dump(d):
    return json.dumps(d, indent=1, ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("dataplane")
    a.add_argument("raw")
    a.add_argument("--json", required=True)
    a.add_argument("--txt", required=True)
    a.add_argument("--command", default="tests/bench/run.sh dataplane")
    b = sub.add_parser("from-txt")
    b.add_argument("bench", choices=sorted(PARSERS))
    b.add_argument("txt")
    b.add_argument("--command")
    b.add_argument("--converted", action="store_true",
                   help="mark the JSON as converted from a text table written before the JSON files existed")
    args = ap.parse_args()
    if args.cmd == "dataplane":
        d = dataplane_from_raw(args.raw, args.command)
        with open(args.json, "w") as f:
            f.write(dump(d))
        with open(args.txt, "w") as f:
            f.write(dataplane_txt(d))
    else:
        d = from_txt(args.bench, args.txt, args.command or f"tests/bench/run.sh {args.bench}")
        if args.converted:
            d["converted_from"] = f"tests/bench/results/{args.bench}-latest.txt"
        sys.stdout.write(dump(d))


if __name__ == "__main__":
    main()
