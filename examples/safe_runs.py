"""What trustgen refuses at its edges, shown on one small run (each refusal: exit code 2, one line).

  1. trains a DP run of the VAE on breast_cancer into runs/safe;
  2. training into it again is refused (it is a finished DP run); --overwrite replaces it whole;
  3. a privacy report edited after the fact, and a model file from elsewhere, are refused on load
     (run.json binds every file by its SHA-256);
  4. an unwritable --out, a typo in a schema and an absurd size are refused before any work.

    python examples/safe_runs.py [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
from pathlib import Path

from trustgen.cli import main

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a few training steps only (CI)")
args = ap.parse_args()
steps = "3" if args.smoke else "300"
train = ["train", "--data", "breast_cancer", "--model", "vae", "--steps", steps, "--epsilon", "2", "--no-progress",
         "--out", "runs/safe"]


def refused(argv: list[str]) -> str:
    """Run the command, check that it was refused with one line, return that line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, lines)
    return lines[0]


shutil.rmtree("runs/safe", ignore_errors=True)
assert main(train) == 0
print("again:      ", refused(train))
assert main(train + ["--overwrite"]) == 0  # replaced whole: the old run or the new one, never a mix

shutil.copytree("runs/safe", "runs/edited", dirs_exist_ok=True)
report = json.loads(Path("runs/edited/privacy.json").read_text())
report["epsilon"] = 0.1  # a stronger claim than the run has
Path("runs/edited/privacy.json").write_text(json.dumps(report))
print("edited:     ", refused(["privacy", "runs/edited"]))

Path("not-a-dir").write_text("a file")
print("unwritable: ", refused(["sample", "runs/safe", "-n", "5", "--out", "not-a-dir/s.csv"]))
Path("typo.json").write_text(json.dumps({"kind": "tabular", "lable": "y", "columns": [
    {"name": "y", "type": "categorical", "categories": ["a", "b"]}]}))
print("typo:       ", refused(["train", "--data", "breast_cancer", "--schema", "typo.json", "--model", "vae",
                                "--out", "runs/typo"]))
print("size:       ", refused(["sample", "runs/safe", "-n", str(10**12), "--out", "many.csv"]))
