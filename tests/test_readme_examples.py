"""The README's Python API examples run as written (tiny random weights), without ComfyUI."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_there_is_one_example_per_system():
    blocks = _examples()
    assert len(blocks) == 5
    for system in ("dualdub", "audiogen_omni", "ovi", "just_dub_it", "mtv"):
        assert sum(f"from soundstage.pipelines import {system}" in b for b in blocks) == 1, system


@pytest.mark.parametrize("index", range(5))
def test_readme_example_runs_without_comfyui(index, capsys):
    code = _examples()[index]
    comfy = [m for m in sys.modules if m.split(".")[0] in ("comfy", "comfy_api")]
    exec(compile(code, f"README.md example {index + 1}", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "torch.Size" in printed  # each example ends by printing the shapes it made
    assert [m for m in sys.modules if m.split(".")[0] in ("comfy", "comfy_api")] == comfy  # no ComfyUI pulled in
