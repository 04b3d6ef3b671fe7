"""JUST-DUB-IT in-context LoRA training on LTX-2 (paper 3.3 and A.3; ltx_trainer justdubit strategy).

Flow matching on the target tokens (x_t = (1-s) x0 + s eps, target eps - x0) with the source clip
appended as clean context at identical positions, modality-isolated a2v/v2a attention, masked
video loss (foreground 1.0 / background 0.1), shifted logit-normal sigmas, AdamW with a linear
schedule, dual learning rates (video 2e-4, audio 1e-5), gradient clipping 1.0, bf16, gradient
checkpointing. The LoRA is saved in the ComfyUI / JUST-DUB-IT format.

    python -m soundstage train dubbing-lora --ckpt ltx-2-19b-dev.safetensors --data pairs/ --out runs/dub

Each ``pairs/*.safetensors`` holds one preprocessed pair: ``target_video`` [1,C,F,H,W],
``target_audio`` [1,C,T,M], ``ref_video``, ``ref_audio`` (same shapes), ``video_context``,
``audio_context`` [1,L,D] (connector outputs), optional ``fg_mask`` [1,F,H,W] (latent foreground).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ...models.common.checkpoint import load_file, safetensors_metadata
from ...models.just_dub_it.in_context import audio_state, patchify_audio, patchify_video, video_state
from ...models.just_dub_it.transformer import TRANSFORMER_PREFIX, InContextTransformer, diffusers_to_native_key, load_transformer

TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2")  # configs/justdubit.yaml
AUDIO_PARAM_PATTERNS = (r"audio_attn", r"audio_ff")  # learning_rate_groups in configs/justdubit.yaml


@dataclass
class DubbingLoraConfig:
    rank: int = 128
    video_lr: float = 2e-4  # paper A.3
    audio_lr: float = 1e-5  # paper A.3 (the released yaml uses 1e-6)
    mask_loss_weight: float = 1.0
    background_loss_weight: float = 0.1
    mask_threshold: float = 0.1
    first_frame_p: float = 0.1  # first_frame_conditioning_p
    logit_normal_std: float = 1.0
    gradient_checkpointing: bool = True


# ---- LoRA adapters ----------------------------------------------------------------------------

def add_lora_adapters(model: InContextTransformer, rank: int, seed: int = 0) -> list[str]:
    """peft LoRA (alpha = rank, so the delta is exactly B @ A) on every target; base weights frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(seed)
    model.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(TARGET_MODULES), lora_dropout=0.0)
    inject_adapter_in_model(config, model.transformer)
    names = [n for n, p in model.named_parameters() if "lora_" in n]
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
        if "lora_" in n:  # fp32 adapters over an fp16/bf16 base: AdamW's eps underflows in fp16 (NaN at step 2)
            p.data = p.data.float()
    return names


def lora_state_dict(model: InContextTransformer) -> dict[str, torch.Tensor]:
    """Adapter weights under ``diffusion_model.<native module>.lora_A/B.weight`` (ltx_trainer format)."""
    from peft import get_peft_model_state_dict

    out = {}
    for key, value in get_peft_model_state_dict(model.transformer).items():
        module, _, which = key.rpartition(".lora_")
        native = diffusers_to_native_key(module)[len(TRANSFORMER_PREFIX):]
        out[f"diffusion_model.{native}.lora_{which}"] = value.detach().float().contiguous().cpu()
    return out


def save_lora(model: InContextTransformer, path: str | Path, rank: int) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    save_file(lora_state_dict(model), str(path), metadata={"format": "ltx2-lora", "rank": str(rank)})
    return path


def param_groups(model: torch.nn.Module, cfg: DubbingLoraConfig) -> list[dict]:
    video, audio = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (audio if any(re.search(pat, name) for pat in AUDIO_PARAM_PATTERNS) else video).append(p)
    return [g for g in ({"params": video, "lr": cfg.video_lr}, {"params": audio, "lr": cfg.audio_lr}) if g["params"]]


# ---- loss -------------------------------------------------------------------------------------

def shifted_logit_normal(seq_len: int, generator: torch.Generator, std: float = 1.0) -> float:
    """ltx_trainer ShiftedLogitNormalTimestepSampler: shift 0.95 at 1024 tokens .. 2.05 at 4096."""
    shift = 0.95 + (2.05 - 0.95) * (seq_len - 1024) / (4096 - 1024)
    return float(torch.sigmoid(torch.randn((), generator=generator) * std + shift))


def _isolation(video_target: torch.Tensor, audio_target: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Training allows every target pair, the first frame included (justdubit strategy masks).
    allowed = audio_target[:, None] & video_target[None, :]
    v2a = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))
    return v2a.T.contiguous(), v2a


def dubbing_loss(
    model: InContextTransformer,
    sample: dict[str, torch.Tensor],
    cfg: DubbingLoraConfig,
    generator: torch.Generator,
    *,
    fps: float = 25.0,
    sigma: float | None = None,
    first_frame: bool | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    dev = next(model.parameters()).device
    x0_video = patchify_video(sample["target_video"]).to(dev)
    x0_audio = patchify_audio(sample["target_audio"]).to(dev)
    # Context appended after the target, as at inference; positions are shared, so this equals
    # ltx_trainer's reference-first order up to a permutation of the tokens.
    v = video_state(sample["ref_video"].to(dev), fps)
    a = audio_state(sample["ref_audio"].to(dev))
    nv, na = v.num_target, a.num_target
    if x0_video.shape[1] != nv or x0_audio.shape[1] != na:
        raise ValueError("target and reference latents must have the same shapes")
    sigma = shifted_logit_normal(nv, generator, cfg.logit_normal_std) if sigma is None else sigma
    if first_frame is None:
        first_frame = bool(torch.rand((), generator=generator) < cfg.first_frame_p)
    eps_v = torch.randn(x0_video.shape, generator=generator).to(dev)
    eps_a = torch.randn(x0_audio.shape, generator=generator).to(dev)
    noisy_v = (1 - sigma) * x0_video + sigma * eps_v
    noisy_a = (1 - sigma) * x0_audio + sigma * eps_a
    cond = torch.zeros(1, nv, 1, dtype=torch.bool, device=dev)
    if first_frame:
        per_frame = sample["target_video"].shape[3] * sample["target_video"].shape[4]
        cond[:, :per_frame] = True
        noisy_v = torch.where(cond, x0_video, noisy_v)
    v_mask = torch.cat([(~cond).float(), torch.zeros_like(cond, dtype=torch.float)], dim=1)
    a_mask = torch.cat([torch.ones(1, na, 1, device=dev), torch.zeros(1, na, 1, device=dev)], dim=1)
    video_tokens = torch.cat([noisy_v, v.clean[:, nv:]], dim=1)
    audio_tokens = torch.cat([noisy_a, a.clean[:, na:]], dim=1)
    flags_v = torch.arange(2 * nv, device=dev) < nv
    flags_a = torch.arange(2 * na, device=dev) < na
    a2v, v2a = _isolation(flags_v, flags_a, video_tokens.dtype)
    v_pred, a_pred = model(
        video_tokens, audio_tokens, v_mask * sigma, a_mask * sigma, v.positions, a.positions,
        sample["video_context"].to(dev), sample["audio_context"].to(dev), a2v, v2a,
    )
    v_err = (v_pred[:, :nv].float() - (eps_v - x0_video)).pow(2)
    a_err = (a_pred[:, :na].float() - (eps_a - x0_audio)).pow(2)
    weight = (~cond).float()
    if sample.get("fg_mask") is not None:
        fg = sample["fg_mask"].to(dev).flatten(1)[:, :nv, None] > cfg.mask_threshold
        weight = weight * torch.where(fg, cfg.mask_loss_weight, cfg.background_loss_weight)
    video_loss = (v_err * weight / weight.mean().clamp_min(1e-8)).mean()
    audio_loss = a_err.mean()
    logs = {"video_loss": video_loss.item(), "audio_loss": audio_loss.item(), "sigma": sigma}
    return video_loss + audio_loss, logs


# ---- data + CLI -------------------------------------------------------------------------------

class LatentPairs:
    """Preprocessed pairs, one ``.safetensors`` per pair (see module docstring)."""

    KEYS = ("target_video", "target_audio", "ref_video", "ref_audio", "video_context", "audio_context")

    def __init__(self, folder: str | Path):
        self.files = sorted(Path(folder).glob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no *.safetensors pairs in {folder}")

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for f in self.files:
            d = load_file(f)
            missing = [k for k in self.KEYS if k not in d]
            if missing:
                raise ValueError(f"{f.name}: missing {', '.join(missing)}")
            yield d


def train(ckpt: str, data: str, out: str, *, steps: int = 2000, rank: int = 128, cfg: DubbingLoraConfig | None = None,
          fps: float = 25.0, mixed_precision: str = "bf16", save_every: int = 250, seed: int = 42) -> dict:
    from ..trainer import Trainer, TrainConfig

    cfg = cfg or DubbingLoraConfig(rank=rank)
    model = load_transformer(load_file(ckpt), safetensors_metadata(ckpt) if ckpt.endswith(".safetensors") else {})
    add_lora_adapters(model, cfg.rank, seed)
    if cfg.gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    generator = torch.Generator().manual_seed(seed)
    tc = TrainConfig(out_dir=out, steps=steps, lr=cfg.video_lr, schedule="linear", clip_grad=1.0,
                     mixed_precision=mixed_precision, save_every=save_every, seed=seed)
    trainer = Trainer(model, lambda m, b: dubbing_loss(m, b, cfg, generator, fps=fps), tc,
                      param_groups=param_groups(model, cfg))
    trainer.resume()
    history = trainer.fit(LatentPairs(data))
    path = save_lora(trainer.unwrapped(), Path(out) / "dubbing_lora.safetensors", cfg.rank)
    return {"step": trainer.step, "lora": str(path), "last_loss": history[-1]["loss"] if history else math.nan}


def add_arguments(p) -> None:
    p.add_argument("--ckpt", required=True, help="LTX-2 single-file checkpoint")
    p.add_argument("--data", required=True, help="folder of preprocessed pair .safetensors")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rank", type=int, default=128)
    p.add_argument("--video-lr", type=float, default=2e-4)
    p.add_argument("--audio-lr", type=float, default=1e-5)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=42)


def main(args) -> int:
    cfg = DubbingLoraConfig(rank=args.rank, video_lr=args.video_lr, audio_lr=args.audio_lr,
                            gradient_checkpointing=not args.no_gradient_checkpointing)
    result = train(args.ckpt, args.data, args.out, steps=args.steps, cfg=cfg, fps=args.fps,
                   mixed_precision=args.mixed_precision, save_every=args.save_every, seed=args.seed)
    print(json.dumps(result))
    return 0
