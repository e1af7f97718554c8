#!/usr/bin/python3
"""Writes the benchmark models that need Python into a model repository.

  resnet18   torchvision resnet18, random weights (fixed seed), input FP32
             [3, 64, 64], output logits FP32 [1000], max_batch_size 64,
             optimize_for_inference.

--nobatch NAME... also writes NAME_nobatch for models already in the
repository (e.g. written by microbatch-make-models): the same model.pt files
(symlinked) with max_batch_size 1, for the batching-disabled comparison.

Needs Debian's python3-torch and python3-torchvision (run with /usr/bin/python3;
the TorchScript they write loads in the libtorch1.13 the server links).

Usage: scripts/make_bench_models.py --output DIR [--models resnet18] [--nobatch resnet18 mlp_bench]
"""
import argparse
import os
import re
import shutil
import sys

RESNET18_CONFIG = """# torchvision resnet18 (random weights) at 3x64x64, for benchmarks.
input { name: "x" dtype: FP32 dims: [3, 64, 64] forward_arg: 0 }
output { name: "logits" dtype: FP32 dims: [1000] }
max_batch_size: 64
instance_count: 1
optimize_for_inference: true
warmup_batch_sizes: [1, 64]
"""


def write_resnet18(root, seed):
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    scripted = torch.jit.script(model)
    # Check the shape contract before writing anything.
    with torch.inference_mode():
        out = scripted(torch.zeros(2, 3, 64, 64))
    if tuple(out.shape) != (2, 1000):
        sys.exit(f"make_bench_models: resnet18 returned {tuple(out.shape)}, expected (2, 1000)")
    model_dir = os.path.join(root, "resnet18")
    os.makedirs(os.path.join(model_dir, "1"), exist_ok=True)
    scripted.save(os.path.join(model_dir, "1", "model.pt"))
    with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
        f.write(RESNET18_CONFIG)
    print(f"make_bench_models: wrote {model_dir}")


def write_nobatch(root, name):
    source = os.path.join(root, name)
    config_path = os.path.join(source, "config.pbtxt")
    if not os.path.isfile(config_path):
        sys.exit(f"make_bench_models: {config_path} not found (write the model first)")
    with open(config_path) as f:
        config = f.read()
    config = re.sub(r"(?m)^\s*max_batch_size\s*:.*\n?", "", config)
    config = re.sub(r"(?m)^\s*warmup_batch_sizes\s*:.*\n?", "", config)
    config = re.sub(r"(?m)^\s*name\s*:.*\n?", "", config)
    config = (f"# {name} with batching disabled (max_batch_size 1), written by "
              f"scripts/make_bench_models.py.\n{config}max_batch_size: 1\nwarmup_batch_sizes: [1]\n")
    target = os.path.join(root, f"{name}_nobatch")
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.makedirs(target)
    for entry in sorted(os.listdir(source)):
        version_dir = os.path.join(source, entry)
        if not (entry.isdigit() and os.path.isdir(version_dir)):
            continue
        os.makedirs(os.path.join(target, entry))
        link = os.path.join(target, entry, "model.pt")
        try:
            os.symlink(os.path.join("..", "..", name, entry, "model.pt"), link)
        except OSError:
            shutil.copyfile(os.path.join(version_dir, "model.pt"), link)
    with open(os.path.join(target, "config.pbtxt"), "w") as f:
        f.write(config)
    print(f"make_bench_models: wrote {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="model repository directory")
    parser.add_argument("--models", nargs="*", default=["resnet18"], help="models to write: resnet18")
    parser.add_argument("--nobatch", nargs="*", default=[],
                        help="models in --output to copy as NAME_nobatch with max_batch_size 1")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    for name in args.models:
        if name == "resnet18":
            write_resnet18(args.output, args.seed)
        else:
            sys.exit(f"make_bench_models: unknown model '{name}' (known: resnet18)")
    for name in args.nobatch:
        write_nobatch(args.output, name)


if __name__ == "__main__":
    main()
