"""Video features (paper 3.2): the CLIP visual encoder on one frame in every three."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..common.checkpoint import CheckpointError, load_file, load_strict

# CLIP's image normalisation (OpenAI CLIP preprocessing).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _vision_tower(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Vision-tower weights without the ``vision_model.`` prefix (HF CLIPModel / ComfyUI clip_vision files
    carry it, transformers 5 CLIPVisionModel exports do not); projections and text tower dropped."""
    if any(k.startswith("vision_model.") for k in sd):
        sd = {k[len("vision_model."):]: v for k, v in sd.items() if k.startswith("vision_model.")}
    # Older exports store the position_ids buffer, which transformers now recomputes.
    return {k: v for k, v in sd.items() if k.split(".")[0] in ("embeddings", "pre_layrnorm", "encoder",
                                                                 "post_layernorm") and not k.endswith("position_ids")}


def _side_config(path: Path):
    """``<name>.json`` beside the file, else the folder's ``config.json`` (a CLIPConfig's vision part counts)."""
    from transformers import CLIPVisionConfig

    for side in (path.with_suffix(".json"), path.parent / "config.json"):
        if side.is_file():
            data = json.loads(side.read_text())
            return CLIPVisionConfig(**data.get("vision_config", data))
    return None


def _config_from_weights(sd: dict[str, torch.Tensor]):
    from transformers import CLIPVisionConfig

    pe = sd["embeddings.patch_embedding.weight"]
    hidden, patch = pe.shape[0], pe.shape[-1]
    positions = sd["embeddings.position_embedding.weight"].shape[0]
    grid = int(round((positions - 1) ** 0.5))
    layers = len({k.split(".")[2] for k in sd if k.startswith("encoder.layers.")})
    return CLIPVisionConfig(
        hidden_size=hidden, patch_size=patch, image_size=grid * patch, num_hidden_layers=layers,
        intermediate_size=sd["encoder.layers.0.mlp.fc1.weight"].shape[0],
        # Released CLIP towers use 64-dim heads (ViT-B/16, ViT-L/14, ViT-H/14).
        num_attention_heads=max(1, hidden // 64), projection_dim=hidden,
    )


def load_clip_vision(path: str | Path, dtype: torch.dtype = torch.float32):
    """A transformers ``CLIPVisionModel`` from a Hugging Face folder (config.json + weights) or one
    weights file in the HF layout (with or without ``vision_model.``; projection and text tower ignored)."""
    from transformers import CLIPVisionModel

    path = Path(path)
    if path.is_dir():
        return CLIPVisionModel.from_pretrained(str(path), torch_dtype=dtype).eval()
    sd = _vision_tower(load_file(path))
    if "embeddings.patch_embedding.weight" not in sd:
        raise CheckpointError(f"{path.name}: no CLIP vision weights (embeddings.patch_embedding.weight)")
    config = _side_config(path) or _config_from_weights(sd)
    model = CLIPVisionModel(config)
    if all(k.startswith("vision_model.") for k in model.state_dict()):
        sd = {"vision_model." + k: v for k, v in sd.items()}
    load_strict(model, sd, context=f"CLIP vision ({path.name})")
    return model.to(dtype).eval()


def select_frames(num_frames: int, stride: int) -> torch.Tensor:
    return torch.arange(0, num_frames, stride)


@torch.no_grad()
def encode_video(clip, frames: torch.Tensor, fps: float, *, stride: int = 3, batch: int = 32):
    """frames [T, H, W, 3] in 0..1 -> (features [T', D], times [T'] in seconds) for every ``stride``-th frame."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
    idx = select_frames(frames.shape[0], stride)
    size = clip.config.image_size
    param = next(clip.parameters())
    mean = torch.tensor(CLIP_MEAN, device=param.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=param.device).view(1, 3, 1, 1)
    feats = []
    for chunk in idx.split(batch):
        x = frames[chunk].to(param.device, torch.float32).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        x = ((x - mean) / std).to(param.dtype)
        feats.append(clip(pixel_values=x).pooler_output.float())
    return torch.cat(feats), idx.float() / float(fps)
