"""The main nodes are found by the words people search for (ComfyUI's Schema.search_aliases)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

WANTED = ("foley", "v2a", "video to audio", "lip sync", "dubbing", "mmaudio", "audio to video", "t2av", "tts")


def _aliases() -> dict[str, list[str]]:
    from soundstage.nodes.extension import load_node_classes

    return {c.GET_SCHEMA().node_id: list(c.GET_SCHEMA().search_aliases or []) for c in load_node_classes()}


def test_main_nodes_carry_search_aliases():
    aliases = _aliases()
    found = {w for words in aliases.values() for w in words}
    assert set(WANTED) <= found, set(WANTED) - found
    for sampler in ("SoundstageMMDiTSampler", "SoundstageDualDubSampler", "SoundstageOviSampler",
                    "SoundstageDubbingSampler", "SoundstageMTVSampler"):
        assert aliases[sampler], sampler


def test_comfyui_schema_has_the_field():
    root = os.environ.get("SOUNDSTAGE_COMFYUI") or str(Path(__file__).resolve().parents[2] / "shared" / "comfyui")
    source = Path(root) / "comfy_api" / "latest" / "_io.py"
    if not source.is_file():
        pytest.skip("no ComfyUI checkout (set SOUNDSTAGE_COMFYUI) to compare the Schema with")
    assert "search_aliases: list[str]" in source.read_text()
