"""Loading MMDiT checkpoints (released MMAudio ``.pth`` or our AudioGen-Omni safetensors)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

import torch

from ..common.checkpoint import build_and_load, load_file, safetensors_metadata
from .mmdit import MMDiT, MMDiTConfig
from .presets import clean_state_dict, detect_config


def load_mmdit_state_dict(
    sd: Mapping[str, torch.Tensor],
    *,
    config: Optional[MMDiTConfig] = None,
    dtype: Optional[torch.dtype] = None,
    context: str = "MMDiT checkpoint",
) -> tuple[MMDiT, str]:
    """Build the network the state dict describes and adopt its tensors; returns (model, preset name)."""
    sd = clean_state_dict(sd)
    name, detected = detect_config(sd)
    if config is not None:
        # A stored config wins for what shapes cannot tell (sample rate, default lengths).
        detected, name = config, "custom" if config != detected else name
    model = build_and_load(lambda: MMDiT(detected), sd, context=f"{context} ({name})", dtype=dtype)
    return model.eval(), name


def load_mmdit(path: str | Path, *, dtype: Optional[torch.dtype] = None, device="cpu") -> tuple[MMDiT, str]:
    path = Path(path)
    sd = load_file(path)
    config = None
    if path.suffix == ".safetensors":
        meta = safetensors_metadata(path)
        if "mmdit_config" in meta:
            config = MMDiTConfig.from_dict(json.loads(meta["mmdit_config"]))
    model, name = load_mmdit_state_dict(sd, config=config, dtype=dtype, context=path.name)
    return model.to(device), name


def save_mmdit(model: MMDiT, path: str | Path) -> None:
    """safetensors with the config in the header, so a reload needs no guessing."""
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(path), metadata={"mmdit_config": json.dumps(model.config.to_dict())})
