#!/usr/bin/python3
"""Instances x intra-op threads sweep (#17): which layout serves a model best.

For each model in --models-list, writes one copy per (instance_count,
intra_op_threads) pair with instances x threads <= the machine's cores (powers
of two, and the core count itself), serves them all from one microbatch-server,
and loads each in turn with `microbatch bench` (1-row Predict, closed loop at
--concurrency), --rounds rounds in alternating order (this machine's speed
drifts; neighbours are compared). Prints a table per model and the best
layout by median rows/s, and writes sweep.json into --out (read by
bench/report.py).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

from bench_server import copy_model, start_server, stop_server


def log(message):
    print(f"[sweep] {message}", file=sys.stderr, flush=True)


def powers_up_to(n):
    values, v = [], 1
    while v <= n:
        values.append(v)
        v *= 2
    if values[-1] != n:
        values.append(n)
    return values


def set_field(config, field, value):
    pattern = rf"^\s*{field}\s*:.*$"
    if re.search(pattern, config, flags=re.M):
        return re.sub(pattern, f"{field}: {value}", config, flags=re.M)
    return config + f"\n{field}: {value}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--models", required=True, help="benchmark repository")
    parser.add_argument("--out", required=True)
    parser.add_argument("--models-list", default="mlp_bench,resnet18")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window-ms", type=int, default=2000)
    parser.add_argument("--warmup-ms", type=int, default=1000)
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    repo = os.path.join(args.out, "sweep_models")
    shutil.rmtree(repo, ignore_errors=True)
    layouts = [(i, t) for i in powers_up_to(args.cores) for t in powers_up_to(args.cores)
               if i * t <= args.cores]
    copies = {}
    for model in args.models_list.split(","):
        config = open(os.path.join(args.models, model, "config.pbtxt")).read()
        for instances, threads in layouts:
            name = f"{model}_i{instances}_t{threads}"
            copies.setdefault(model, []).append((name, instances, threads))
            copy_model(args.models, model, repo, name,
                       set_field(set_field(config, "instance_count", instances), "intra_op_threads", threads))

    server, target = start_server(args.bin, repo, os.path.join(args.out, "sweep_server.log"))
    result = {"cores": args.cores, "concurrency": args.concurrency, "models": {}}
    try:
        for model, entries in copies.items():
            runs = {name: [] for name, _, _ in entries}
            p99 = {name: [] for name, _, _ in entries}
            for round_ in range(args.rounds):
                order = entries if round_ % 2 == 0 else list(reversed(entries))
                for name, instances, threads in order:
                    proc = subprocess.run(
                        [f"{args.bin}/microbatch", "bench", "--target", target, "--model", name,
                         "--concurrency", str(args.concurrency), "--window-ms", str(args.window_ms),
                         "--warmup-ms", str(args.warmup_ms), "--max-windows", "3", "--stable-windows", "2",
                         "--format", "json"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
                    if proc.returncode != 0:
                        log(f"{name}: bench failed: {proc.stderr.strip()[-300:]}")
                        continue
                    level = json.loads(proc.stdout)["levels"][0]
                    runs[name].append(level["rows_per_s"])
                    p99[name].append(level["latency_ms"]["p99"])
                    log(f"{name} round {round_ + 1}: {level['rows_per_s']:.1f} rows/s, "
                        f"p99 {level['latency_ms']['p99']:.2f} ms")
            table = []
            for name, instances, threads in entries:
                if runs[name]:
                    table.append({"model": name, "instance_count": instances, "intra_op_threads": threads,
                                  "rows_per_s": statistics.median(runs[name]),
                                  "p99_ms": statistics.median(p99[name]), "runs": runs[name]})
            best = max(table, key=lambda r: r["rows_per_s"]) if table else None
            result["models"][model] = {"layouts": table, "best": best}
    finally:
        stop_server(server)
        shutil.rmtree(repo, ignore_errors=True)
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump(result, f, indent=1)
    for model, r in result["models"].items():
        print(f"{model} on {args.cores} cores, 1-row requests at c={args.concurrency}:")
        for row in r["layouts"]:
            print(f"  instance_count {row['instance_count']:2d}  intra_op_threads {row['intra_op_threads']:2d}  "
                  f"{row['rows_per_s']:9.1f} rows/s  p99 {row['p99_ms']:7.2f} ms")
        if r["best"]:
            print(f"  best: instance_count {r['best']['instance_count']}, intra_op_threads "
                  f"{r['best']['intra_op_threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
