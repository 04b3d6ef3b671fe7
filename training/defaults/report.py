"""eval-defaults output: report.json, report.md and one PNG per metric (a bar per condition)."""
from __future__ import annotations

import json
from pathlib import Path


def markdown(result: dict) -> str:
    lines = [f"# {result['system']}: {result['task']} on {len(result['clips'])} held-out clips", "",
             "Median onset error over every ground-truth event (a miss counts as 200 ms); onset precision = share "
             "of detected onsets within 100 ms of an event. Kinds `mel_*` detect onsets on the decoded mel, before "
             "the vocoder.", "",
             "| condition | kind | median ms | mean ms | miss rate | onset precision | events |",
             "|---|---|---|---|---|---|---|"]
    for cond, kinds in result["summary"].items():
        for kind, m in kinds.items():
            lines.append(f"| {cond} | {kind} | {m['median_ms']} | {m['mean_ms']} | {m['miss_rate']} | "
                         f"{m['onset_precision']} | {m['events']} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path, metric: str = "median_ms") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(result["summary"])
    kinds = sorted({k for c in conds for k in result["summary"][c]})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(kinds))
    for j, kind in enumerate(kinds):
        vals = [result["summary"][c].get(kind, {}).get(metric) for c in conds]
        vals = [float("nan") if v is None else v for v in vals]
        ax.bar([i + j * width for i in range(len(conds))], vals, width, label=kind)
    ax.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(conds))], conds, fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{result['system']} {result['task']}: {metric}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(out: Path, result: dict, *, text: str | None = None,
                 metrics: tuple[str, ...] = ("median_ms", "onset_precision")) -> None:
    """``text``: a recipe's own Markdown (default: the onset table); ``metrics``: one PNG each."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=1))
    (out / "report.md").write_text(markdown(result) if text is None else text)
    for metric in metrics:
        plot(result, out / f"{metric}.png", metric)
