"""Ovi tiny default: a Wan2.2-layout video VAE on the world's frames, a frozen random umt5-layout text encoder,
then the twin DiTs with blockwise fusion trained by ``train ovi``'s loss (shared t, 0.85 / 0.15 weights).

Clips are the world's at Ovi's 24 fps, 1 + 4k frames long (Ovi's 121 frames = 5.04 s; here 49 = 2.04 s),
drawn small. A quarter of the clip indices speak (``full`` clips, the face says a grammar sentence) and the
rest are ``v2a`` clips (balls and the lamp only), so that "speech iff the caption has a line" is learnable
apart from the ball count (one or two balls go with the index's parity). The audio is the effects stem plus
the speech stem; the world's music is left out (an off-screen track the picture cannot predict) and so is
its mention in the caption. The prompt is the caption in Ovi's format: the spoken line inside ``<S>..<E>``.

Audio uses MMAudio's 16 kHz codec as Ovi does: the AudioGen-Omni default's mel VAE and vocoder, read from the
pack's defaults (never trained here). Every stage resumes by key (stages.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ... import defaults as pack_defaults
from ...synthworld import generate_clip
from ...synthworld.splits import clip_spec
from . import ovi_parts as parts
from .stages import run_stage, start_run, write_train_report

SYSTEM = "ovi"
PREFIX = "soundstage-tiny/ovi"
FILES = {"model": "ovi_fusion.safetensors", "vae": "wan2.2_vae.safetensors", "text_encoder": "umt5.safetensors",
         "tokenizer": "umt5.tokenizer.json"}
FOLDERS = {"model": "soundstage_ovi", "vae": "vae", "text_encoder": "text_encoders", "tokenizer": "text_encoders"}
# MMAudio's 16 kHz codec, as Ovi uses it: the AudioGen-Omni default's files (defaults/soundstage_mmaudio/...)
AUDIO_CODEC = {"vae": "mel_vae_16k.safetensors", "vocoder": "bigvgan_16k.safetensors"}
AUDIO_CODEC_SYSTEM, AUDIO_CODEC_FOLDER = "audiogen_omni", "soundstage_mmaudio"
FPS = 24  # Ovi's frame rate (models/ovi/preprocess.py VIDEO_FPS)


@dataclass(frozen=True)
class Scale:
    train_clips: int
    latent_frames: int  # video latents per clip: 1 + 4 (latent_frames - 1) frames at 24 fps
    size: int  # frame side (px), a multiple of 32
    vae_steps: int  # on 5-frame crops (the first frame and one 4-frame group: the causal temporal path)
    dit_steps: int
    vae_frame_steps: int = 0  # first, on single frames (images: the spatial path, ~1/2 the CPU s of a crop step)
    vae_frame_batch: int = 8
    vae_decoder_steps: int = 0  # last, the decoder alone (encoder frozen: the latents stay), for i2av's first frame
    vae_decoder_lr: float = 5e-4
    vae_decoder_frames: int = 5  # the decoder stage's clip crops (13: four latents, past where the cache settles)
    vae_mse: float = 0.0  # weight of the squared error beside the VAE stages' L1 (ovi_parts.vae_loss)
    batch: int = 8
    lr: float = 1e-3
    vae_batch: int = 4
    vae_lr: float = 2e-3
    z_dim: int = 16
    vae_width: int = 8
    text_dim: int = 32
    hidden: int = 64  # one 64-wide head (the loader's default: dim / 128, at least 1)
    layers: int = 2
    ffn: int = 128
    i2v_share: float = 0.25
    text_dropout: float = 0.1
    ema: float = 0.99
    sample_steps: int = 16
    shift: float = 5.0  # Ovi's default
    video_cfg: float = 1.0  # the default's sampling (eval-defaults and the workflows); 1 = no guidance
    audio_cfg: float = 1.0
    speech_every: int = 4  # clip indices i % speech_every >= speech_every // 2 speak (see the module doc)

    @property
    def frames(self) -> int:
        return 1 + 4 * (self.latent_frames - 1)

    @property
    def seconds(self) -> float:
        return self.frames / FPS


SCALES = {
    "smoke": Scale(train_clips=4, latent_frames=2, size=32, vae_steps=2, dit_steps=2, batch=2, vae_batch=2,
                   vae_frame_steps=2, vae_frame_batch=2, vae_decoder_steps=2, z_dim=8, hidden=32, ffn=64, text_dim=16,
                   sample_steps=2),
    # minutes on a 2-core CPU. VAE: 2000 single frames + 2400 5-frame crops, ~10 CPU min: keeps the red balls
    # within ~2 px; the green ball is not yet reliable (benchmarks/tiny_defaults_ovi.md, round 2)
    "feasibility": Scale(train_clips=48, latent_frames=13, size=64, vae_frame_steps=2000, vae_steps=2400,
                         dit_steps=600),
    # a plan sized from the measured CPU s/step; a width-16 VAE keeps both balls, a 128-wide fusion model draws
    # them, and four fusion blocks draw the caption's balls in 15 of 16 held-out clips (benchmarks/tiny_defaults_ovi.md,
    # "A wider VAE, the seam, and what was shipped" and "Four fusion blocks")
    # The decoder fine-tune lifts i2av's first frame from 23.7 to 26.3 dB (median of 16 held-out images) and the
    # clip round trip from 22.2 to 23.3 dB; guidance 3 / 2 (picked on held-out clips 100-163, not the card's)
    # draws the caption's balls in every clip and lands the sound closer to the contacts
    # (benchmarks/tiny_defaults_ovi.md, "Guidance and a decoder fine-tune")
    # The squared error beside the L1 keeps the green ball (both runs with it; under L1 alone every one-thread run
    # of the recipe, also at 48 channels or width 24, lost it), and
    # the decoder stage's 13-frame crops decode every later latent as well as the first two (5-frame crops trained
    # only those: 20 dB from the fourth latent on; benchmarks/tiny_defaults_ovi.md, "The green ball and the later
    # latents")
    "full": Scale(train_clips=256, latent_frames=13, size=64, vae_frame_steps=2000, vae_steps=2400, dit_steps=4000,
                  vae_width=16, hidden=128, ffn=256, layers=4, vae_decoder_steps=2000, video_cfg=3.0, audio_cfg=2.0,
                  vae_mse=1.0, vae_decoder_frames=13),
}


def speaks(index: int, sc: Scale) -> bool:
    return index % sc.speech_every >= sc.speech_every // 2


def prompt(caption: str) -> str:
    """The world's caption in Ovi's prompt format: music dropped (not in the audio), the line in <S>..<E>."""
    head, sep, tail = caption.rpartition(" over ")
    text = head if sep and tail.endswith(" music") else caption
    if '"' in text:
        a, line, b = text.split('"', 2)
        text = f"{a}<S>{line}<E>{b}"
    return text


@dataclass
class OviClip:
    index: int
    frames: np.ndarray  # [T, H, W, 3] uint8 at 24 fps
    audio: np.ndarray  # effects + speech, 16 kHz
    truth: dict
    prompt: str


def ovi_clips(split: str, count: int, sc: Scale, start: int = 0) -> list[OviClip]:
    out = []
    for i in range(start, start + count):
        c = generate_clip(clip_spec(split, i, task="full" if speaks(i, sc) else "v2a", seconds=sc.seconds,
                                    size=sc.size, fps=FPS))
        out.append(OviClip(i, c.frames, (c.stems["effects"] + c.stems["speech"]).astype(np.float32), c.truth,
                           prompt(c.truth["caption"])))
    return out


def audio_codec(root: Path | None = None):
    """(mel VAE, vocoder) of the AudioGen-Omni default, by the strict loaders."""
    from ...models.common.checkpoint import load_file
    from ...models.common.codecs.bigvgan import load_bigvgan
    from ...models.common.codecs.mmaudio_vae import load_mel_vae

    paths = {k: pack_defaults.file_path(AUDIO_CODEC_FOLDER, AUDIO_CODEC_SYSTEM, f, root) for k, f in AUDIO_CODEC.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the Ovi default reuses the AudioGen-Omni default's 16 kHz codec; not found: "
                                f"{', '.join(missing)} (train-defaults audiogen_omni --install first)")
    return (load_mel_vae(load_file(paths["vae"]), dtype=torch.float32),
            load_bigvgan(load_file(paths["vocoder"]), dtype=torch.float32))


@torch.no_grad()
def audio_latents(vae, waves: list[np.ndarray]) -> list[torch.Tensor]:
    """[L, 20] mel-VAE posterior means, the layout Ovi's audio tower takes."""
    from ...models.common.codecs.mel import MEL_16K, LogMel
    from . import codecs

    mel = LogMel(MEL_16K)
    return [vae.encode(m[None])[0][0].T.contiguous() for _, m in codecs.waves_and_mels(waves, mel)]


def fusion_config(sc: Scale, audio_dim: int):
    from ...models.ovi.fusion import FusionConfig
    from ...models.ovi.loader import WAN_TEXT_LEN
    from ...models.ovi.tower import audio_config, video_config

    common = dict(dim=sc.hidden, ffn_dim=sc.ffn, freq_dim=sc.hidden, num_heads=1, num_layers=sc.layers,
                  text_dim=sc.text_dim, text_len=WAN_TEXT_LEN)
    return FusionConfig(video=video_config(in_dim=sc.z_dim, out_dim=sc.z_dim, **common),
                        audio=audio_config(in_dim=audio_dim, out_dim=audio_dim, **common))


def text_encoder(weights: Path, text_len: int):
    """The saved umt5 + tokenizer, through the loaders the nodes use."""
    from ...models.ovi.text import Umt5TextEncoder, load_tokenizer, load_umt5

    return Umt5TextEncoder(load_umt5(weights / FILES["text_encoder"], dtype=torch.float32),
                           load_tokenizer(weights / FILES["tokenizer"]), text_len)


def train_video_vae(sc: Scale, frames: list[np.ndarray], data: dict, out: Path, seed: int, stages: list):
    """Single frames first (cheap steps that teach the spatial path to keep the balls), then 5-frame crops (the
    causal 4x temporal path); both by the background-weighted L1 (with ``vae_mse``, also the squared error;
    ovi_parts.train_frame_vae). Returns the VAE with its latent statistics set, and the last stage's key (what
    the fusion stage depends on)."""
    cfg = parts.tiny_vae_config(sc.z_dim, sc.vae_width)
    key = {"data": data, "config": cfg, "loss": [parts.KL_WEIGHT, parts.BALL_WEIGHT]}
    vae = parts.train_frame_vae(parts.new_video_vae(cfg, seed), key, frames, out, seed, stages,
                                frame_steps=sc.vae_frame_steps, frame_batch=sc.vae_frame_batch,
                                crop_steps=sc.vae_steps, crop_batch=sc.vae_batch, crop_frames=5, lr=sc.vae_lr,
                                mse_weight=sc.vae_mse)
    parts.set_latent_statistics(vae, frames)
    return vae, stages[-1]["key"]


@torch.no_grad()
def video_vae_check(vae, sc: Scale, clips: int = 4) -> dict:
    """Held-out round trip through the video VAE: PSNR, and whether the caption's balls are still seen (the DiT
    cannot draw a ball its VAE cannot decode: check this before spending steps on the fusion stage)."""
    from . import ovi_eval

    psnrs, firsts, seen = [], [], []
    for c in ovi_clips("heldout", clips, sc):
        frames = round_trip_frames(vae, c.frames)
        psnrs.append(ovi_eval.psnr(frames, c.frames))
        firsts.append(ovi_eval.psnr(round_trip_frames(vae, c.frames[:1])[0], c.frames[0]))  # as i2av encodes it
        seen.append(ovi_eval.seen_colours(frames) == ovi_eval.caption_colours(c.prompt))
    return {"clips": clips, "psnr_db": round(float(np.mean(psnrs)), 2),
            "first_frame_psnr_db": round(float(np.median(firsts)), 2), "balls_seen": round(float(np.mean(seen)), 3)}


@torch.no_grad()
def round_trip_frames(vae, frames: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] (T = 1 + 4k) through the video VAE's encoder and decoder."""
    from ...models.ovi.video_vae import decode_video, encode_video

    z = encode_video(vae, torch.from_numpy(frames[None]).float() / 255)
    return (decode_video(vae, z)[0].numpy() * 255).round().astype(np.uint8)


class OviRecipe:
    system = SYSTEM
    card_clips = 64  # 16 clips hold ~27 floor contacts, half of them in speaking clips (dense chance onsets)
    files = FILES
    folders = FOLDERS
    can = ["text (and a first frame) to a 2 s, 64 px, 24 fps clip of the synthetic world with its 16 kHz sound in "
           "one pass: bouncing balls of the caption's colours with an impact at each floor contact, the lamp's "
           "beep, a spoken line when the prompt has one in <S>..<E>"]
    cannot = ["anything outside the cartoon world; free text beyond the world's caption words maps to <unk>",
              "intelligible speech (the 16 kHz codec was trained on effects only; speech comes out as voice-like sound)",
              "music; other sizes or lengths than trained (64 px, 13 video / 64 audio latents)"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ...models.ovi.loader import load_ovi_fusion, save_ovi_fusion
        from ...models.ovi.fusion import OviFusion
        from ...models.ovi.video_vae import encode_video, load_wan_vae
        from ..audiogen_omni.train import EMA
        from ..ovi.train import LossConfig, batches, make_loss_fn, write_features

        sc = SCALES[scale]
        out, weights, stages, (t0, cpu0) = start_run(out_dir, sc, seed)
        clips = ovi_clips("train", sc.train_clips, sc)
        data = {"split": "train", "clips": sc.train_clips, "frames": sc.frames, "size": sc.size,
                "speech_every": sc.speech_every}
        data_s = time.time() - t0

        # 1. the video VAE
        vae, vae_stage_key = train_video_vae(sc, [c.frames for c in clips], data, out, seed, stages)
        parts.save_video_vae(vae, weights / FILES["vae"])
        vae = load_wan_vae(weights / FILES["vae"], dtype=torch.float32)  # what inference reads
        if sc.vae_decoder_steps:  # on the saved VAE: its fp16 encoder is the one the features come from
            vae = parts.train_decoder(vae, {"data": data, "after": vae_stage_key}, [c.frames for c in clips], out,
                                      seed, stages, steps=sc.vae_decoder_steps, lr=sc.vae_decoder_lr,
                                      crop_frames=sc.vae_decoder_frames)
            parts.save_video_vae(vae, weights / FILES["vae"])
            vae = load_wan_vae(weights / FILES["vae"], dtype=torch.float32)
        vae_check = video_vae_check(vae, sc)

        # 2. the text encoder: random and frozen (its outputs are fixed features of the caption's tokens)
        parts.train_tokenizer([c.prompt for c in clips], weights / FILES["tokenizer"])
        from ...models.ovi.text import load_tokenizer

        vocab = len(load_tokenizer(weights / FILES["tokenizer"]))
        parts.save_umt5(parts.new_umt5(vocab, sc.text_dim, seed + 1), weights / FILES["text_encoder"])
        config = fusion_config(sc, audio_dim=20)
        enc = text_encoder(weights, config.video.text_len)

        # 3. features: what ``train ovi`` reads from a data folder
        t1 = time.time()
        mel_vae, _ = audio_codec()
        auds = audio_latents(mel_vae, [c.audio for c in clips])
        feats = [{"video": encode_video(vae, torch.from_numpy(c.frames[None]).float() / 255)[0], "audio": a, "text": t}
                 for c, a, t in zip(clips, auds, enc.encode([c.prompt for c in clips]))]
        folder = write_features(out / "features", feats, [str(c.index) for c in clips])
        features_s = time.time() - t1

        # 4. the twin DiTs with fusion, by ``train ovi``'s loss
        torch.manual_seed(seed + 2)
        net = OviFusion(config)
        loss = LossConfig(i2v_share=sc.i2v_share, text_dropout=sc.text_dropout)
        ema = EMA(net, sc.ema)
        run_stage(net, make_loss_fn(loss, seed=seed), batches(feats, sc.batch, seed), sc.dit_steps, sc.lr, out, seed,
                  stages, "fusion", ema=ema, resume=True, schedule="cosine",
                  key={"data": data, "batch": sc.batch, "config": {"video": config.video.as_dict(),
                                                                   "audio": config.audio.as_dict()},
                       "loss": asdict(loss), "after": {"video_vae": vae_stage_key, "text_seed": seed + 1,
                                                       "vocab": vocab}})
        save_ovi_fusion(ema.shadow, weights / FILES["model"], dtype=torch.float16)
        load_ovi_fusion(weights / FILES["model"])  # strict read-back: the file is what the loader expects

        return write_train_report(
            out, SYSTEM, FILES, scale=scale, settings=asdict(sc) | {"seconds": round(sc.seconds, 3)}, seed=seed,
            stages=stages, started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index], data_s=round(data_s, 1),
            features_s=round(features_s, 1), features=folder.name, video_vae_heldout=vae_check,
            audio_codec={k: f"soundstage-tiny/{AUDIO_CODEC_SYSTEM}/{v}" for k, v in AUDIO_CODEC.items()})

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .ovi_eval import evaluate_ovi

        return evaluate_ovi(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = OviRecipe()


__all__ = ["FILES", "FOLDERS", "RECIPE", "SCALES", "Scale", "audio_codec", "audio_latents", "fusion_config",
           "ovi_clips", "prompt", "speaks", "text_encoder", "train_video_vae", "video_vae_check"]
