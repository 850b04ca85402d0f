"""Audit the DP-SGD mechanism with gradient canaries, and watch it catch a broken one.

  1. audits trustgen's DP-SGD step at a claimed epsilon of 1 (sample rate 0.1, 100 steps): the
     lower bound lands below the claim, and not far below (the audit is tight);
  2. injects each fault of trustgen.privacy.audit_faults (no clipping, no noise, half sigma,
     batches at twice the accounted rate) and shows the bound exceeding the claim.

    python examples/audit_dp_sgd.py [--smoke]
"""

from __future__ import annotations

import argparse

from trustgen.privacy.audit_dp_sgd import audit_dp_sgd
from trustgen.privacy.audit_faults import FAULTS

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="fewer canaries (CI)")
args = ap.parse_args()

size = dict(canaries=2000, runs=2) if args.smoke else dict(canaries=10_000, runs=5)
claim = dict(epsilon=1.0, sample_rate=0.1, steps=100, seed=0, **size)

r = audit_dp_sgd(**claim)
print(f"correct mechanism: lower bound {r.gdp_epsilon_lower_bound:.2f} (Gaussian DP), "
      f"{r.epsilon_delta_lower_bound:.2f} ((eps, delta)), {r.one_run_epsilon_lower_bound:.2f} (one run); "
      f"claim {r.claimed_epsilon:.2f}")
assert not r.caught
for name, fault in FAULTS.items():
    b = audit_dp_sgd(**claim, **fault)
    print(f"{name:>22}: lower bound {b.gdp_epsilon_lower_bound:6.2f} -> {'caught' if b.caught else 'NOT caught'}")
    assert b.caught
