"""The frontend extension: every custom socket type the nodes declare has its own colour."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def palette() -> dict[str, str]:
    return dict(re.findall(r'^\s+(SOUNDSTAGE_[A-Z0-9_]+): "(#[0-9a-f]{6})"', (REPO / "js" / "colours.js").read_text(), re.M))


def test_every_custom_socket_type_has_a_distinct_colour():
    from soundstage.object_info import node_info, pack_node_classes

    used = set()
    for node_id, cls in pack_node_classes().items():
        info = node_info(node_id, cls)
        specs = [v[0] for section in info["input"].values() for v in section.values()] + info["output"]
        used |= {t for t in specs if isinstance(t, str) and t.startswith("SOUNDSTAGE_")}
    colours = palette()
    assert used and used <= set(colours), sorted(used - set(colours))
    assert len(set(colours.values())) == len(colours)  # no two types share a colour


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js not installed")
def test_colour_module_runs_in_node(tmp_path):
    script = tmp_path / "check.mjs"
    script.write_text(f'import {{ colourFor, PALETTE }} from "{(REPO / "js" / "colours.js").as_uri()}";\n'
                      'if (colourFor("SOUNDSTAGE_OVI_MODEL") !== PALETTE.SOUNDSTAGE_OVI_MODEL) process.exit(1);\n'
                      'const a = colourFor("SOUNDSTAGE_NEW_TYPE"), b = colourFor("SOUNDSTAGE_NEW_TYPE");\n'
                      'if (a !== b || !a.startsWith("hsl(")) process.exit(2);\n'
                      'console.log("ok");\n')
    proc = subprocess.run(["node", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    for f in sorted(p.name for p in (REPO / "js").glob("*.js")):
        assert subprocess.run(["node", "--check", str(REPO / "js" / f)], capture_output=True).returncode == 0
