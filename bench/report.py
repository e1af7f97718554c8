#!/usr/bin/python3
"""Prints the performance report of scripts/bench.sh from the JSON files of one run.

Reads, from --dir: raw_<model>.json (microbatch-rawbench --format json) and
<name>.json (microbatch bench --format json) for identity and cached (each
level through bare gRPC Echo first, then Predict: --with-echo), resnet18,
resnet18_nobatch, mlp_bench, mlp_bench_nobatch, r5 and protocols (identity
through v1, v2 and REST in one run). Missing files show as "-" and their
results as MISS. Standard library only.
"""
import argparse
import json
import os
import sys


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def table(header, rows, left=1):
    """The first `left` columns left-aligned, the others right-aligned."""
    width = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            width[i] = max(width[i], len(cell))
    lines = []
    for row in [header] + rows:
        cells = [c.ljust(width[i]) if i < left else c.rjust(width[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_vs(value, goal, digits=2):
    """`value` with `digits` decimals, or more where that rounding would show
    it equal to `goal` (0.8999 against 0.90 reads 0.900, not 0.90)."""
    if value is None:
        return "-"
    while digits < 4 and value != goal and round(value, digits) == round(goal, digits):
        digits += 1
    return f"{value:.{digits}f}"


def raw_table(raw):
    if raw is None:
        return "(missing)"
    base = raw.get("batch1_rows_per_s")
    rows = []
    for s in raw["sizes"]:
        lat = s["latency_ms"]
        rows.append([str(s["batch"]), str(s["iterations"]), fmt(s["rows_per_s"]), fmt(lat["p50"], 3),
                     fmt(lat["p99"], 3), fmt(s.get("first_ms"), 1),
                     (fmt(s["rows_per_s"] / base, 2) + "x") if base else "-"])
    threads = raw.get("intra_op_threads") or "default"
    head = (f"raw {raw['model']} v{raw['version']} (in process, intra-op threads {threads}): "
            f"T(1) {fmt(base)} rows/s, best {fmt(raw['best_rows_per_s'])} rows/s at batch {raw['best_batch']}")
    return head + "\n" + table(["batch", "iters", "rows/s", "p50_ms", "p99_ms", "first_ms", "vs_b1"], rows)


def level_name(level):
    if level["mode"] == "concurrency":
        return f"c={int(level['level'])}"
    return f"r={level['level']:.0f}"


def served_table(report, title):
    if report is None:
        return f"{title}: (missing)"
    any_server = any("server" in l for l in report["levels"])
    any_deadline = report.get("deadline_ms", 0) > 0
    protocols = report.get("protocols") or []
    any_protocol = len(protocols) > 1 or any(l.get("protocol", "v1") != "v1" for l in report["levels"])
    any_round = len(rounds_of(report)) > 1
    header = ["level", "win", "req/s", "rows/s", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]
    if any_protocol:
        header = ["proto"] + header
    if any_round:
        header = ["round"] + header
    if any_deadline:
        header += ["goodput/s", "late"]
    if any_server:
        header += ["srv_ms", "srv_queue_ms", "srv_compute_ms", "srv_batch"]
    header += ["cli_cpu", "srv_cpu", "errors"]
    rows = []
    for l in report["levels"]:
        lat = l["latency_ms"]
        row = [level_name(l), f"{l['windows']}{'' if l['stable'] else '*'}", fmt(l["throughput"]),
               fmt(l["rows_per_s"]), fmt(lat["p50"], 2), fmt(lat["p90"], 2), fmt(lat["p99"], 2),
               fmt(lat["p99.9"], 2), fmt(lat["max"], 2)]
        if any_protocol:
            row = [l.get("protocol", "v1")] + row
        if any_round:
            row = [str(l.get("round", 1))] + row
        if any_deadline:
            row += [fmt(l["goodput"]), str(l["late"])]
        if any_server:
            s = l.get("server")
            row += ([fmt(s.get("request_ms"), 3), fmt(s["queue_wait_ms"], 3), fmt(s["compute_ms"], 3),
                     fmt(s["batch_rows"], 2)] if s else ["-"] * 4)
        row += [fmt(l.get("client_cpu_cores"), 2), fmt(l.get("server_cpu_cores"), 2)]
        errors = ",".join(f"{k}:{v}" for k, v in sorted(l["errors_by_code"].items())) or "0"
        row.append(errors)
        rows.append(row)
    if len(protocols) > 1:
        head = (f"{title}: {report['model']} v{report['version']}, {report['rows']} row(s)/request"
                + (f", deadline {report['deadline_ms']} ms" if any_deadline else "") + "; front ends: "
                + ", ".join(f"{p['protocol']} {p['method']} ({p['payload_bytes']} B)" for p in protocols))
    else:
        head = (f"{title}: {report['method']} {report['model']} v{report['version']}, {report['rows']} row(s)/request, "
                f"{report['payload_bytes']} B payload, {report['channels']} channels"
                + (f", deadline {report['deadline_ms']} ms" if any_deadline else ""))
    return head + "\n" + table(header, rows, left=1 + any_protocol + any_round)


def protocol_level(report, protocol, mode, level, rnd=None):
    """The level of `protocol` at (mode, level) in a multi-protocol report (in
    round `rnd` when given, else the first), or None."""
    if not report:
        return None
    for l in report["levels"]:
        if (l.get("protocol", "v1") == protocol and l["mode"] == mode and abs(l["level"] - level) < 1e-9
                and (rnd is None or l.get("round", 1) == rnd)):
            return l
    return None


def protocol_lines(report):
    """Throughput of each front end relative to v1 at each level, and c=1 latency of each."""
    if not report:
        return ["front ends: (missing)"]
    names = [p["protocol"] for p in report.get("protocols", [])] or ["v1"]
    lines = []
    for l in report["levels"]:
        if l.get("protocol", "v1") != "v1":
            continue
        parts = []
        for name in names[1:]:
            other = protocol_level(report, name, l["mode"], l["level"], l.get("round", 1))
            parts.append(f"{name}/v1 {fmt(ratio(other['throughput'] if other else None, l['throughput']), 3)}")
        if parts:
            where = f"round {l['round']} " if len(rounds_of(report)) > 1 else ""
            lines.append(f"{where}{level_name(l)} throughput: " + ", ".join(parts))
    c1 = [(name, protocol_level(report, name, "concurrency", 1)) for name in names]
    lines.append("c=1 latency p50 / p99: " + ", ".join(
        f"{name} {fmt(l['latency_ms']['p50'], 3) if l else '-'} / {fmt(l['latency_ms']['p99'], 3) if l else '-'} ms"
        for name, l in c1))
    missing = [n for n in ("v2", "rest") if n not in names]
    if missing:
        lines.append("not measured (the server does not serve it): " + ", ".join(missing))
    return lines


def only(report, protocol):
    """`report` with the levels of `protocol` alone (None when it has none)."""
    if not report:
        return None
    levels = [l for l in report["levels"] if l.get("protocol", "v1") == protocol]
    return dict(report, levels=levels) if levels else None


def peak(report, key="rows_per_s"):
    if not report or not report["levels"]:
        return None
    return max(l[key] for l in report["levels"])


def at_level(report, mode, level, key="rows_per_s"):
    if not report:
        return None
    for l in report["levels"]:
        if l["mode"] == mode and abs(l["level"] - level) < 1e-9:
            return l[key]
    return None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def rounds_of(report):
    """The rounds of a `microbatch bench --rounds` run, in order ([1] for a run without)."""
    if not report:
        return []
    return sorted({l.get("round", 1) for l in report["levels"]})


def in_round(report, r):
    """`report` with the levels of round `r` alone."""
    return dict(report, levels=[l for l in report["levels"] if l.get("round", 1) == r])


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def per_round(report, measure):
    """`measure` of each round of `report` (a value or None) and the median of
    those that are not None: a comparison between front ends measured in turn
    within each round, so that the machine's drift between rounds cancels."""
    values = [measure(in_round(report, r)) for r in rounds_of(report)]
    return median([v for v in values if v is not None]), values


def value_text(plain, values, value, goal, digits=2, unit=""):
    """A result's value: `plain` (e.g. "a / b") = value for a single round;
    "median of 3 rounds (0.91, 0.95, 0.88) = 0.91" for several."""
    if len(values) < 2:
        return f"{plain} = {fmt_vs(value, goal, digits)}{unit}"
    return (f"median of {len(values)} rounds ({', '.join(fmt(v, digits) for v in values)}) = "
            f"{fmt_vs(value, goal, digits)}{unit}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--r1-goal", type=float, default=0.90)
    parser.add_argument("--r2-goal", type=float, default=0.35)
    parser.add_argument("--r3-goal", type=float, default=0.85)
    parser.add_argument("--r4-goal", type=float, default=0.90)
    parser.add_argument("--r5-goal", type=float, default=0.90)
    parser.add_argument("--r4-concurrency", type=float, default=64)
    parser.add_argument("--v2-goal", type=float, default=0.95)
    parser.add_argument("--v2-concurrency", type=float, default=16)
    parser.add_argument("--c1-goal", type=float, default=0.90)
    parser.add_argument("--c2-goal", type=float, default=0.05)
    parser.add_argument("--m1-goal", type=float, default=0.95)
    parser.add_argument("--l1-goal", type=float, default=1.5)
    parser.add_argument("--l2-goal", type=float, default=0.75)
    parser.add_argument("--l3-goal", type=float, default=0.90)
    args = parser.parse_args()
    d = args.dir
    raw_resnet, raw_mlp = load(d, "raw_resnet18"), load(d, "raw_mlp_bench")
    identity_run = load(d, "identity")
    echo, identity = only(identity_run, "echo"), only(identity_run, "v1")
    resnet, resnet_nb = load(d, "resnet18"), load(d, "resnet18_nobatch")
    mlp, mlp_nb = load(d, "mlp_bench"), load(d, "mlp_bench_nobatch")
    r5 = load(d, "r5")
    protocols = load(d, "protocols")
    cached_run = load(d, "cached")
    cached, cached_echo = only(cached_run, "v1"), only(cached_run, "echo")
    resnet_c1_run = load(d, "resnet18_c1")
    resnet_c1, resnet_c1_echo = only(resnet_c1_run, "v1"), only(resnet_c1_run, "echo")
    b1_runs = [r.get("batch1_rows_per_s") for r in (load(d, "raw_resnet18_b1_before"),
                                                     load(d, "raw_resnet18_b1_after")) if r]

    out = []
    out.append("== Raw model limits (microbatch-rawbench: same loading code as the server, no gRPC, no batcher) ==")
    out.append(raw_table(raw_resnet))
    out.append("")
    out.append(raw_table(raw_mlp))
    out.append("")
    out.append("== Served (microbatch bench, closed loop unless r=; * = not stable within the window limit) ==")
    for report, title in [(identity_run, "identity model, each level after bare gRPC Echo (R3)"),
                          (resnet_c1_run, "resnet18 at concurrency 1, after bare gRPC Echo of its payload (R2)"), (resnet, "resnet18, batching"), (resnet_nb, "resnet18, max_batch_size 1"),
                          (mlp, "mlp_bench, batching"), (mlp_nb, "mlp_bench, max_batch_size 1"),
                          (r5, "resnet18 overload (R5)")]:
        out.append(served_table(report, title))
        out.append("")

    out.append(served_table(cached_run, "identity with the response cache, every call a hit, each level after "
                                        "bare gRPC Echo (C1, C2)"))
    out.append("")
    out.append(served_table(protocols, "identity through each front end in turn (#13)"))
    out.extend(protocol_lines(protocols))
    out.append("")

    # T(1): the raw batch-1 runs around the served concurrency-1 run (else the table's).
    t1 = sum(b1_runs) / len(b1_runs) if b1_runs else (raw_resnet.get("batch1_rows_per_s") if raw_resnet else None)
    if b1_runs:
        out.append(f"raw resnet18 T(1) around the served concurrency-1 run: "
                   f"{' and '.join(fmt(v) for v in b1_runs)} rows/s, mean {fmt(t1)} (the T(1) of R1 and R2)")
        out.append("")
    served_peak = peak(resnet)
    results = []

    # R1: served rows/s at the best concurrency / raw best-batch rows/s.
    raw_best = raw_resnet.get("best_rows_per_s") if raw_resnet else None
    r1 = ratio(served_peak, raw_best)
    results.append(("R1", "resnet18 served rows/s at the best concurrency / raw best-batch rows/s",
                    f"{fmt(served_peak)} / {fmt(raw_best)} = {fmt_vs(r1, args.r1_goal)}", f">= {args.r1_goal:.2f}",
                    r1 is not None and r1 >= args.r1_goal))
    # R2: p50 latency at concurrency 1 minus the raw single-row latency T(1).
    p50_c1 = None
    for rep in (resnet_c1, resnet):
        if rep and p50_c1 is None:
            for l in rep["levels"]:
                if l["mode"] == "concurrency" and abs(l["level"] - 1) < 1e-9:
                    p50_c1 = l["latency_ms"]["p50"]
    t1_ms = 1000.0 / t1 if t1 else None
    r2 = None if p50_c1 is None or t1_ms is None else p50_c1 - t1_ms
    results.append(("R2", "resnet18 p50 at concurrency 1 - raw single-row latency T(1)",
                    f"{fmt(p50_c1, 3)} - {fmt(t1_ms, 3)} = {fmt_vs(r2, args.r2_goal, 3)} ms", f"<= {args.r2_goal:.2f} ms",
                    r2 is not None and r2 <= args.r2_goal))
    # Where R2's time goes: the transport alone (Echo of the same payload,
    # same client, just before) and the server's own request time beyond the
    # model's (from /metrics).
    echo_c1_level = (resnet_c1_echo or {}).get("levels", [None])[0]
    c1_server = ((resnet_c1 or {}).get("levels", [{}])[0] or {}).get("server") or {}
    echo_c1_p50 = echo_c1_level["latency_ms"]["p50"] if echo_c1_level else None
    own = (c1_server["request_ms"] - c1_server["compute_ms"]
           if c1_server.get("request_ms") is not None and c1_server.get("compute_ms") is not None else None)
    info_r2 = (f"R2 parts (information): bare gRPC Echo p50 at c=1 with the same payload {fmt(echo_c1_p50, 3)} ms; "
               f"inside the server, request time - model time {fmt(own, 3)} ms "
               f"(model time {fmt(c1_server.get('compute_ms'), 3)} ms served vs T(1) {fmt(t1_ms, 3)} ms raw)")
    def peak_ratio(run, front):
        """Peak req/s of `front` / peak req/s of Echo, within one round."""
        return ratio(peak(only(run, front), "throughput"), peak(only(run, "echo"), "throughput"))

    echo_peak, identity_peak = peak(echo, "throughput"), peak(identity, "throughput")
    r3, r3_rounds = per_round(identity_run, lambda run: peak_ratio(run, "v1"))
    results.append(("R3", "identity Predict peak req/s / bare gRPC Echo peak req/s (same payload, levels alternating)",
                    value_text(f"{fmt(identity_peak)} / {fmt(echo_peak)}", r3_rounds, r3, args.r3_goal),
                    f">= {args.r3_goal:.2f}", r3 is not None and r3 >= args.r3_goal))
    c = args.r4_concurrency

    def r4_of(served, served_nb, raw):
        b = at_level(served, "concurrency", c)
        nb = at_level(served_nb, "concurrency", c)
        raw_gain = ratio(raw.get("best_rows_per_s"), raw.get("batch1_rows_per_s")) if raw else None
        served_gain = ratio(b, nb)
        return ratio(served_gain, raw_gain), b, nb, served_gain, raw_gain

    r4, b, nb, sg, rg = r4_of(resnet, resnet_nb, raw_resnet)
    results.append(("R4", f"resnet18 (served batching / max_batch_size 1 at c={c:.0f}) / (raw best / raw T(1))",
                    f"({fmt(b)} / {fmt(nb)} = {fmt(sg, 2)}x) / {fmt(rg, 2)}x = {fmt_vs(r4, args.r4_goal)}",
                    f">= {args.r4_goal:.2f}", r4 is not None and r4 >= args.r4_goal))
    r4m, bm, nbm, sgm, rgm = r4_of(mlp, mlp_nb, raw_mlp)
    info_r4_mlp = (f"R4 for mlp_bench (information): ({fmt(bm)} / {fmt(nbm)} = {fmt(sgm, 2)}x) / "
                   f"{fmt(rgm, 2)}x = {fmt(r4m, 2)}")

    goodput = late = rate = None
    if r5 and r5["levels"]:
        l5 = r5["levels"][0]
        goodput, late, rate = l5["goodput"], l5["late"], l5["level"]
    capacity = peak(resnet, "throughput")
    r5_ratio = ratio(goodput, capacity)
    results.append(("R5", f"resnet18 open loop at 2x capacity ({fmt(rate, 0)} req/s), deadline "
                          f"{r5['deadline_ms'] if r5 else '-'} ms: goodput / capacity; late OK responses",
                    f"{fmt(goodput)} / {fmt(capacity)} = {fmt_vs(r5_ratio, args.r5_goal)}; late {late if late is not None else '-'}",
                    f">= {args.r5_goal:.2f}; late = 0",
                    r5_ratio is not None and r5_ratio >= args.r5_goal and late == 0))

    # V2: v2 ModelInfer throughput / v1 Predict throughput, same run, same payload.
    vc = args.v2_concurrency

    def v2_over_v1(run):
        v1_level = protocol_level(run, "v1", "concurrency", vc)
        v2_level = protocol_level(run, "v2", "concurrency", vc)
        return ratio(v2_level["throughput"] if v2_level else None, v1_level["throughput"] if v1_level else None)

    v1_level = protocol_level(protocols, "v1", "concurrency", vc)
    v2_level = protocol_level(protocols, "v2", "concurrency", vc)
    v2_ratio, v2_rounds = per_round(protocols, v2_over_v1)
    results.append(("V2", f"identity v2 ModelInfer / v1 Predict req/s at c={vc:.0f} (same run, levels alternating)",
                    value_text(f"{fmt(v2_level['throughput'] if v2_level else None)} / "
                               f"{fmt(v1_level['throughput'] if v1_level else None)}", v2_rounds, v2_ratio,
                               args.v2_goal, 3),
                    f">= {args.v2_goal:.2f}", v2_ratio is not None and v2_ratio >= args.v2_goal))

    # C1/C2: response-cache hits against bare gRPC Echo (same payload).
    cached_peak, cached_echo_peak = peak(cached, "throughput"), peak(cached_echo, "throughput")
    c1, c1_rounds = per_round(cached_run, lambda run: peak_ratio(run, "v1"))
    results.append(("C1", "cache-hit peak req/s / bare gRPC Echo peak req/s (same payload, levels alternating)",
                    value_text(f"{fmt(cached_peak)} / {fmt(cached_echo_peak)}", c1_rounds, c1, args.c1_goal),
                    f">= {args.c1_goal:.2f}", c1 is not None and c1 >= args.c1_goal))

    def p50_at_1(report):
        for l in (report or {}).get("levels", []):
            if l["mode"] == "concurrency" and abs(l["level"] - 1) < 1e-9:
                return l["latency_ms"]["p50"]
        return None

    def hit_minus_echo(run):
        hit, bare = p50_at_1(only(run, "v1")), p50_at_1(only(run, "echo"))
        return None if hit is None or bare is None else hit - bare

    hit_p50, echo_p50 = p50_at_1(cached), p50_at_1(cached_echo)
    c2, c2_rounds = per_round(cached_run, hit_minus_echo)
    results.append(("C2", "cache-hit p50 at concurrency 1 - Echo p50 at concurrency 1",
                    value_text(f"{fmt(hit_p50, 3)} - {fmt(echo_p50, 3)}", c2_rounds, c2, args.c2_goal, 3, " ms"),
                    f"<= {args.c2_goal:.2f} ms", c2 is not None and c2 <= args.c2_goal))

    # M1: the MLP with 1-row requests at c=64 against its raw best batch.
    mlp64 = at_level(mlp, "concurrency", 64)
    raw_mlp_best = raw_mlp.get("best_rows_per_s") if raw_mlp else None
    m1 = ratio(mlp64, raw_mlp_best)
    results.append(("M1", "mlp_bench served rows/s (1-row requests, c=64) / raw best-batch rows/s",
                    f"{fmt(mlp64)} / {fmt(raw_mlp_best)} = {fmt_vs(m1, args.m1_goal)}", f">= {args.m1_goal:.2f}",
                    m1 is not None and m1 >= args.m1_goal))

    # L1-L3: live Predict and a BatchPredict stream on one model (bench/live_bulk.py).
    live_bulk = load(d, "live_bulk")
    lb = (live_bulk or {}).get("budgets", {}).get((live_bulk or {}).get("report_budget", "0"))
    med = (lb or {}).get("median", {})
    lb_raw = (live_bulk or {}).get("raw_best_rows_per_s")
    lb_name = (lb or {}).get("model", "-")
    l1 = ratio(med.get("c1_mixed_p99"), med.get("c1_alone_p99"))
    results.append(("L1", f"{lb_name}: Predict p99 at c=1 with a saturating BatchPredict stream / without",
                    f"{fmt(med.get('c1_mixed_p99'), 2)} / {fmt(med.get('c1_alone_p99'), 2)} ms = {fmt_vs(l1, args.l1_goal)}",
                    f"<= {args.l1_goal:.2f}", l1 is not None and l1 <= args.l1_goal))
    share = (live_bulk or {}).get("live_share", 0.2)
    l2 = ratio(med.get("bulk_mixed"), lb_raw)
    results.append(("L2", f"{lb_name}: bulk rows/s with Predict at {share:.0%} of raw capacity / raw best-batch",
                    f"{fmt(med.get('bulk_mixed'))} / {fmt(lb_raw)} = {fmt_vs(l2, args.l2_goal)}", f">= {args.l2_goal:.2f}",
                    l2 is not None and l2 >= args.l2_goal))
    l3 = ratio(med.get("bulk_alone"), lb_raw)
    results.append(("L3", f"{lb_name}: bulk rows/s without Predict traffic / raw best-batch",
                    f"{fmt(med.get('bulk_alone'))} / {fmt(lb_raw)} = {fmt_vs(l3, args.l3_goal)}", f">= {args.l3_goal:.2f}",
                    l3 is not None and l3 >= args.l3_goal))
    if live_bulk:
        out.append(f"== Live and bulk on one model (bench/live_bulk.py; medians of {len((lb or {}).get('runs', {}).get('c1_alone_p99', []))} "
                   f"rounds; live open loop at {fmt(live_bulk['live_rate'])} req/s) ==")
        rows = []
        for budget, v in live_bulk["budgets"].items():
            m = v["median"]
            rows.append([v["model"], "off" if int(budget) < 0 else ("default" if budget == "0" else f"{budget} us"),
                         fmt(m.get("c1_alone_p99"), 2), fmt(m.get("c1_mixed_p99"), 2),
                         fmt(ratio(m.get("c1_mixed_p99"), m.get("c1_alone_p99")), 2),
                         fmt(m.get("rate_alone_p99"), 2), fmt(m.get("rate_mixed_p99"), 2),
                         fmt(m.get("bulk_alone")), fmt(m.get("bulk_mixed")),
                         fmt(ratio(m.get("bulk_alone"), lb_raw), 2), fmt(ratio(m.get("bulk_mixed"), lb_raw), 2)])
        out.append(table(["model", "bulk_run_budget", "c1_p99", "c1_p99_stream", "ratio", "rate_p99",
                          "rate_p99_stream", "bulk_rows/s", "bulk_with_live", "bulk/raw", "with_live/raw"], rows))
        out.append("")

    sweep = load(d, "sweep")
    if sweep:
        out.append(f"== Instances x intra-op threads (bench/sweep.py; {sweep['cores']} cores, 1-row requests at "
                   f"c={sweep['concurrency']}, medians) ==")
        rows = []
        for model, r in sweep["models"].items():
            for row in r["layouts"]:
                best = r["best"] and row["model"] == r["best"]["model"]
                rows.append([model, str(row["instance_count"]), str(row["intra_op_threads"]),
                             fmt(row["rows_per_s"]), fmt(row["p99_ms"], 2), "best" if best else ""])
        out.append(table(["model", "instance_count", "intra_op_threads", "rows/s", "p99_ms", ""], rows))
        out.append("")

    out.append("== Results ==")
    out.append(table(["", "what", "value", "goal", ""],
                     [[n, what, value, goal, "PASS" if ok else "MISS"] for n, what, value, goal, ok in results],
                     left=5))
    out.append(info_r2)
    out.append(info_r4_mlp)
    out.append(f"{sum(1 for r in results if r[4])}/{len(results)} PASS")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
