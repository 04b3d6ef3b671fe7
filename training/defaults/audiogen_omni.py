"""AudioGen-Omni tiny default, stage by stage: mel VAE, vocoder, then the MMDiT (``train audiogen``'s loss).

Video to audio first: the target is the effects stem of ``v2a`` clips (balls bouncing, the lamp's beeps),
conditioned on Synchformer-layout features of the frames. The Synchformer here is a tiny network in the
released layout; a scale with ``synchformer_steps`` first distils it onto the oracle sync stream (the
ground-truth event envelope at each token's tubelet, sync_proxy.py), then freezes it, and the MMDiT
learns from its features, the ones inference computes (with random frozen features the MMDiT ignored the
video; benchmarks/tiny_defaults_feasibility.md). Every stage runs on the shared accelerate trainer; a scale
fixes clip counts and step counts, so a seed gives the same weights on every run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...models.audiogen_omni.mmdit import MMDiT, MMDiTConfig
from ...models.audiogen_omni.synchformer import Synchformer, SynchformerConfig
from ...models.audiogen_omni.preprocess import SYNC_FPS, SYNC_STRIDE, load_video_frames, sync_pixels
from ...models.common.codecs.mel import MEL_16K, LogMel
from . import codecs
from .stages import run_stage, work_folder, write_train_report
from .world import event_times, world_clips

SYSTEM = "audiogen_omni"
# Patch 56 (16 patches per 224 px frame; the world is drawn at 64 px): a fraction of patch 16's cost per step.
TINY_SYNCHFORMER = SynchformerConfig(embed_dim=64, depth=1, num_heads=1, patch_size=56)
PREFIX = "soundstage-tiny/audiogen_omni"  # name the loaders list (defaults/soundstage_mmaudio/<this>/...)
FILES = {"vae": "mel_vae_16k.safetensors", "vocoder": "bigvgan_16k.safetensors",
         "synchformer": "synchformer.safetensors", "mmdit": "mmdit_v2a.safetensors"}


@dataclass(frozen=True)
class Scale:
    train_clips: int
    seconds: float
    size: int
    vae_steps: int
    vocoder_steps: int
    mmdit_steps: int
    batch: int = 8
    lr: float = 1e-3
    vocoder_batch: int = 4  # more, smaller steps: measured in benchmarks/tiny_defaults_feasibility.md (round 2)
    vocoder_lr: float = 2e-3
    synchformer_steps: int = 0  # 0: random frozen Synchformer; else distilled onto the oracle stream, then frozen
    synchformer_lr: float = 2e-3
    synchformer_warmup: int = 50
    ema: float = 0.99
    sample_steps: int = 16
    hidden: int = 64
    # Scenes this long (0: ``seconds``) train the codecs and the Synchformer whole and the MMDiT as windows of
    # ``seconds`` from every point of the scene, so that later, smaller bounces and windows that start
    # mid-flight (the sampler's windows over long clips) are in its data, not only the first drop.
    scene_seconds: float = 0.0


SCALES = {
    "smoke": Scale(train_clips=4, seconds=1.0, size=48, vae_steps=2, vocoder_steps=2, mmdit_steps=2, batch=2,
                   synchformer_steps=2,
                   sample_steps=2, hidden=32),
    "feasibility": Scale(train_clips=48, seconds=2.0, size=64, vae_steps=150, vocoder_steps=500, mmdit_steps=1000,
                         synchformer_steps=800),
    # the shipped default (benchmarks/tiny_defaults_feasibility.md, round 4)
    "full": Scale(train_clips=128, seconds=2.0, size=128, vae_steps=150, vocoder_steps=2000, mmdit_steps=3000,
                  synchformer_steps=5000, scene_seconds=5.0),
}


def mmdit_config(scale: Scale) -> MMDiTConfig:
    n = int(round(scale.seconds * MEL_16K.sample_rate / 512))
    return MMDiTConfig(latent_dim=codecs.TINY_VAE.latent_channels, clip_dim=32, sync_dim=TINY_SYNCHFORMER.embed_dim,
                       text_dim=32, hidden_dim=scale.hidden, depth=2, fused_depth=1, num_heads=2, text_seq_len=8,
                       v2=True, latent_seq_len=n, clip_seq_len=int(scale.seconds * 8),
                       sync_seq_len=int(scale.seconds * 24), lyrics_dim=scale.hidden, lyrics_vocab=257, lyrics_blocks=1)


def new_synchformer(seed: int) -> Synchformer:
    torch.manual_seed(seed + 1)
    return Synchformer(TINY_SYNCHFORMER).eval().requires_grad_(False)


@torch.no_grad()
def sync_features(sf: Synchformer, frames: np.ndarray, fps: float, seconds: float) -> torch.Tensor:
    # The reference's frame choice and uint8 resize (models/audiogen_omni/preprocess.py), as inference does.
    picked = load_video_frames(torch.from_numpy(frames), fps, seconds, clip_size=None)
    return sf.encode_video(sync_pixels(picked.sync_frames).unsqueeze(0))[0]


def window_starts(scene: float, seconds: float) -> list[float]:
    """Starts of the MMDiT's training windows in a scene: every 0.96 s (three 0.32 s Synchformer segments, the
    grid the sampler's windows start on) while the window fits."""
    step = 3 * SYNC_STRIDE / SYNC_FPS
    return [k * step for k in range(int((scene - seconds) / step + 1e-9) + 1)]


def new_mmdit(sc, items: list[dict], seed: int) -> MMDiT:
    """The recipe's MMDiT (seeded on its own), its latent normalisation set from the training latents."""
    lat = torch.cat([it["latent"] for it in items])
    torch.manual_seed(seed + 2)
    net = MMDiT(mmdit_config(sc))
    net.latent_mean.data.copy_(lat.mean(0).view(1, 1, -1))
    net.latent_std.data.copy_(lat.std(0).clamp_min(1e-3).view(1, 1, -1))
    return net


def train_mmdit(net: MMDiT, items: list[dict], sc, dropout, out: Path, seed: int, stages: list, key: dict) -> MMDiT:
    """The MMDiT stage on ``train audiogen``'s loss and batches; returns the EMA weights (what is shipped)."""
    from ..audiogen_omni.train import EMA, batches, make_loss_fn

    ema = EMA(net, sc.ema)
    run_stage(net, make_loss_fn(dropout, seed=seed), batches(items, net, sc.batch, seed), sc.mmdit_steps, sc.lr,
              out, seed, stages, "mmdit", ema=ema, resume=True,
              key=key | {"batch": sc.batch, "config": asdict(net.config), "dropout": asdict(dropout)})
    return ema.shadow


def save_weights(out: Path, files: dict, vae, voc, sf: Synchformer, mmdit: MMDiT) -> None:
    """The four parts as fp16 safetensors in their released layouts, under ``out/weights``."""
    from safetensors.torch import save_file

    from ...models.audiogen_omni.loader import save_mmdit

    weights = out / "weights"
    weights.mkdir(exist_ok=True)
    save_file(codecs.vae_state_dict(vae), str(weights / files["vae"]))
    save_file(codecs.vocoder_state_dict(voc), str(weights / files["vocoder"]))
    save_file({k: v.half().contiguous() for k, v in sf.state_dict().items()}, str(weights / files["synchformer"]))
    save_mmdit(mmdit.half(), weights / files["mmdit"])


def train_synchformer(sf: Synchformer, clips, sc, out: Path, seed: int, stages: list,
                      resume: bool = False, key: dict | None = None, lips: bool = False) -> Synchformer:
    """Distilled onto the oracle sync stream of the training clips (sync_proxy.py), with ``lips`` its mouth channel
    too (the speech default's); comes back frozen."""
    from . import sync_proxy

    pixels = [sync_proxy.clip_pixels(c.frames, c.fps, len(c.frames) / c.fps) for c in clips]
    targets = [sync_proxy.oracle_stream(event_times(c.truth), p.shape[0], sf.config.embed_dim,
                                        mouth=(c.truth["mouth_openness"], c.fps) if lips else None)
               for c, p in zip(clips, pixels)]
    sf = run_stage(sf.train().requires_grad_(True), sync_proxy.distill_loss,
                   sync_proxy.segment_batches(pixels, targets, sc.batch, seed), sc.synchformer_steps,
                   sc.synchformer_lr, out, seed, stages, "synchformer", warmup=sc.synchformer_warmup, resume=resume,
                   schedule="cosine", key=key)
    return sf.eval().requires_grad_(False)


class AudioGenOmniRecipe:
    system = SYSTEM
    # 16 clips hold ~16 lamp blinks: the mismatched beeps' median swung from 60 to 129 ms between clips 0-15 and
    # 0-63 (benchmarks/tiny_defaults_feasibility.md, round 5), so the card measures 64
    card_clips = 64
    files = FILES
    folders = {key: "soundstage_mmaudio" for key in FILES}  # the ComfyUI model folder each file is listed in
    can = ["video to audio in the synthetic world: an impact sound where a ball touches the floor, a beep when the "
           "lamp lights (16 kHz; trained on 2 s clips, longer ones through the MMDiT Sampler's windows of 1.92 s)"]
    cannot = ["speech, song, text prompts or captions (no transcript or caption training yet)",
              "anything outside the cartoon world; real videos give noise-like or silent output",
              "44.1 kHz audio; CLIP features are not used (the clip stream stays at its learned empty feature)"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ..audiogen_omni.train import DropoutConfig

        sc = SCALES[scale]
        out = work_folder(out_dir, sc, seed)
        # a finished stage of an earlier run is reused when its key (data, settings, the stages it reads) is unchanged
        scene = sc.scene_seconds or sc.seconds
        data = {"split": "train", "task": "v2a", "clips": sc.train_clips, "seconds": sc.seconds, "size": sc.size,
                "scene_seconds": scene}
        stages: list[dict] = []
        t0, cpu0 = time.time(), time.process_time()
        clips = world_clips("train", sc.train_clips, task="v2a", stems=("effects",), seconds=scene, size=sc.size)
        # The codecs learn from clips of the training length: trained on the 5 s scenes instead, the vocoder lost
        # the lamp's beep onsets (benchmarks/tiny_defaults_feasibility.md, round 4).
        codec_clips = clips if scene == sc.seconds else world_clips(
            "train", sc.train_clips, task="v2a", stems=("effects",), seconds=sc.seconds, size=sc.size)
        codec_data = {k: v for k, v in data.items() if k != "scene_seconds"}
        mel = LogMel(MEL_16K)
        pairs = codecs.waves_and_mels([c.audio for c in codec_clips], mel)
        data_s = time.time() - t0

        vae = codecs.new_vae(seed)
        codecs.set_mel_statistics(vae, [m for _, m in pairs])
        vae = run_stage(vae, codecs.vae_loss, codecs.mel_batches([m for _, m in pairs], sc.batch, seed),
                        sc.vae_steps, sc.lr, out, seed, stages, "vae", resume=True,
                        key={"data": codec_data, "batch": sc.batch, "config": asdict(codecs.TINY_VAE)}).eval()
        after = {"vae": stages[-1]["key"]}
        voc = run_stage(codecs.new_vocoder(seed), codecs.VocoderLoss(),
                        codecs.vocoder_batches(pairs, sc.vocoder_batch, seed), sc.vocoder_steps, sc.vocoder_lr, out,
                        seed, stages, "vocoder", resume=True, schedule="cosine",
                        key={"data": codec_data, "batch": sc.vocoder_batch, "config": asdict(codecs.TINY_VOCODER)}).eval()

        sf = new_synchformer(seed)
        after["synchformer"] = None  # random and frozen
        if sc.synchformer_steps:
            sf = train_synchformer(sf, clips, sc, out, seed, stages, resume=True,
                                   key={"data": data, "batch": sc.batch, "config": asdict(TINY_SYNCHFORMER)})
            after["synchformer"] = stages[-1]["key"]
        t1 = time.time()
        items = []
        with torch.no_grad():
            for c in clips:
                for start in window_starts(scene, sc.seconds):
                    f0, s0 = round(start * c.fps), round(start * c.sample_rate)
                    frames = c.frames[f0: f0 + round(sc.seconds * c.fps)]
                    (_, m), = codecs.waves_and_mels([c.audio[s0: s0 + round(sc.seconds * c.sample_rate)]], mel)
                    mean, _ = vae.encode(m[None])
                    items.append({"latent": mean[0].T.contiguous(), "sync": sync_features(sf, frames, c.fps, sc.seconds)})
        net = new_mmdit(sc, items, seed)
        features_s = time.time() - t1
        dropout = DropoutConfig(clip=0.0, sync=0.1, text=0.0, lyrics=0.0)
        mmdit = train_mmdit(net, items, sc, dropout, out, seed, stages, key={"data": data, "after": after})
        save_weights(out, FILES, vae, voc, sf, mmdit)
        return write_train_report(out, SYSTEM, FILES, scale=scale, settings=asdict(sc), seed=seed, stages=stages,
                                  started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index],
                                  data_s=round(data_s, 1), features_s=round(features_s, 1))

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .evaluate import evaluate_v2a

        return evaluate_v2a(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = AudioGenOmniRecipe()
