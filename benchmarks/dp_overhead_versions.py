"""Book-keeping clipping of two or more git revisions, side by side in one run.

Each revision's ``trustgen/privacy/book_keeping.py`` is loaded as its own module and drives
trustgen's training step (the rest of the code is the working tree's), beside the non-private
step; variants are interleaved round-robin and the median of the rounds is used, as in
``dp_overhead.py``. The noise is drawn inside the step (one thread) for every variant, and on
CPU freed memory is kept (``trustgen.runtime.keep_freed_memory``) for all of them alike, so the
columns differ by the clipping code only.

    python benchmarks/dp_overhead_versions.py 0a82342 HEAD [--datasets digits] [--rounds 5]

Prints one JSON line per dataset and family: DP step / non-private step per revision.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dp_overhead import close_all, median_times, setup  # noqa: E402

from trustgen.privacy import dp_sgd  # noqa: E402
from trustgen.runtime import keep_freed_memory, resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str, folder: Path):
    """The module ``book_keeping.py`` as it is at git revision ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:trustgen/privacy/book_keeping.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    name = "book_keeping_" + "".join(ch if ch.isalnum() else "_" for ch in rev)
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revisions", nargs="+", help="git revisions, e.g. 0a82342 HEAD")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"])
    ap.add_argument("--datasets", nargs="+", default=["digits"])
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    own = dp_sgd.BookKeeping
    with tempfile.TemporaryDirectory() as folder:
        modules = {rev: load_revision(rev, Path(folder)) for rev in args.revisions}
        for dataset in args.datasets:
            for family in args.families:
                states = {"non_private": setup(family, dataset, None, args.batch_size, device)}
                for rev, module in modules.items():
                    dp_sgd.BookKeeping = module.BookKeeping  # what PrivateGradients builds
                    try:
                        states[rev] = setup(family, dataset, "bookkeeping", args.batch_size, device, prefetch=False)
                    finally:
                        dp_sgd.BookKeeping = own
                med = median_times(states, args.rounds, args.steps, device)
                base = med["non_private"]
                print(json.dumps({"dataset": dataset, "family": family, "device": str(device),
                                  "non_private_ms": round(1000 * base, 2),
                                  **{f"ratio_{rev}": round(med[rev] / base, 3) for rev in modules}}), flush=True)
                close_all(states)
    return 0


if __name__ == "__main__":
    sys.exit(main())
