#!/usr/bin/python3
"""Live Predict traffic and a BatchPredict stream on one model (#17, L1-L3).

Starts its own microbatch-server on the benchmark repository, then measures,
alternating A/B for --rounds rounds:
  bulk alone   `microbatch batch` of an .npy file, rows/s as the CLI reports it;
  live alone   `microbatch bench` of 1-row Predict requests: closed loop at
               concurrency 1 (p99: L1), and open loop at --live-share of the
               raw best-batch rate;
  mixed        the same two live loads while `microbatch batch` runs back to
               back: live p99, and the bulk rows/s of the runs that ended
               inside the open-loop measurement (L2).
Each --budgets value is a copy of the model with that
bulk_run_budget_microseconds (0: the server's default, -1: no bound), all
served by the same server; --instances sets their instance_count (default:
the model's own; with 2 or more, one instance may run full bulk batches
while another stays for live requests). Writes live_bulk.json into --out for
bench/report.py (rows L1-L3: the model copy named by --report-budget).

Needs Debian's /usr/bin/python3 (numpy) and the raw limits of the model
(raw_<model>.json from microbatch-rawbench, as scripts/bench.sh writes them).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from bench_server import copy_model, start_server, stop_server


def log(message):
    print(f"[live_bulk] {message}", file=sys.stderr, flush=True)


def run_batch(bin_dir, target, model, data, out_path, chunk_rows):
    """One `microbatch batch` run; returns (rows, rows/s as the CLI measured)."""
    proc = subprocess.run(
        [f"{bin_dir}/microbatch", "batch", "--target", target, "--model", model, "--input", data,
         "--output", out_path, "--chunk-rows", str(chunk_rows), "--progress-seconds", "3600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"microbatch batch failed: {proc.stderr.strip()[-500:]}")
    found = re.findall(r"(\d+)/\d+ rows \([\d.]+%\)\s+(\d+) rows/s", proc.stderr)
    if not found:
        raise RuntimeError(f"no progress line in: {proc.stderr[-500:]}")
    rows, rate = found[-1]
    return int(rows), float(rate)


def live_bench(bin_dir, target, model, load, window_ms, warmup_ms, windows, out_json):
    """1-row Predict load (`load`: e.g. ["--concurrency", "1"]); returns the level's JSON
    (latency_ms, throughput, ...)."""
    cmd = [f"{bin_dir}/microbatch", "bench", "--target", target, "--model", model, *load, "--window-ms", str(window_ms), "--warmup-ms", str(warmup_ms),
           "--max-windows", str(windows), "--stable-windows", str(windows), "--stability", "1",
           "--format", "json"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60 + (warmup_ms + windows * window_ms) / 1000)
    if proc.returncode != 0:
        raise RuntimeError(f"microbatch bench failed: {proc.stderr.strip()[-500:]}")
    with open(out_json, "w") as f:
        f.write(proc.stdout)
    return json.loads(proc.stdout)["levels"][0]


class BulkLoop:
    """Runs `microbatch batch` back to back until stopped; records each run."""

    def __init__(self, *args):
        self.args = args
        self.runs = []  # (start, end, rows, rows/s)
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._loop)

    def _loop(self):
        try:
            while not self.stop.is_set():
                start = time.time()
                rows, rate = run_batch(*self.args)
                self.runs.append((start, time.time(), rows, rate))
        except Exception as e:  # reported by the caller
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--models", required=True, help="benchmark repository (with the model)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="mlp_bench")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--live-share", type=float, default=0.2)
    parser.add_argument("--budgets", default="0,1000,-1",
                        help="bulk_run_budget_microseconds values, one model copy each")
    parser.add_argument("--report-budget", type=int, default=0)
    parser.add_argument("--instances", type=int, default=0,
                        help="instance_count of the model copies (0: the model's own)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window-ms", type=int, default=2000)
    parser.add_argument("--warmup-ms", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=1024)
    parser.add_argument("--bulk-seconds", type=float, default=2.0,
                        help="length of one bulk run at the raw best-batch rate")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    raw = json.load(open(os.path.join(args.out, f"raw_{args.model}.json")))
    raw_best = raw["best_rows_per_s"]
    live_rate = args.live_share * raw_best

    # The model copies, one per budget, in a repository of their own.
    repo = os.path.join(args.out, "live_bulk_models")
    shutil.rmtree(repo, ignore_errors=True)
    budgets = [int(b) for b in args.budgets.split(",")]
    config = open(os.path.join(args.models, args.model, "config.pbtxt")).read()
    suffix = ""
    if args.instances > 0:
        config = re.sub(r"(?m)^\s*instance_count:.*$", "", config) + f"\ninstance_count: {args.instances}\n"
        suffix = f"_instances_{args.instances}"
    names = {}
    for budget in budgets:
        name = f"{args.model}_budget_{'off' if budget < 0 else budget}{suffix}"
        names[budget] = name
        copy_model(args.models, args.model, repo, name, config + f"\nbulk_run_budget_microseconds: {budget}\n")

    dims = re.search(r"input\s*\{[^}]*dims:\s*\[(\d+)\]", config)
    if not dims:
        raise SystemExit(f"live_bulk: {args.model} must have one input of shape [N]")
    features = int(dims.group(1))
    rows = int(min(100000, max(10000, raw_best * args.bulk_seconds)))
    data = os.path.join(args.out, "live_bulk_input.npy")
    np.save(data, np.random.default_rng(1).standard_normal((rows, features), dtype=np.float32))
    out_npy = os.path.join(args.out, "live_bulk_output.npy")

    server, target = start_server(args.bin, repo, os.path.join(args.out, "live_bulk_server.log"),
                                  ["--default_intra_op_threads", str(args.threads)])
    result = {"model": args.model, "raw_best_rows_per_s": raw_best, "live_share": args.live_share,
              "live_rate": live_rate, "bulk_rows_per_run": rows, "chunk_rows": args.chunk_rows,
              "budgets": {}}
    try:
        for budget in budgets:
            name = names[budget]
            log(f"{name}: live at {live_rate:.0f} req/s, bulk runs of {rows} rows")
            run_batch(args.bin, target, name, data, out_npy, args.chunk_rows)  # warm-up
            r = {"bulk_alone": [], "c1_alone_p99": [], "c1_mixed_p99": [], "c1_alone_p50": [],
                 "c1_mixed_p50": [], "rate_alone_p99": [], "rate_mixed_p99": [], "rate_mixed_rps": [],
                 "bulk_mixed": []}
            c1 = ["--concurrency", "1"]
            rate = ["--request-rate", str(int(live_rate))]

            def measure(load, tag, round_):
                return live_bench(args.bin, target, name, load, args.window_ms, args.warmup_ms, args.windows,
                                  os.path.join(args.out, f"live_bulk_{name}_{tag}_{round_}.json"))

            for round_ in range(args.rounds):
                for _ in range(2):
                    r["bulk_alone"].append(run_batch(args.bin, target, name, data, out_npy, args.chunk_rows)[1])
                level = measure(c1, "c1_alone", round_)
                r["c1_alone_p99"].append(level["latency_ms"]["p99"])
                r["c1_alone_p50"].append(level["latency_ms"]["p50"])
                level = measure(rate, "rate_alone", round_)
                r["rate_alone_p99"].append(level["latency_ms"]["p99"])
                with BulkLoop(args.bin, target, name, data, out_npy, args.chunk_rows) as loop:
                    time.sleep(0.5)
                    level = measure(c1, "c1_mixed", round_)
                    r["c1_mixed_p99"].append(level["latency_ms"]["p99"])
                    r["c1_mixed_p50"].append(level["latency_ms"]["p50"])
                    measured_from = time.time() + args.warmup_ms / 1000
                    level = measure(rate, "rate_mixed", round_)
                    measured_to = time.time()
                    r["rate_mixed_p99"].append(level["latency_ms"]["p99"])
                    r["rate_mixed_rps"].append(level["throughput"])
                if loop.error:
                    raise loop.error
                inside = [run for run in loop.runs if run[1] >= measured_from and run[0] <= measured_to]
                bulk_rows = sum(run[2] for run in inside)
                bulk_time = sum(run[2] / run[3] for run in inside if run[3] > 0)
                r["bulk_mixed"].append(bulk_rows / bulk_time if bulk_time > 0 else 0)
                log(f"{name} round {round_ + 1}: c=1 p99 {r['c1_alone_p99'][-1]:.2f} ms alone, "
                    f"{r['c1_mixed_p99'][-1]:.2f} ms with the stream; bulk {statistics.median(r['bulk_alone']):.0f} "
                    f"rows/s alone, {r['bulk_mixed'][-1]:.0f} with live at {live_rate:.0f} req/s "
                    f"(live p99 {r['rate_alone_p99'][-1]:.2f} ms alone, {r['rate_mixed_p99'][-1]:.2f} mixed)")
            med = {k: statistics.median(v) for k, v in r.items() if v}
            result["budgets"][str(budget)] = {"model": name, "runs": r, "median": med}
    finally:
        stop_server(server)
        for path in (data, out_npy):
            if os.path.exists(path):
                os.remove(path)
    result["report_budget"] = str(args.report_budget)
    with open(os.path.join(args.out, "live_bulk.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
