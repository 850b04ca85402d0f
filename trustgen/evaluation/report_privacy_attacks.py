"""The ``privacy_attacks`` section of the evaluation report: distance to closest record and a
density-ratio membership attack.

Attacks are audits, not proofs: a failed attack does not show privacy. The holdout-to-train
distances and the attack's non-members need a holdout; without one they are listed as skipped.
The per-row distances and the attack's ROC curve stay in the section's in-memory
:attr:`~trustgen.evaluation.report_section.Section.figure_data` (``"dcr"``, ``"mia_roc"``) for
the report's figures; they are never written to the JSON.
"""

from __future__ import annotations

from trustgen.evaluation.privacy_attacks import (
    attack_roc, closest_record_distances, density_ratio_scores, summarise_attack, summarise_distances,
)
from trustgen.evaluation.report_inputs import MAX_ROWS, EvaluationInputs, subsample
from trustgen.evaluation.report_section import Section

MIN_MIA_HOLDOUT = 20  # rows of holdout needed to split it into non-members and a reference
OVERLAP_NOTE_SHARE = 0.5  # above this share of holdout rows copied from training, warn in the report


def privacy_attacks_section(inputs: EvaluationInputs) -> Section:
    """Distance to closest record (with the holdout as reference) and the membership attack."""
    s = Section("privacy attacks",
                "synthetic samples vs real training data" + (" and real holdout" if inputs.has_holdout else ""))
    s.extra["features"] = ("pixels scaled to [0, 1]" if inputs.is_image else
                           "all columns, one-hot encoded and standardised")
    _distance_to_closest_record(inputs, s)
    _membership_attack(inputs, s)
    return s.finish()


def _distance_to_closest_record(inputs: EvaluationInputs, s: Section) -> None:
    # Distances of the synthetic rows need no holdout; only the comparison does.
    dist = s.try_metric("distance_to_closest_record",
                        lambda: closest_record_distances(inputs.synth_t, inputs.real_t, inputs.hold_t))
    if not inputs.has_holdout:
        s.skipped["distance_to_closest_record (holdout comparison)"] = (
            "needs a holdout: the holdout-to-train distances are what a non-memorising generator would give")
    if dist is None:
        return
    dcr = summarise_distances(dist)
    s.figure_data["dcr"] = dist
    s.metrics["distance_to_closest_record"] = dcr
    s.add_row("Share of synthetic rows that copy a training row", dcr["synth_exact_copy_share"],
              "lower is better (0 ideal)", "[0, 1]", "synthetic vs real training data")
    s.add_row("Median DCR synthetic-to-train", dcr["synth_median"], "higher is safer (compare with holdout-to-train)",
              "[0, inf)", "synthetic vs real training data")
    if not inputs.has_holdout:
        return
    s.add_row("Median DCR holdout-to-train (reference)", dcr["holdout_median"], "reference for the synthetic median",
              "[0, inf)", "real holdout vs real training data")
    s.add_row("Share of synthetic rows closer to train than the holdout median",
              dcr["synth_closer_than_holdout_median_share"], "closer to 0.5 is better (towards 1: memorisation)",
              "[0, 1]", s.data)
    if dcr["holdout_exact_copy_share"] > OVERLAP_NOTE_SHARE:
        s.report_notes.append(
            f"{dcr['holdout_exact_copy_share']:.0%} of the holdout rows also appear in the training data: "
            "the holdout overlaps the training data, so holdout-based metrics are not trustworthy.")


def _membership_attack(inputs: EvaluationInputs, s: Section) -> None:
    if not inputs.has_holdout:
        s.skipped["density_ratio_mia"] = ("needs a holdout: the attack scores training rows against real "
                                          "rows the model did not see; pass --holdout")
        return
    if len(inputs.hold_t) < MIN_MIA_HOLDOUT:
        s.skipped["density_ratio_mia"] = (f"the holdout has {len(inputs.hold_t)} rows; at least "
                                          f"{MIN_MIA_HOLDOUT} are needed to split it into non-members and "
                                          "a reference")
        return
    rng = inputs.rng()
    perm = rng.permutation(len(inputs.hold_t))
    half = min(len(perm) // 2, MAX_ROWS // 2)
    non_idx, ref_idx = perm[:half], perm[half:half + MAX_ROWS]
    mem_idx = rng.choice(len(inputs.real_t), size=min(half, len(inputs.real_t)), replace=False)
    syn_idx = subsample(len(inputs.synth_t), MAX_ROWS, rng)
    take = (lambda t, i: t.iloc[i]) if not inputs.is_image else (lambda t, i: t[i])
    s.extra["mia_setup"] = {
        "method": "density ratio (DOMIAS-style), Gaussian KDE",
        "members": f"{len(mem_idx)} random training rows",
        "non_members": f"{len(non_idx)} random holdout rows",
        "reference": f"the other {len(ref_idx)} holdout rows (the attacker's population sample)",
    }
    scores = s.try_metric("density_ratio_mia", lambda: density_ratio_scores(
        take(inputs.synth_t, syn_idx), take(inputs.real_t, mem_idx), take(inputs.hold_t, non_idx),
        take(inputs.hold_t, ref_idx), seed=inputs.seed))
    if scores is None:
        return
    mia = summarise_attack(scores)
    fpr, tpr = attack_roc(scores)
    s.figure_data["mia_roc"] = {"fpr": fpr, "tpr": tpr, "auc": mia["auc"]}
    s.metrics["density_ratio_mia"] = mia
    mdata = "training rows (members) vs holdout rows (non-members); reference: rest of holdout"
    s.add_row("Membership attack AUC (density ratio)", mia["auc"], "closer to 0.5 is better (higher: leak)",
              "[0, 1]", mdata)
    s.add_row("Membership attack TPR at 1% FPR", mia["tpr_at_fpr_0.01"], "close to 0.01 is better (higher: leak)",
              "[0, 1]", mdata)
    s.add_row("Membership attack TPR at 10% FPR", mia["tpr_at_fpr_0.1"], "close to 0.1 is better (higher: leak)",
              "[0, 1]", mdata)
