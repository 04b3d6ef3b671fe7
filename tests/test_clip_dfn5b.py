"""DFN5B CLIP ViT-H-14 (MMAudio's CLIP): the real key manifest maps strictly on both load paths.

- MMAudio nodes: open_clip ``CLIP`` (models/audiogen_omni/visual.py);
- CLIP vision tower (metrics, DualDub): the open_clip file converted to transformers' layout
  (models/common/clip_vision.py), with ``quick_gelu`` from ``open_clip_config.json`` (no shape shows it).
"""
from __future__ import annotations

import json

import pytest
import torch
from conftest import golden_files
from safetensors.torch import load_file, save_file

from soundstage.models.common import clip_vision as C
from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes

MANIFEST = "clip_dfn5b_vit_h_14_384.json"


def _manifest(golden_dir) -> dict:
    return json.loads((golden_dir / "manifests" / MANIFEST).read_text())


def _fake(manifest: dict) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v["shape"], device="meta") for k, v in manifest["keys"].items()}


def test_open_clip_model_matches_manifest(golden_dir):
    open_clip = pytest.importorskip("open_clip")
    man = _manifest(golden_dir)
    cfg = man["config"]
    with meta_device():
        model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                               quick_gelu=cfg["quick_gelu"])
    expected = {k: tuple(v["shape"]) for k, v in man["keys"].items()}
    report = compare_keys(model_shapes(model), expected)
    assert report.ok, report.describe(limit=10)
    assert len(expected) == man["num_tensors"]
    assert sum(v.numel() for v in model.state_dict().values()) == man["num_elements"]


def test_vision_tower_maps_every_key(golden_dir):
    man = _manifest(golden_dir)
    fake = _fake(man)
    sd = C.vision_state_dict(fake)
    fields = C.open_clip_vision_config({"model_cfg": man["config"]})
    assert fields["hidden_act"] == "quick_gelu" and fields["image_size"] == man["config"]["vision_cfg"]["image_size"]
    # Shapes alone give the same tower, except the activation.
    assert {**C.infer_config(sd), "hidden_act": "quick_gelu"} == fields
    from transformers import CLIPVisionConfig

    model = C._build(CLIPVisionConfig(**fields), projected=True)
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in C._tower_keys(model, sd).items()})
    assert report.ok, report.describe(limit=10)
    # Every key of the file is either mapped or a named text-tower key; nothing else is dropped.
    dropped = {k for k in fake if not k.startswith("visual.")}
    assert dropped and all(k.startswith(C.OPEN_CLIP_TEXT) for k in dropped)
    vision_elems = sum(v.numel() for k, v in fake.items() if k.startswith("visual."))
    assert sum(v.numel() for v in sd.values()) == vision_elems


def test_unknown_key_in_open_clip_file_is_named(tmp_path):
    sd = {"visual.conv1.weight": torch.zeros(8, 3, 4, 4), "token_embedding.weight": torch.zeros(5, 4),
          "surprise.weight": torch.zeros(2)}
    assert "surprise.weight" in C.vision_state_dict(sd) and "token_embedding.weight" not in C.vision_state_dict(sd)


@pytest.mark.parametrize("path", golden_files("mmaudio_pipeline"), ids=lambda p: p.stem)
def test_open_clip_folder_loads_with_its_activation(golden_dir, path, tmp_path):
    """The fixture's DFN5B-layout CLIP (quick_gelu) in an HF-style open_clip folder: same image features as open_clip."""
    open_clip = pytest.importorskip("open_clip")
    d = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    oc = meta["constructor"]["clip"]["open_clip_config.json"]
    sd = {k[len("clip."):]: v.contiguous() for k, v in d.items() if k.startswith("clip.")}
    save_file(sd, str(tmp_path / "open_clip_model.safetensors"))
    (tmp_path / "open_clip_config.json").write_text(json.dumps(oc))
    enc = C.load_clip_vision(tmp_path)
    assert enc.model.config.hidden_act == ("quick_gelu" if oc["model_cfg"]["quick_gelu"] else "gelu")
    assert tuple(enc.mean.flatten().tolist()) == pytest.approx(tuple(oc["preprocess_cfg"]["mean"]))
    cfg = oc["model_cfg"]
    ref = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                         quick_gelu=cfg["quick_gelu"]).eval()
    ref.load_state_dict(sd)
    size = cfg["vision_cfg"]["image_size"]
    px = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(enc(px), ref.encode_image(px), rtol=0, atol=2e-6)
    sd["surprise.weight"] = torch.zeros(1)
    save_file(sd, str(tmp_path / "open_clip_model.safetensors"))
    with pytest.raises(CheckpointError, match="surprise"):
        C.load_clip_vision(tmp_path)
