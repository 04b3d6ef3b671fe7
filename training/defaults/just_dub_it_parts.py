"""The parts of the JUST-DUB-IT tiny default around the AV DiT, in LTX-2.0's layouts: the video VAE, the audio VAE
and vocoder, the Gemma-3-layout text encoder with its SentencePiece tokenizer, and the DiT's flow-matching loss.

Every part is the class the loaders build (diffusers' LTX-2 classes, transformers' Gemma3TextModel) at tiny
widths; the loaders read the widths from the weights and the rest of the architecture from LTX-2.0's release
(the video VAE's block counts and 32x / 8x compression; the audio VAE's 16 kHz, 64-bin, hop-160 mel front end;
the vocoder's 240x upsampling to 24 kHz), so the tiny files keep those.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torchaudio

from ...models.just_dub_it.av_codec import encode_video, waveform_to_mel
from . import ovi_parts

# Where the world's face can be (synthworld.render: centre (0.3, 0.42) of the frame, radius 0.2 of its side,
# head motion +-0.04 / +-0.02, the profile's nose to 1.12 r) plus a 0.02 margin: (x0, y0, x1, y1) fractions.
FACE_BOX = (0.04, 0.16, 0.584, 0.68)
WORLD_RATE = 16_000  # the world's audio; the LTX-2 audio VAE's mel rate too
VOCODER_RATE = 24_000  # LTX-2.0's vocoder output (ltx_core VocoderConfigurator output_sample_rate)
MEL_BINS, MEL_HOP = 64, 160  # ltx_core audio_vae preprocessing (stft hop 160, 64 mel bins at 16 kHz)
AUDIO_KL_WEIGHT = 1e-4  # as the MMAudio mel VAE default (codecs.KL_WEIGHT): the posterior only needs to stay finite


def face_mask(size: int) -> np.ndarray:
    """[H, W] True inside FACE_BOX."""
    x0, y0, x1, y1 = (round(f * size) for f in FACE_BOX)
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


# -- video VAE ------------------------------------------------------------------------------------------------
def video_vae_config(width: int, latent_channels: int) -> dict:
    """AutoencoderKLLTX2Video at LTX-2.0's block structure (the class defaults), widths ``width`` x (1, 2, 4, 8)
    (the release: 256 x; the loader scales them back from the weights)."""
    return dict(block_out_channels=tuple(width * m for m in (1, 2, 4, 8)),
                decoder_block_out_channels=tuple(width * m for m in (1, 2, 4)), latent_channels=latent_channels)


def new_video_vae(config: dict, seed: int):
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(seed)
    return AutoencoderKLLTX2Video(**config)


@torch.no_grad()
def set_video_statistics(vae, clips: list[np.ndarray]) -> None:
    """Per-channel mean / std of the posterior means of whole training clips into ``latents_mean`` /
    ``latents_std`` (ltx_core per_channel_statistics), so the DiT sees unit-scale latents."""
    vae.eval()
    vae.latents_mean.zero_()
    vae.latents_std.fill_(1.0)
    lat = torch.cat([encode_video(vae, to_unit(c)).flatten(2) for c in clips], dim=2)
    vae.latents_mean.copy_(lat.mean(dim=(0, 2)))
    vae.latents_std.copy_(lat.std(dim=(0, 2)).clamp_min(1e-3))


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> [T, 3, H, W] in 0..1 (av_codec.encode_video's input)."""
    return torch.from_numpy(frames).float().div(255).permute(0, 3, 1, 2)


def train_video_vae(vae, key: dict, clips: list[np.ndarray], out: Path, seed: int, stages: list, *, frame_steps: int,
                    frame_batch: int, crop_steps: int, crop_batch: int, lr: float):
    """Ovi's tiny-VAE recipe (ovi_parts.train_frame_vae: single frames, then crops; background-weighted L1) on
    9-frame crops: the first frame and one 8-frame group, LTX-2's causal temporal unit."""
    return ovi_parts.train_frame_vae(vae, key, clips, out, seed, stages, frame_steps=frame_steps,
                                     frame_batch=frame_batch, crop_steps=crop_steps, crop_batch=crop_batch,
                                     crop_frames=9, lr=lr)


# -- audio VAE and vocoder ------------------------------------------------------------------------------------
def audio_vae_config(width: int) -> dict:
    """AutoencoderKLLTX2Audio: LTX-2.0's mel front end and 4x / 4x compression at ``width`` channels. The latent
    has ``width`` channels too: diffusers sizes the latent statistics by the base width, and the codec reads
    them per channel only when the two agree (av_codec._audio_stats)."""
    return dict(base_channels=width, latent_channels=width, num_res_blocks=1, mel_bins=MEL_BINS,
                mel_hop_length=MEL_HOP, sample_rate=WORLD_RATE)


def audio_codec_header(vae_cfg: dict, vocoder_cfg: dict) -> dict:
    """The single file's ``audio_vae`` / ``vocoder`` config sections in ltx_core's names (what codecs.py reads)."""
    return {
        "audio_vae": {"model": {"params": {"sampling_rate": vae_cfg["sample_rate"], "ddconfig": {
            "ch": vae_cfg["base_channels"], "out_ch": 2, "in_channels": 2, "ch_mult": [1, 2, 4],
            "num_res_blocks": vae_cfg["num_res_blocks"], "z_channels": vae_cfg["latent_channels"],
            "mel_bins": vae_cfg["mel_bins"]}}},
            "preprocessing": {"stft": {"hop_length": vae_cfg["mel_hop_length"], "filter_length": 1024, "causal": True}}},
        "vocoder": {"upsample_initial_channel": vocoder_cfg["hidden_channels"],
                    "upsample_rates": vocoder_cfg["upsample_factors"],
                    "upsample_kernel_sizes": vocoder_cfg["upsample_kernel_sizes"],
                    "resblock_kernel_sizes": vocoder_cfg["resnet_kernel_sizes"],
                    "resblock_dilation_sizes": vocoder_cfg["resnet_dilations"], "stereo": True,
                    "output_sample_rate": vocoder_cfg["output_sampling_rate"]},
    }


def vocoder_config(width: int) -> dict:
    """LTX2Vocoder in LTX-2.0's layout (HiFi-GAN, rates 6.5.2.2.2 = 240x: 10 ms mel frames to 24 kHz) with one
    small residual kernel instead of three."""
    return dict(in_channels=2 * MEL_BINS, hidden_channels=width, out_channels=2, upsample_factors=[6, 5, 2, 2, 2],
                upsample_kernel_sizes=[16, 15, 8, 4, 4], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3]],
                output_sampling_rate=VOCODER_RATE)


def new_audio_vae(config: dict, seed: int):
    from diffusers import AutoencoderKLLTX2Audio

    torch.manual_seed(seed)
    return AutoencoderKLLTX2Audio(**config)


def new_vocoder(config: dict, seed: int):
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(seed)
    return LTX2Vocoder(**config)


def mels(vae_cfg: dict, waves: list[np.ndarray]) -> list[torch.Tensor]:
    """[2, T, 64] log-mels of mono 16 kHz waves (stereo duplicated), by the codec the nodes use (which reads only
    the audio VAE's config: a stand-in carries it before the VAE exists)."""
    from types import SimpleNamespace

    probe = SimpleNamespace(config=SimpleNamespace(sample_rate=vae_cfg["sample_rate"], in_channels=2,
                                                   mel_hop_length=vae_cfg["mel_hop_length"],
                                                   mel_bins=vae_cfg["mel_bins"]))
    return [waveform_to_mel(torch.from_numpy(w)[None], WORLD_RATE, probe)[0] for w in waves]


def mel_crops(mels_: list[torch.Tensor], batch: int, seed: int, frames: int) -> Iterator[torch.Tensor]:
    """Random crops of 4k + 1 mel frames (the causal VAE's unit: 4k + 1 frames <-> k + 1 latents), at most
    ``frames`` + 1, starting on whole latent frames."""
    rng = random.Random(seed)
    frames = min([frames] + [(m.shape[1] - 1) // 4 * 4 for m in mels_]) + 1
    while True:
        out = []
        for i in rng.sample(range(len(mels_)), min(batch, len(mels_))):
            m = mels_[i]
            a = 4 * rng.randrange(0, (m.shape[1] - frames) // 4 + 1)
            out.append(m[:, a: a + frames])
        yield torch.stack(out)


def audio_vae_loss(model, mel: torch.Tensor):
    """L1 reconstruction of the log-mel from the posterior mean + a small KL (codecs.vae_loss's recipe; the DiT's
    targets are posterior means, as every encode in av_codec)."""
    net = getattr(model, "module", model)
    post = net.encode(mel).latent_dist
    rec = net.decode(post.mode()).sample
    l1 = (rec - mel).abs().mean()
    kl = post.kl().mean() / mel[0].numel()
    return l1 + AUDIO_KL_WEIGHT * kl, {"l1": float(l1.detach()), "kl": float(kl.detach())}


@torch.no_grad()
def set_audio_statistics(vae, mels_: list[torch.Tensor]) -> None:
    """Per-channel mean / std of the posterior means into ``latents_mean`` / ``latents_std``."""
    vae.eval()
    z = torch.cat([vae.encode(m[None]).latent_dist.mode().transpose(0, 1).flatten(1) for m in mels_], dim=1)
    vae.latents_mean.copy_(z.mean(dim=1))
    vae.latents_std.copy_(z.std(dim=1).clamp_min(1e-3))


class VocoderPair(NamedTuple):
    mel: torch.Tensor  # [B, 2, T, 64]
    wave: torch.Tensor  # [B, T * 240] at 24 kHz


def vocoder_batches(mels_: list[torch.Tensor], waves24: list[torch.Tensor], batch: int, seed: int,
                    frames: int = 32) -> Iterator[VocoderPair]:
    rng = random.Random(seed)
    hop = VOCODER_RATE * MEL_HOP // WORLD_RATE
    while True:
        m, w = [], []
        for i in rng.sample(range(len(mels_)), min(batch, len(mels_))):
            a = rng.randrange(0, max(1, mels_[i].shape[1] - frames))
            m.append(mels_[i][:, a: a + frames])
            w.append(waves24[i][a * hop: (a + frames) * hop])
        yield VocoderPair(torch.stack(m), torch.stack(w))


def to_vocoder_rate(waves: list[np.ndarray]) -> list[torch.Tensor]:
    return [torchaudio.functional.resample(torch.from_numpy(w).float(), WORLD_RATE, VOCODER_RATE) for w in waves]


def to_world_rate(wave: torch.Tensor, rate: int) -> torch.Tensor:
    return torchaudio.functional.resample(wave.float(), rate, WORLD_RATE)


def envelope_r(a: np.ndarray, b: np.ndarray, hop: int = WORLD_RATE // 100) -> float:
    """Pearson r of two 16 kHz waves' 10 ms RMS envelopes."""
    n = min(len(a), len(b)) // hop * hop
    ea, eb = (np.sqrt((x[:n].reshape(-1, hop) ** 2).mean(1)) for x in (a, b))
    return float(np.corrcoef(ea, eb)[0, 1]) if ea.std() > 0 and eb.std() > 0 else 0.0


def vocoder_loss(model, batch: VocoderPair):
    """The MMAudio tiny vocoder's regression terms (codecs.spectral_terms: MR-STFT log-magnitude + DC, no GAN)
    on both channels, which should both be the mono target (the world's sound is mono)."""
    from .codecs import DC_WEIGHT, spectral_terms

    pred = model(batch.mel)[..., : batch.wave.shape[-1]]
    stft, dc = spectral_terms(pred.flatten(0, 1), batch.wave.repeat_interleave(2, dim=0))
    return stft + DC_WEIGHT * dc, {"stft": float(stft.detach()), "dc": float(dc.detach())}


# -- text encoder -----------------------------------------------------------------------------------------------
def train_spiece(texts: list[str], vocab_size: int) -> bytes:
    """A SentencePiece BPE model of the prompts (Gemma's ids: pad 0, eos 1, bos 2, unk 3), as bytes."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, hard_vocab_limit=False, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    return model.getvalue()


def new_gemma(vocab: int, width: int, layers: int, seed: int):
    """A frozen random Gemma3TextModel at tiny sizes, with the config the single-file loader gives it (Gemma-3
    12B-it's constants, sizes from the shapes), so what trains the DiT is what the nodes load."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3TextModel

    from ...models.just_dub_it.gemma_file import gemma3_text_config

    head = max(8, width // 2)
    shapes = {"embed_tokens.weight": torch.empty(vocab, width), "layers.0.self_attn.q_norm.weight": torch.empty(head),
              "layers.0.self_attn.q_proj.weight": torch.empty(2 * head, width),
              "layers.0.self_attn.k_proj.weight": torch.empty(head, width),
              "layers.0.mlp.gate_proj.weight": torch.empty(2 * width, width)}
    shapes.update({f"layers.{i}.x": torch.empty(0) for i in range(layers)})
    torch.manual_seed(seed)
    return Gemma3TextModel(gemma3_text_config(shapes)).eval().requires_grad_(False)


# -- the DiT's loss -------------------------------------------------------------------------------------------
class AVBatch(NamedTuple):
    video: torch.Tensor  # [B, Nv, C] patchified normalised video latents
    audio: torch.Tensor  # [B, Na, C*M]
    text: torch.Tensor  # [B, T, D, layers + 1] Gemma hidden states (frozen encoder: computed once per prompt)
    text_mask: torch.Tensor  # [B, T]


class BaseAV(torch.nn.Module):
    """What the base stage trains: the AV transformer and the text connectors (LTX-2 trains both; Gemma frozen)."""

    def __init__(self, transformer, connectors):
        super().__init__()
        self.transformer, self.connectors = transformer, connectors


def av_batches(items: list[dict], uncond: tuple[torch.Tensor, torch.Tensor], batch: int, seed: int,
               text_dropout: float) -> Iterator[AVBatch]:
    """Random clips; each prompt replaced by the empty prompt with ``text_dropout`` (for CFG at sampling)."""
    rng = random.Random(seed)
    while True:
        rows = rng.sample(items, min(batch, len(items)))
        texts = [(uncond if rng.random() < text_dropout else (r["text"], r["text_mask"])) for r in rows]
        yield AVBatch(torch.stack([r["video"] for r in rows]), torch.stack([r["audio"] for r in rows]),
                      torch.stack([t for t, _ in texts]), torch.stack([m for _, m in texts]))


def make_av_loss(fps: float, latent_shape: tuple[int, int, int], seed: int, logit_std: float = 1.0):
    """Flow matching on the joint latents with every token noised at one sigma per clip (the dubbing LoRA's loss,
    training.just_dub_it.train.dubbing_loss, without context tokens): x_s = (1 - s) x0 + s eps, target eps - x0,
    s from ltx_trainer's shifted logit-normal at the clip's token count; video and audio losses summed."""
    from ...models.just_dub_it.in_context import audio_positions, video_positions
    from ..just_dub_it.train import shifted_logit_normal

    generator = torch.Generator().manual_seed(seed)
    frames, height, width = latent_shape

    def loss_fn(model, b: AVBatch):
        net = getattr(model, "module", model)
        n, nv, na = b.video.shape[0], b.video.shape[1], b.audio.shape[1]
        sigma = torch.tensor([shifted_logit_normal(nv, generator, logit_std) for _ in range(n)]).view(n, 1, 1)
        eps_v, eps_a = torch.randn(b.video.shape, generator=generator), torch.randn(b.audio.shape, generator=generator)
        noisy_v, noisy_a = (1 - sigma) * b.video + sigma * eps_v, (1 - sigma) * b.audio + sigma * eps_a
        video_ctx, audio_ctx, _ = net.connectors(b.text, b.text_mask, padding_side="left")
        v_pred, a_pred = net.transformer(
            noisy_v, noisy_a, sigma.expand(n, nv, 1), sigma.expand(n, na, 1),
            video_positions(frames, height, width, fps, batch=n), audio_positions(na, batch=n), video_ctx, audio_ctx)
        video_loss = (v_pred.float() - (eps_v - b.video)).pow(2).mean()
        audio_loss = (a_pred.float() - (eps_a - b.audio)).pow(2).mean()
        return video_loss + audio_loss, {"video_loss": float(video_loss.detach()), "audio_loss": float(audio_loss.detach())}

    return loss_fn


__all__ = ["AVBatch", "BaseAV", "FACE_BOX", "VocoderPair", "audio_codec_header", "audio_vae_config", "audio_vae_loss",
           "av_batches", "envelope_r", "face_mask", "make_av_loss", "mel_crops", "mels", "new_audio_vae", "new_gemma",
           "new_video_vae", "new_vocoder", "set_audio_statistics", "set_video_statistics", "to_unit",
           "to_vocoder_rate", "to_world_rate", "train_spiece", "train_video_vae", "video_vae_config", "vocoder_batches",
           "vocoder_config", "vocoder_loss"]
