"""Does a DP model learn how the features depend on the label, and in which direction?

For several runs of one family at one epsilon on breast_cancer (70/30 split, seed 0; every DP
run draws fresh noise from OS entropy), 1,000 samples per class: TSTR ROC AUC of a logistic
regression on the holdout, and the per-feature class-mean differences of the samples (in real
standard deviations) beside the real ones: their mean size, and their correlation with the
real differences (1: the relation learned as it is; 0: none; -1: backwards).

    python benchmarks/dp_label_dependence.py --family diffusion --epsilon 1 --runs 3 [--guidance 3] \
        [--option noise_multiplicity=8] [--steps 800] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from quality import logreg, split

from trustgen.data.loaders import load_data
from trustgen.evaluation.utility import tstr
from trustgen.pipeline import train
from trustgen.privacy.config import PrivacyConfig
from trustgen.sampling import Sampler
from trustgen.sampling.config import SamplerConfig
from trustgen.training import TrainConfig


def class_gap(df, label, pos, feats, scale):
    return ((df[df[label] == pos][feats].mean() - df[df[label] != pos][feats].mean()) / scale).to_numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="diffusion")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (diffusion)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the family's)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a model option, e.g. noise_multiplicity=8 (repeatable; numbers are read as numbers)")
    args = ap.parse_args(argv)
    data, schema = load_data("breast_cancer")
    tr, te = split("breast_cancer", data, 0, True)
    label, pos = schema.label, schema.classes[1]
    feats = [c for c in tr.columns if c != label]
    scale = tr[feats].std()
    real = class_gap(tr, label, pos, feats, scale)
    config = SamplerConfig(guidance=args.guidance) if args.family == "diffusion" else None
    options = {k: json.loads(v) if v.replace(".", "", 1).isdigit() else v
               for k, v in (o.split("=", 1) for o in args.option)}
    for r in range(args.runs):
        run = train(tr, args.family, TrainConfig(steps=args.steps, batch_size=128, seed=0, lr=args.lr, progress=False),
                    schema=schema, privacy=PrivacyConfig(epsilon=args.epsilon), model_options=options)
        s = Sampler(run, config=config, marginal_fit=False).sample(2000, labels=np.arange(2000) % 2, seed=r).data
        gap = class_gap(s, label, pos, feats, scale)
        auc = tstr(s[feats], (s[label] == pos).to_numpy(), te[feats], (te[label] == pos).to_numpy(),
                   models={"lr": logreg()})["lr"]["roc_auc"]
        print(json.dumps({"family": args.family, "epsilon": args.epsilon, "run": r, "guidance": args.guidance,
                          "options": options, "steps": args.steps, "lr": args.lr,
                          "tstr_auc": round(auc, 3), "gap_size_synth": round(float(np.abs(gap).mean()), 3),
                          "gap_size_real": round(float(np.abs(real).mean()), 3),
                          "gap_correlation": round(float(np.corrcoef(real, gap)[0, 1]), 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
