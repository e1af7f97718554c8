"""A microbatch-server of its own for a benchmark script (bench/live_bulk.py,
bench/sweep.py): start on free ports, wait until ready, stop; and model
copies with their own config."""
import os
import re
import shutil
import signal
import subprocess
import time


def start_server(bin_dir, models, log_path, extra_flags=(), ready_seconds=300):
    """Starts microbatch-server on `models`; returns (process, "localhost:PORT")
    once it is ready. Exits the script when the server dies or is not ready in time."""
    name = os.path.basename(log_path)
    log_file = open(log_path, "w")
    server = subprocess.Popen(
        [f"{bin_dir}/microbatch-server", "--model_repository", models, "--grpc_port", "0",
         "--metrics_port", "0", "--log_format", "json", "--drain_seconds", "0",
         "--shutdown_grace_seconds", "5", *extra_flags],
        stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.time() + ready_seconds
    while time.time() < deadline:
        text = open(log_path).read()
        if '"event":"server_ready"' in text:
            port = re.search(r'"event":"grpc_listening","address":"[^"]*:(\d+)"', text).group(1)
            return server, f"localhost:{port}"
        if server.poll() is not None:
            raise SystemExit(f"{name}: the server exited during startup (see {log_path})")
        time.sleep(0.1)
    server.kill()
    raise SystemExit(f"{name}: server not ready after {ready_seconds} s")


def stop_server(server, timeout=30):
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()


def copy_model(models, model, repo, name, config):
    """Writes model `model` of repository `models` as `name` (version 1) into
    `repo`, with `config` as its config.pbtxt."""
    os.makedirs(os.path.join(repo, name, "1"))
    shutil.copy(os.path.join(models, model, "1", "model.pt"), os.path.join(repo, name, "1"))
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(config)
