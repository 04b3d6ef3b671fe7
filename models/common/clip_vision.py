"""A CLIP vision tower from local files, and CLIP frame embeddings.

Accepted layouts (nothing is ever downloaded):
- a Hugging Face folder: ``config.json`` (a ``CLIPConfig`` or ``CLIPVisionConfig``) + weights
  (``model.safetensors``, sharded ``*.safetensors`` with an index, or ``pytorch_model.bin``);
- one weights file in ComfyUI's ``clip_vision`` layout (``vision_model.*``, optional
  ``visual_projection.weight``), with ``<name>.json`` or ``config.json`` beside it, or else a config
  inferred from the weight shapes;
- one open_clip file (``visual.*``), converted by :data:`OPEN_CLIP_TO_HF`.
Every load is strict: a wrong file fails naming all missing, unexpected and mis-shaped keys.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import WEIGHT_EXTENSIONS, CheckpointError, load_file, load_strict, meta_device

# OpenAI CLIP preprocessing (CLIPImageProcessor defaults; open_clip's OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Heads of the released towers: ViT-B (768), ViT-L (1024), OpenCLIP ViT-H (1280), ViT-bigG (1664).
HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16, 1664: 16}
# OpenCLIP's LAION ViT-H/bigG use exact GELU (ComfyUI's clip_vision_config_h/g.json); OpenAI towers quick_gelu.
GELU_WIDTHS = {1280, 1664}

TOWER_PARTS = ("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")
# open_clip CLIP keys outside ``visual.*`` (open_clip/model.py CLIP: the text tower, its projection, logit_scale).
OPEN_CLIP_TEXT = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection",
                  "logit_scale", "logit_bias", "attn_mask")
PROJECTION = "visual_projection.weight"

# open_clip VisionTransformer -> transformers CLIPVisionModel names (fused qkv is split separately).
OPEN_CLIP_TO_HF = (
    (r"^visual\.class_embedding$", "embeddings.class_embedding"),
    (r"^visual\.conv1\.", "embeddings.patch_embedding."),
    (r"^visual\.positional_embedding$", "embeddings.position_embedding.weight"),
    (r"^visual\.ln_pre\.", "pre_layrnorm."),
    (r"^visual\.ln_post\.", "post_layernorm."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.ln_1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.ln_2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"encoder.layers.\1.self_attn.out_proj."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"encoder.layers.\1.mlp.fc1."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"encoder.layers.\1.mlp.fc2."),
)


class ClipVisionEncoder(nn.Module):
    """A transformers CLIP vision model plus the preprocessing its weights expect.

    ``forward(pixel_values)`` gives the projected image embedding when the file has a projection
    (``CLIPVisionModelWithProjection.image_embeds``), else the pooled CLS output.
    """

    def __init__(self, model: nn.Module, *, image_size: int, mean=CLIP_MEAN, std=CLIP_STD, projected: bool):
        super().__init__()
        self.model = model
        self.image_size = int(image_size)
        self.projected = projected
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        cfg = self.model.config
        return int(cfg.projection_dim if self.projected else cfg.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        return out.image_embeds if self.projected else out.pooler_output


# ---------------------------------------------------------------- state dicts


def _split_open_clip_qkv(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if ".attn.in_proj_" in k:
            layer = k.split(".")[3]
            kind = k.rsplit("_", 1)[-1]  # weight | bias
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"encoder.layers.{layer}.self_attn.{name}.{kind}"] = part
        elif k == "visual.proj":  # open_clip applies x @ proj; HF stores the Linear weight [proj, width]
            out[PROJECTION] = v.t().contiguous()
        else:
            out[k] = v
    return out


def vision_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Canonical tower keys (``embeddings.*``, ``encoder.*`` ... and ``visual_projection.weight``).

    Accepts HF ``CLIPModel``/``CLIPVisionModelWithProjection``/ComfyUI files (``vision_model.`` prefix),
    prefix-less ``CLIPVisionModel`` exports and open_clip files. The text tower, ``logit_scale`` and the
    ``position_ids`` buffer (recomputed by transformers) are dropped; anything else is kept so a strict
    load reports it.
    """
    from .checkpoint import rename_keys

    if any(k.startswith("visual.") for k in sd):
        # The text tower is dropped by name; any other key stays so a strict load names it.
        sd = {k: v for k, v in sd.items() if not k.startswith(OPEN_CLIP_TEXT)}
        sd = rename_keys(_split_open_clip_qkv(sd), OPEN_CLIP_TO_HF)
    out = {}
    for k, v in sd.items():
        if k.startswith("vision_model."):
            k = k[len("vision_model."):]
        elif k.startswith(("text_model.", "text_projection.", "logit_scale")):
            continue
        if k.endswith("position_ids"):
            continue
        out[k] = v
    return out


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All weights of a file or a HF folder; returns them with the file naming the checkpoint."""
    if path.is_file():
        return load_file(path), path
    if not path.is_dir():
        raise CheckpointError(f"CLIP vision: {path} is neither a weights file nor a model folder")
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            shards = sorted(set(json.loads((path / index).read_text())["weight_map"].values()))
            sd = {}
            for shard in shards:
                sd.update(load_file(path / shard))
            return sd, path / index
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return load_file(path / name), path / name
    files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_EXTENSIONS)
    if len(files) != 1:
        raise CheckpointError(f"CLIP vision: folder {path} has {len(files)} weight files; expected one "
                              "(or model.safetensors / an index)")
    return load_file(files[0]), files[0]


# ---------------------------------------------------------------- configs


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def open_clip_vision_config(data: dict) -> dict:
    """CLIPVisionConfig fields from an ``open_clip_config.json`` (its ``model_cfg``), e.g. DFN5B ViT-H-14:
    same shapes as LAION's ViT-H but ``quick_gelu``, which no weight shape reveals."""
    cfg = data.get("model_cfg", data)
    vision = cfg["vision_cfg"]
    width = int(vision["width"])
    return {
        "hidden_size": width, "patch_size": int(vision["patch_size"]), "image_size": int(vision["image_size"]),
        "num_hidden_layers": int(vision["layers"]), "intermediate_size": int(width * vision.get("mlp_ratio", 4.0)),
        "num_attention_heads": width // int(vision.get("head_width", 64)), "projection_dim": int(cfg["embed_dim"]),
        "hidden_act": "quick_gelu" if cfg.get("quick_gelu") else "gelu", "num_channels": 3,
    }


def config_beside(weights: Path) -> dict | None:
    """``<name>.json`` beside the file, else the folder's ``config.json``; a CLIPConfig's vision part counts.
    An open_clip folder's ``open_clip_config.json`` comes last."""
    for side in (weights.with_suffix(".json"), weights.parent / "config.json"):
        data = _json(side)
        # A config of another model beside the file (a shared folder) says nothing about this one.
        if data is not None and data.get("model_type", "clip") in ("clip", "clip_vision_model"):
            vision = dict(data.get("vision_config", data))
            # Older CLIPConfig files keep projection_dim only at the top level.
            if "projection_dim" in data and "projection_dim" not in vision:
                vision["projection_dim"] = data["projection_dim"]
            return vision
    oc = _json(weights.parent / "open_clip_config.json")
    return open_clip_vision_config(oc) if oc is not None and "model_cfg" in oc else None


def infer_config(sd: dict[str, torch.Tensor], *, hidden_act: str | None = None) -> dict:
    """CLIPVisionConfig fields from canonical tower weights (shapes only)."""
    try:
        patch = sd["embeddings.patch_embedding.weight"]
        positions = sd["embeddings.position_embedding.weight"].shape[0]
        fc1 = sd["encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"not a CLIP vision tower: {exc.args[0]!r} missing "
                              f"(found e.g. {', '.join(sorted(sd)[:5]) or 'no tensors'})") from None
    width, patch_size = patch.shape[0], patch.shape[-1]
    grid = int(round((positions - 1) ** 0.5))  # one CLS token plus a square grid of patches
    if grid * grid != positions - 1:
        raise CheckpointError(f"position embedding has {positions} rows: not 1 + a square patch grid")
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers."))
    proj = sd.get(PROJECTION)
    return {
        "hidden_size": width, "patch_size": patch_size, "image_size": grid * patch_size,
        "num_hidden_layers": layers, "intermediate_size": fc1.shape[0],
        "num_attention_heads": HEADS_BY_WIDTH.get(width, max(1, width // 64)),
        "projection_dim": proj.shape[0] if proj is not None else width,
        "hidden_act": hidden_act or ("gelu" if width in GELU_WIDTHS else "quick_gelu"),
        "num_channels": patch.shape[1],
    }


def check_config_matches(fields: dict, inferred: dict, context: str) -> None:
    """A config.json beside the weights must describe the tower the weights hold: checked on shapes
    before anything is built, so a hostile config (width 16384, 10^9 layers) never allocates."""
    for key in ("hidden_size", "num_hidden_layers", "intermediate_size", "patch_size"):
        if key in fields and int(fields[key]) != int(inferred[key]):
            raise CheckpointError(f"{context}: its config says {key}={fields[key]} but the weights hold "
                                  f"{inferred[key]}")


def check_open_clip_weights(sd: dict[str, torch.Tensor], vision_cfg: dict | None, context: str) -> None:
    """Before an open_clip model is built: the weights hold a vision tower of the width and depth the
    config (embedded in the file, or the named architecture's) describes."""
    conv = sd.get("visual.conv1.weight")
    if conv is None:
        raise CheckpointError(f"{context}: not an open_clip checkpoint ('visual.conv1.weight' missing; found e.g. "
                              f"{', '.join(sorted(sd)[:5]) or 'no tensors'})")
    layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    if vision_cfg:
        want = (int(vision_cfg.get("width", conv.shape[0])), int(vision_cfg.get("layers", layers)))
        if want != (conv.shape[0], layers):
            raise CheckpointError(f"{context}: the config describes a vision tower of width {want[0]} and {want[1]} "
                                  f"layers, the weights one of width {conv.shape[0]} and {layers} layers")


def _preprocessing(folder: Path, image_size: int) -> tuple[tuple, tuple, int]:
    """Mean, std and input size from ``preprocessor_config.json`` when present, else CLIP's."""
    data = _json(folder / "preprocessor_config.json") or {}
    oc = (_json(folder / "open_clip_config.json") or {}).get("preprocess_cfg")
    if not data and oc:
        data = {"image_mean": oc.get("mean", CLIP_MEAN), "image_std": oc.get("std", CLIP_STD)}
    crop = data.get("crop_size", image_size)
    crop = crop.get("height", image_size) if isinstance(crop, dict) else crop
    return tuple(data.get("image_mean", CLIP_MEAN)), tuple(data.get("image_std", CLIP_STD)), int(crop)


# ---------------------------------------------------------------- loading


def _build(config, projected: bool) -> nn.Module:
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    with meta_device():
        model = (CLIPVisionModelWithProjection if projected else CLIPVisionModel)(config)
    return model


def _tower_keys(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Canonical keys -> the model's own spelling (with or without ``vision_model.``)."""
    prefixed = any(k.startswith("vision_model.") for k in model.state_dict())
    if not prefixed:
        return sd
    return {(k if k == PROJECTION else "vision_model." + k): v for k, v in sd.items()}


def _reset_position_ids(model: nn.Module) -> None:
    # position_ids is a non-persistent buffer transformers builds in __init__; on meta it must be remade.
    for mod in model.modules():
        ids = mod._buffers.get("position_ids")
        if ids is not None and ids.is_meta:
            mod._buffers["position_ids"] = torch.arange(ids.shape[-1]).expand(ids.shape).clone()


def load_clip_vision(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    use_projection: bool = True,
    hidden_act: str | None = None,
) -> ClipVisionEncoder:
    """Load a CLIP vision tower from a HF folder or one weights file (see the module docstring).

    ``use_projection=False`` ignores ``visual_projection.weight`` and embeds with the pooled CLS
    output (what DualDub conditions on). ``hidden_act`` overrides the activation of a config
    inferred from shapes (OpenAI towers: ``quick_gelu``; OpenCLIP towers: ``gelu``).
    """
    from transformers import CLIPVisionConfig

    path = Path(path)
    raw, weights = _read_weights(path)
    sd = vision_state_dict(raw)
    if not any(k.startswith(TOWER_PARTS) for k in sd):
        raise CheckpointError(f"CLIP vision ({weights.name}): no CLIP vision tower keys "
                              f"(embeddings.*, encoder.*); found e.g. {', '.join(sorted(raw)[:5]) or 'no tensors'}")
    if not use_projection:
        sd.pop(PROJECTION, None)
    fields = config_beside(weights)
    inferred = infer_config(sd, hidden_act=hidden_act)
    if fields is None:
        fields = inferred
    else:
        check_config_matches(fields, inferred, f"CLIP vision ({weights.name})")
        if hidden_act:
            fields["hidden_act"] = hidden_act
    projected = PROJECTION in sd
    if projected:  # the weights are the truth about the projection width
        fields["projection_dim"] = sd[PROJECTION].shape[0]
    fields = {k: v for k, v in fields.items() if k not in ("model_type", "architectures", "auto_map")}
    config = CLIPVisionConfig(**fields)
    model = _build(config, projected)
    load_strict(model, _tower_keys(model, sd), context=f"CLIP vision ({weights.name})", dtype=dtype, assign=True)
    _reset_position_ids(model)
    mean, std, size = _preprocessing(weights.parent, config.image_size)
    encoder = ClipVisionEncoder(model, image_size=size, mean=mean, std=std, projected=projected)
    return encoder.to(device).eval()


# ---------------------------------------------------------------- embedding frames


def _as_uint8_frames(frames) -> torch.Tensor:
    """[N, H, W, 3] uint8 (0..255) or float (0..1), numpy or torch -> uint8 tensor [N, 3, H, W]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if x.dim() != 4 or x.shape[-1] not in (3, 4):
        raise ValueError(f"expected frames [N, H, W, 3], got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = (x.float() * 255).round().clamp(0, 255).to(torch.uint8)
    return x[..., :3].permute(0, 3, 1, 2).cpu()


def clip_preprocess(
    frames: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor, *, crop: bool = True
) -> torch.Tensor:
    """CLIP's image transform on uint8 frames [N, 3, H, W]: bicubic resize of the shortest side to
    ``size``, centre crop, scale to 0..1, normalise. ``crop=False`` squashes the whole frame to
    ``size`` x ``size`` instead (keeps the frame edges, distorts the aspect).

    The resize runs on uint8 because torch's uint8 antialiased bicubic is PIL's (a = -0.5), which
    OpenAI's CLIP transform and CLIPImageProcessor use; the float kernel (a = -0.75) is not.
    """
    if frames.dtype != torch.uint8:
        raise ValueError(f"clip_preprocess expects uint8 frames, got {frames.dtype}")
    h, w = frames.shape[-2:]
    scale = size / min(h, w)
    # torchvision Resize(size) / CLIPImageProcessor: the long side is truncated, not rounded.
    nh, nw = (size, int(w * scale)) if h <= w else (int(h * scale), size)
    if not crop:
        nh = nw = size
    x = frames if (nh, nw) == (h, w) else F.interpolate(frames, size=(nh, nw), mode="bicubic",
                                                        align_corners=False, antialias=True)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    x = x[..., top:top + size, left:left + size].float() / 255.0
    return (x - mean.to(x.device)) / std.to(x.device)


@torch.no_grad()
def embed_frames(model: ClipVisionEncoder, frames, *, batch: int = 32, crop: bool = True) -> torch.Tensor:
    """frames [N, H, W, 3] (uint8, or float in 0..1, quantised to uint8 as CLIP's PIL pipeline sees
    images) -> embeddings [N, D] (float32, not normalised)."""
    x = _as_uint8_frames(frames)
    param = next(model.parameters())
    out = []
    for chunk in x.split(max(1, batch)):
        pixels = clip_preprocess(chunk, model.image_size, model.mean.cpu(), model.std.cpu(), crop=crop)
        out.append(model(pixels.to(param.device, param.dtype)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.dim)
