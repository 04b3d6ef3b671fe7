"""DualDub checkpoints: one safetensors file (config JSON in its header) + the BPE tokenizer beside it."""
from __future__ import annotations

from pathlib import Path

import torch

from ..common.checkpoint import CheckpointError, load_file, load_strict, meta_device, safetensors_metadata
from .config import DualDubConfig
from .model import DualDub
from .text import load_tokenizer, tokenizer_path_for

CONFIG_KEY = "dualdub_config"


def save_dualdub(path: str | Path, model: DualDub, tokenizer=None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(path), metadata={CONFIG_KEY: model.config.to_json(), "format": "soundstage-dualdub"})
    if tokenizer is not None:
        tokenizer.save(str(tokenizer_path_for(path)))
    return path


def read_config(path: str | Path) -> DualDubConfig:
    meta = safetensors_metadata(path)
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"{Path(path).name}: not a DualDub checkpoint (no {CONFIG_KEY!r} in its header)")
    return DualDubConfig.from_json(meta[CONFIG_KEY])


def _recompute_meta_buffers(model: DualDub, name: str) -> None:
    """Derived buffers (the trunk's RoPE frequencies) are not in the file: rebuild them on CPU."""
    rotary = getattr(model.trunk, "rotary_emb", None)
    if rotary is not None and any(b.is_meta for b in rotary.buffers()):
        with torch.device("cpu"):
            model.trunk.rotary_emb = type(rotary)(config=model.trunk.config)
    for mod_name, mod in model.named_modules():
        for buf_name, buf in mod.named_buffers(recurse=False):
            if buf.is_meta:
                raise CheckpointError(f"DualDub ({name}): buffer {mod_name}.{buf_name} was not restored")


def load_dualdub(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 with_tokenizer: bool = True):
    """-> (model in eval mode, tokenizer or None)."""
    path = Path(path)
    cfg = read_config(path)
    # Built on meta and given the file's tensors: a full-size LM is never initialised nor held twice.
    with meta_device():
        model = DualDub(cfg)
    load_strict(model, load_file(path), context=f"DualDub ({path.name})", dtype=dtype, assign=True)
    _recompute_meta_buffers(model, path.name)
    model = model.to(device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(tokenizer_path_for(path)) if with_tokenizer else None
    return model, tokenizer
