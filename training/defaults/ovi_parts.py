"""The parts of the Ovi tiny default around the twin DiTs: a Wan2.2-layout video VAE trained on the world's
frames, and a umt5-layout text encoder (random and frozen) with a word-level tokenizer of the world's captions.

The video VAE keeps Wan2.2's design (patch 2, three residual downsamplings: 16x spatial, 4x temporal, causal
in time) at a tiny width and latent size; its per-channel latent statistics, measured on the training clips,
go into the file's ``config`` metadata (``latents_mean`` / ``latents_std``) where the Wan VAE loader reads them,
so the Ovi model sees unit-scale latents as it does with Wan2.2's own statistics.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch

KL_WEIGHT = 1e-6  # the posterior only needs to stay finite; reconstruction is what the DiT's targets need
# Pixels off their clip's background (its median frame: the balls, the lamp's light, the mouth) weigh this much
# more: a ball is ~1 % of a frame, and under plain or motion-weighted L1 the decoder drew the room and a blurred
# face and no ball, even when overfitting ONE frame (benchmarks/tiny_defaults_ovi.md, round 2).
BALL_WEIGHT = 30.0
DECODER_MSE_WEIGHT = 1.0
SPECIALS = ("<pad>", "</s>", "<unk>")  # umt5's ids 0, 1, 2
SPEECH_TAGS = ("<S>", "<E>")  # Ovi's speech tags (models/ovi/text.py) stay whole tokens


def tiny_vae_config(z_dim: int, base_dim: int) -> dict:
    """AutoencoderKLWan sizes: Wan2.2's layout (patch 2, residual blocks, 16x / 4x) at a tiny width."""
    return dict(base_dim=base_dim, decoder_base_dim=base_dim, z_dim=z_dim, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                attn_scales=[], temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)


def new_video_vae(config: dict, seed: int):
    from ...models.ovi.video_vae import build_wan_vae

    torch.manual_seed(seed)
    return build_wan_vae(**config)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> [3, T, H, W] in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(frames).float().div(127.5).sub(1).permute(3, 0, 1, 2)


class VaeBatch(NamedTuple):
    pixels: torch.Tensor  # [B, 3, T, H, W] in [-1, 1]
    background: torch.Tensor  # [B, 3, 1, H, W]: each crop's clip's median frame


def background(frames: np.ndarray) -> np.ndarray:
    """A clip's median frame: the room and the still face (the balls move, so they are not in it)."""
    return np.median(frames, axis=0, keepdims=True).astype(np.uint8)


def frame_batches(clips: list[np.ndarray], batch: int, seed: int, frames: int = 5) -> Iterator[VaeBatch]:
    """Random crops of ``frames`` = 1 + 4k frames (1: the causal VAE's first frame, an image; 5: the first frame
    and one 4-frame group), with their clips' backgrounds."""
    rng = random.Random(seed)
    backgrounds = [to_pixels(background(c)) for c in clips]
    while True:
        out, bgs = [], []
        for i in rng.sample(range(len(clips)), min(batch, len(clips))):
            a = rng.randrange(0, clips[i].shape[0] - frames + 1)
            out.append(to_pixels(clips[i][a: a + frames]))
            bgs.append(backgrounds[i])
        yield VaeBatch(torch.stack(out), torch.stack(bgs))


def off_background(x: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, H, W] 1 where a pixel stands off its clip's background frame."""
    return (x - bg).abs().amax(1, keepdim=True).gt(0.1).to(x.dtype)


def reconstruction(model, batch: VaeBatch):
    """(posterior, decoded posterior mean) of a batch."""
    net = getattr(model, "module", model)
    post = net.encode(batch.pixels).latent_dist
    # The posterior mean, not a sample: the DiT's targets and every encode are means (video_vae.encode_video),
    # and a sample's initial unit variance hides the ball from the decoder (measured: after 300 steps on
    # samples the decoder drew the face and the room and no ball; benchmarks/tiny_defaults_ovi.md).
    return post, net.decode(post.mode()).sample


def weighted_mean(error: torch.Tensor, batch: VaeBatch) -> torch.Tensor:
    """Mean of a per-pixel error with the pixels off the clip's background weighted BALL_WEIGHT x."""
    w = 1 + BALL_WEIGHT * off_background(batch.pixels, batch.background)
    return (error * w).mean() / w.mean()


def weighted_l1(rec: torch.Tensor, batch: VaeBatch) -> torch.Tensor:
    return weighted_mean((rec - batch.pixels).abs(), batch)


def weighted_mse(rec: torch.Tensor, batch: VaeBatch) -> torch.Tensor:
    return weighted_mean((rec - batch.pixels).pow(2), batch)


def vae_loss(model, batch: VaeBatch, mse_weight: float = 0.0):
    """L1 reconstruction of the posterior mean, pixels off the clip's background weighted BALL_WEIGHT x, + a
    small KL. The ball's position is what the DiT's sync depends on, and it is ~1 % of a frame. (Weighting
    off a single room colour instead made the decoder paint the face bigger; the clip's median frame holds the
    face, so only what moves is weighted: benchmarks/tiny_defaults_ovi.md.) ``mse_weight`` adds the squared
    error under the same weights: L1's gradient has the same size for a ball not drawn at all as for a small
    error, the squared term's grows with the error. Under L1 alone every one-thread run of Ovi's recipe left the
    second (green) ball out (benchmarks/tiny_defaults_ovi.md, "The green ball and the later latents")."""
    post, rec = reconstruction(model, batch)
    l1 = weighted_l1(rec, batch)
    kl = post.kl().mean() / batch.pixels[0].numel()
    logs = {"l1": float(l1.detach()), "kl": float(kl.detach())}
    loss = l1 + KL_WEIGHT * kl
    if mse_weight:
        mse = weighted_mse(rec, batch)
        loss, logs["mse"] = loss + mse_weight * mse, float(mse.detach())
    return loss, logs


def decoder_loss(model, batch: VaeBatch):
    """vae_loss's weighted L1 plus the plain squared error: PSNR, what i2av's first frame is judged by, is
    squared error over the whole frame, room and face included (the KL is left out: the encoder is frozen)."""
    _, rec = reconstruction(model, batch)
    l1, mse = weighted_l1(rec, batch), (rec - batch.pixels).pow(2).mean()
    return l1 + DECODER_MSE_WEIGHT * mse, {"l1": float(l1.detach()), "mse": float(mse.detach())}


def train_frame_vae(vae, key: dict, clips: list[np.ndarray], out: Path, seed: int, stages: list, *, frame_steps: int,
                    frame_batch: int, crop_steps: int, crop_batch: int, crop_frames: int, lr: float,
                    mse_weight: float = 0.0):
    """The tiny video VAEs' recipe (Ovi's Wan layout, MTV's CogVideoX layout): ``frame_steps`` on single frames
    (stage ``video_vae_frames``: the spatial path), then ``crop_steps`` on ``crop_frames``-frame crops (stage
    ``video_vae``, cosine: the temporal path), both by ``vae_loss`` (with ``mse_weight``) and resumed by ``key``."""
    from functools import partial

    from .stages import run_stage

    loss = partial(vae_loss, mse_weight=mse_weight) if mse_weight else vae_loss
    if mse_weight:  # without it the key stays as it was, so earlier runs' stages are still found
        key = key | {"mse": mse_weight}
    if frame_steps:
        vae = run_stage(vae, loss, frame_batches(clips, frame_batch, seed, frames=1), frame_steps, lr, out, seed,
                        stages, "video_vae_frames", resume=True, key=key | {"batch": frame_batch, "frames": 1})
        key = key | {"after": stages[-1]["key"]}
    return run_stage(vae, loss, frame_batches(clips, crop_batch, seed + 1, frames=crop_frames), crop_steps, lr,
                     out, seed, stages, "video_vae", resume=True, schedule="cosine",
                     key=key | {"batch": crop_batch, "frames": crop_frames})


def alternate(*streams: Iterator) -> Iterator:
    """One item from each stream in turn."""
    while True:
        for stream in streams:
            yield next(stream)


def train_decoder(vae, key: dict, clips: list[np.ndarray], out: Path, seed: int, stages: list, *, steps: int, lr: float,
                  frozen: tuple[str, ...] = ("encoder", "quant_conv"), crop_frames: int = 5):
    """Fine-tune the decoder alone (stage ``video_vae_decoder``, cosine, by ``decoder_loss``): the encoder stays
    bit for bit, so every latent, and the DiT trained on them, is unchanged (as Stable Diffusion's ft-MSE VAE
    fine-tuned only its decoder). Batches alternate single frames (the causal VAE's first frame, the picture
    i2av decodes from the given image's latent) and ``crop_frames``-frame crops (the rest of a clip). Modules
    named in ``frozen`` that the VAE lacks (CogVideoX's ``quant_conv`` when switched off) are skipped."""
    from .stages import run_stage

    vae.requires_grad_(True)
    for name in frozen:
        if getattr(vae, name, None) is not None:
            getattr(vae, name).requires_grad_(False)
    data = alternate(frame_batches(clips, 8, seed + 2, frames=1),
                     frame_batches(clips, 4, seed + 3, frames=crop_frames))
    crops = {} if crop_frames == 5 else {"crop_frames": crop_frames}  # keeps the Ovi stage's key as it was
    vae = run_stage(vae, decoder_loss, data, steps, lr, out, seed, stages, "video_vae_decoder", resume=True,
                    schedule="cosine", key=key | {"loss": [DECODER_MSE_WEIGHT, BALL_WEIGHT], "frozen": list(frozen)}
                    | crops)
    return vae.requires_grad_(False).eval()


@torch.no_grad()
def set_latent_statistics(vae, clips: list[np.ndarray]) -> None:
    """Per-channel mean / std of the posterior means of whole training clips, into the VAE's config."""
    from ...models.ovi.video_vae import encode_video

    vae.eval()
    vae.register_to_config(latents_mean=[0.0] * vae.config.z_dim, latents_std=[1.0] * vae.config.z_dim)
    lat = torch.cat([encode_video(vae, torch.from_numpy(f[None]).float() / 255).flatten(2) for f in clips], dim=2)
    vae.register_to_config(latents_mean=lat.mean(dim=(0, 2)).tolist(),
                           latents_std=lat.std(dim=(0, 2)).clamp_min(1e-3).tolist())


def save_video_vae(vae, path: Path) -> Path:
    """diffusers AutoencoderKLWan layout (one of the two the Wan2.2 VAE loader reads), fp16, config in metadata."""
    from safetensors.torch import save_file

    cfg = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    save_file({k: v.detach().half().contiguous() for k, v in vae.state_dict().items()}, str(path),
              metadata={"config": json.dumps(cfg)})
    return path


# -- text ---------------------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], path: Path) -> Path:
    """A word-level tokenizer.json of the captions' words (lower case, punctuation split off), with umt5's
    special tokens and ``</s>`` appended to every text, as umt5's tokenizer does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    words = sorted({w for t in texts for w, _ in pre.pre_tokenize_str(t.lower())} - set(SPECIALS))
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    tok.add_special_tokens(list(SPECIALS))
    tok.add_tokens(list(SPEECH_TAGS))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.save(str(path))
    return path


def new_umt5(vocab: int, d_model: int, seed: int):
    """A tiny UMT5EncoderModel in umt5-xxl's design (gated GELU FFN, relative attention per layer)."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    cfg = UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // 2, d_ff=2 * d_model, num_layers=1,
                     num_heads=2, relative_attention_num_buckets=32, feed_forward_proj="gated-gelu",
                     dense_act_fn="gelu_new", is_gated_act=True, layer_norm_epsilon=1e-6)
    return UMT5EncoderModel(cfg).eval().requires_grad_(False)


def save_umt5(model, path: Path) -> Path:
    from safetensors.torch import save_file

    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(sd, str(path))
    return path


__all__ = ["VaeBatch", "background", "frame_batches", "new_umt5", "new_video_vae", "off_background", "save_umt5",
           "save_video_vae", "set_latent_statistics", "tiny_vae_config", "train_frame_vae", "train_tokenizer",
           "vae_loss"]
