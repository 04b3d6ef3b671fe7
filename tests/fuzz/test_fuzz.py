"""CI mode of the fuzz campaign (see harness.py): a few hundred seeded cases; any crash, loss or escape fails.

``SOUNDSTAGE_FUZZ_LONG=1`` runs the long mode (3,000+ cases) instead; ``SOUNDSTAGE_FUZZ_SEED`` picks the seed.
The campaign runs in its own process: it caps its address space so that a memory bomb fails instead of
exhausting the machine, and it forks CLI processes to signal them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_fuzz_campaign_has_no_crash_loss_or_escape(tmp_path):
    if sys.platform != "linux":
        pytest.skip("the campaign uses fork, FIFOs and /dev/zero (Linux)")
    package_root = tmp_path / "pkg"
    package_root.mkdir()
    (package_root / "soundstage").symlink_to(REPO, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(package_root), OMP_NUM_THREADS="1")
    report_path = tmp_path / "report.json"
    long = bool(os.environ.get("SOUNDSTAGE_FUZZ_LONG"))
    proc = subprocess.run([sys.executable, str(HERE / "harness.py"), "--json", str(report_path)]
                          + (["--long"] if long else []), env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=3600 if long else 900)
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    total = report["total"]
    cases = sum(total.values())
    assert cases >= (3000 if long else 250), total
    summary = "\n".join(f"{c}: {v}" for c, v in report["counts"].items())
    examples = "\n".join(e for items in report["examples"].values() for e in items)
    assert total["crash"] == total["loss"] == total["escape"] == 0, f"{summary}\n{examples}"
