"""Figures of a Laundry List experiment, drawn from cached metrics and the summary (PNG + SVG + JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnlab.io import save_figure

Results = list[tuple[Any, int, dict[str, Any]]]


def _first_run_per_design(results: Results) -> dict[str, dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for config, _, metrics in results:
        first.setdefault(config.name, metrics)
    return first


def plot(results: Results, summary: dict[str, Any], outdir: Path) -> list[Path]:
    """Accuracy vs length and vs answer position, per-component composition, and the channel edits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    designs: dict[str, Any] = summary["designs"]
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(4.8, 3.3))
    for name, design in designs.items():
        lengths = sorted(design["accuracy_by_length"], key=int)
        ax.plot([int(n) for n in lengths], [design["accuracy_by_length"][n] for n in lengths], marker="o", label=name)
    ax.set(xlabel="list length n", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy vs list length")
    ax.legend(fontsize=7)
    written += save_figure(
        fig, outdir, "laundry_accuracy_by_length", data={n: d["accuracy_by_length"] for n, d in designs.items()}
    )

    fig, axes = plt.subplots(1, len(designs), figsize=(4.2 * len(designs), 3.3), squeeze=False)
    for ax, (name, design) in zip(axes[0], designs.items()):
        for n in sorted(design["accuracy_by_position"], key=int):
            values = design["accuracy_by_position"][n]
            ax.plot(range(1, len(values) + 1), values, marker=".", label=f"n={n}")
        ax.set(xlabel="answer position", ylabel="accuracy", ylim=(0, 1.02), title=name)
        ax.legend(fontsize=6, ncol=2)
    written += save_figure(
        fig, outdir, "laundry_accuracy_by_position", data={n: d["accuracy_by_position"] for n, d in designs.items()}
    )

    first = _first_run_per_design(results)
    fig, axes = plt.subplots(1, len(first), figsize=(4.2 * len(first), 3.3), squeeze=False)
    for ax, (name, metrics) in zip(axes[0], first.items()):
        composition = metrics["composition"]
        for head, values in composition["per_head_component_scores"].items():
            ax.plot(range(len(values)), values, marker=".", label=f"layer {composition['layer']} head {head}")
        baseline = composition["random_direction_baseline"]
        ax.axhline(baseline, color="k", linestyle="--", label="random direction")
        ax.axhline(2 * baseline, color="k", linestyle=":", label="2x random")
        ax.set(xlabel="OV SVD component", ylabel="Q-composition with the mover", title=name)
        ax.legend(fontsize=6)
    written += save_figure(
        fig, outdir, "laundry_component_composition", data={n: m["composition"] for n, m in first.items()}
    )

    edits = [
        "position_patch",
        "centred_gain_1.5",
        "centred_gain_3",
        "ov_component_scaling_1.5",
        "ov_component_scaling_3",
    ]
    fig, axes = plt.subplots(1, len(designs), figsize=(4.8 * len(designs), 3.4), squeeze=False)
    plotted: dict[str, Any] = {}
    for ax, (name, design) in zip(axes[0], designs.items()):
        channel = {**design["intervention_gains"]["channel"], **design["weight_edits"]}
        control = {
            **design["intervention_gains"]["random_subspace"],
            **{
                key.replace("ov_other_", "ov_"): value
                for key, value in design["weight_edits"].items()
                if key.startswith("ov_other_")
            },
        }
        xs = np.arange(len(edits))
        ax.bar(xs - 0.2, [100 * channel[e] for e in edits], 0.4, color="C0", label="channel / top component")
        ax.bar(xs + 0.2, [100 * control[e] for e in edits], 0.4, color="C3", label="random subspace / other components")
        seed_gains = [100 * g for g in design["intervention_gain_by_seed"].values()]
        ax.scatter(np.full(len(seed_gains), -0.2), seed_gains, color="k", s=10, zorder=3, label="per seed")
        ax.axhline(10, color="k", linestyle=":", linewidth=0.8)
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_xticks(xs, edits, rotation=25, fontsize=6)
        ax.set(title=name)
        ax.legend(fontsize=6)
        plotted[name] = {"edits": edits, "channel": channel, "control": control, "patch_by_seed": seed_gains}
    axes[0][0].set_ylabel("accuracy change at the largest n (points)")
    written += save_figure(fig, outdir, "laundry_intervention", data=plotted)

    fig, ax = plt.subplots(figsize=(4.8, 3.3))
    names = list(designs)
    xs = np.arange(len(names))
    shares = {
        key: [designs[n]["channel_content"]["channel"][key] for n in names] for key in ("position_share", "item_share")
    }
    ax.bar(xs - 0.2, shares["position_share"], 0.4, label="missing position")
    ax.bar(xs + 0.2, shares["item_share"], 0.4, label="missing item")
    ax.set_xticks(xs, names, fontsize=7)
    ax.set(ylabel="share of channel variance", ylim=(0, 1.02), title="What the channel codes")
    ax.legend(fontsize=7)
    written += save_figure(fig, outdir, "laundry_channel_content", data=shares)
    return written
