"""MTV tiny default: a CogVideoX-layout video VAE on the world's frames, a frozen random wav2vec2 and T5, then
the CogVideoX denoiser with the Multi-Stream Temporal ControlNet trained on the world's stems (training/mtv).

Clips are the world's at MTV's 24 fps, one 49-frame chunk long (13 latents: the loader reads the transformer's
text length off its learned positions assuming MTV's 13-latent chunk), drawn small. Only even clip indices are
used: they hold one (red) ball (``clip_spec``: 1 + index % 2 balls), so every impact of the effects stem is
that ball's floor contact. Every clip speaks (task ``full``). The three stems go in as MTV's three streams:
speech (lips), effects (impacts: events), music (major/minor bars: the room's brightness, the world's mood).
The prompt is MTV's template (paper sec. 4.3) with the world's caption as the scene.

The wav2vec2 is random and frozen; ``feature_probe`` measures whether its features still carry what each
stream must drive (ridge probes to impact frames, mouth openness and bar mood on held-out clips).
Every stage resumes by key (stages.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...synthworld import generate_clip
from ...synthworld.splits import clip_spec
from . import mtv_parts as parts
from . import ovi_parts
from .stages import run_stage, start_run, write_train_report

SYSTEM = "mtv"
PREFIX = "soundstage-tiny/mtv"
FILES = {"model": "mtv.safetensors", "vae": "cogvideox_vae.safetensors", "wav2vec": "wav2vec2.safetensors",
         "text_encoder": "t5_encoder.safetensors", "tokenizer": "t5_encoder.tokenizer.json"}
# the workflow's loaders: Load MTV Model, Load CogVideoX VAE, Wav2Vec Features, Text Encode (tokenizer beside it)
FOLDERS = {"model": "soundstage_mtv", "vae": "vae", "wav2vec": "audio_encoders", "text_encoder": "text_encoders",
           "tokenizer": "text_encoders"}
FPS = 24  # MTV's frame rate (models/mtv/preprocess.py TRAINED_FPS)
RATE = 16000  # wav2vec's rate; the world's stems are drawn at it
LATENT_FRAMES = 13  # one MTV chunk: 49 frames
STEMS = {"vocal": "speech", "effect": "effects", "music": "music"}  # MTV stream -> the world's stem
CROP_FRAMES = 9  # the VAE stages' clip crops: 3 latents, the first frame and two 4-frame groups
STAT_CLIPS = 32  # training clips the VAE's latent scale is measured on (two encodes each: enough for 8 channels)


@dataclass(frozen=True)
class Scale:
    train_clips: int
    size: int  # frame side (px), a multiple of 16 (8x VAE, patch 2)
    vae_steps: int  # on CROP_FRAMES-frame crops
    dit_steps: int
    vae_frame_steps: int = 0  # first, on single frames
    vae_frame_batch: int = 8
    vae_batch: int = 4
    vae_lr: float = 2e-3
    vae_decoder_steps: int = 0  # last, the decoder alone (encoder frozen: the latents and the denoiser stay)
    vae_decoder_lr: float = 5e-4
    vae_decoder_chunks: int = 1  # >1: the decoder also sees this many chunks' length renderings of the train clips
    latent_channels: int = 8
    vae_widths: tuple[int, ...] = (8, 16, 16, 16)
    batch: int = 8
    lr: float = 1e-3
    dit_tail_steps: int = 0  # then a second cosine cycle from the denoiser's EMA (stage ``denoiser_tail``)
    dit_tail_lr: float = 3e-4
    heads: int = 2
    head_dim: int = 32
    layers: int = 2
    time_dim: int = 64
    text_dim: int = 32
    text_len: int = 32
    wav2vec_hidden: int = 32
    wav2vec_layers: int = 2
    wav2vec_conv: int = 32
    token_width: int = 32
    context_tokens: int = 4
    proj_hidden: int = 64
    dual_blocks: int = 1
    ema: float = 0.99
    sample_steps: int = 20
    guidance: float = 1.0  # the default's sampling (eval-defaults and the workflow); 1 = no unconditional pass
    probe_clips: int = 8

    @property
    def frames(self) -> int:
        return 1 + 4 * (LATENT_FRAMES - 1)

    @property
    def seconds(self) -> float:
        return self.frames / FPS


SCALES = {
    "smoke": Scale(train_clips=2, size=16, vae_steps=1, dit_steps=2, vae_frame_steps=1, vae_frame_batch=2,
                   vae_batch=2, latent_channels=4, vae_widths=(4, 4, 4, 4), batch=2, heads=1, head_dim=16,
                   layers=1, time_dim=16, text_dim=8, text_len=8, wav2vec_hidden=8, wav2vec_layers=1,
                   wav2vec_conv=8, token_width=16, context_tokens=2, proj_hidden=16, sample_steps=2, probe_clips=2,
                   vae_decoder_steps=1, vae_decoder_chunks=2, dit_tail_steps=1),
    # CPU s / step measured at this size (benchmarks/tiny_defaults_mtv.py, 2 threads, contended): VAE single frames
    # (batch 8) 6.7, 9-frame crops (batch 4) 3.5, denoiser (batch 8) 0.27; a world clip ~0.3 + espeak
    "feasibility": Scale(train_clips=16, size=64, vae_frame_steps=60, vae_frame_batch=4, vae_steps=60, dit_steps=150),
    # One thread beside other trainings: VAE 2000 frame steps (0.26 CPU s/step) + 1000 crop steps (0.96), denoiser
    # 16000 (0.10) + tail 8000 (0.09), decoder 4000 (0.44), clips / features / latents ~3 CPU min: 94 min wall (the
    # card; benchmarks/tiny_defaults_mtv.md)
    # Denoiser 16000 steps: on held-out clips 50-113 (the previous VAE) 4000 steps give lips r 0.25 and mood -0.26,
    # 16000 give lips 0.50 and mood 1.00. Guidance 3.5 (MTV's official), picked for the 8-channel weights on held-out
    # clips 100-163 (never the card's): contacts 42.2 ms from the impacts there (2.5: 48.7, 3: 46.6, 5: 49.4, 7: 52.2).
    # Both: benchmarks/tiny_defaults_mtv.md, "A longer denoiser". The decoder's 4000 steps alone (0.43 CPU s/step),
    # on clips 100-163: VAE round trip 50.6 -> 21.8 ms, generated 42.2 -> 36.6 ms and lips 0.47 -> 0.60 (2000 steps:
    # 45.8 ms, 0.58); benchmarks/tiny_defaults_mtv.md, "A decoder fine-tune". The decoder on 3-chunk renderings too
    # (vae_decoder_chunks=3, 6000 steps) traded 3 ms of the short clips' contacts for 3 ms of the long ones', and
    # is not taken: "The decoder on long renderings". Sixteen latent channels (CogVideoX's own count) hold the late,
    # small bounces of a long clip that eight lost: chunks 1 / 2 / 3 of 32 long held-out clips at 23.3 / 30.4 / 32.4
    # ms (8 channels: 39.6 / 32.3 / 47.5); the music stream then needs the tail's second cycle (mood 0.20 -> 0.99).
    # Guidance 2.0 and MTV's 50 steps, picked on held-out clips 100-163: lips 0.46 at 3.5, 0.49 at 2.0, 0.50 with
    # 50 steps; benchmarks/tiny_defaults_mtv.md, "Sixteen latent channels".
    "full": Scale(train_clips=192, size=64, vae_frame_steps=2000, vae_frame_batch=8, vae_steps=1000, dit_steps=16000,
                  guidance=2.0, sample_steps=50, vae_decoder_steps=4000, latent_channels=16, dit_tail_steps=8000),
}


def prompt(caption: str) -> str:
    """MTV's template (models/mtv/text.py build_prompt): the drawn face speaks, the caption is the scene
    (without its quoted line and its music: what the streams give)."""
    from ...models.mtv.text import build_prompt

    head, sep, tail = caption.rpartition(" over ")
    scene = head if sep and tail.endswith(" music") else caption
    if '"' in scene:
        a, _, b = scene.split('"', 2)
        scene = (a.rstrip(" ,:") + b).strip()
    return build_prompt(scene, ["A drawn face."], speaker=1)


@dataclass
class MTVClip:
    index: int  # the world's clip index (even: one ball)
    frames: np.ndarray  # [T, H, W, 3] uint8 at 24 fps
    stems: dict[str, np.ndarray]  # speech / effects / music at 16 kHz, exactly T frames of wav2vec features long
    truth: dict
    prompt: str


def chunked_frames(sc: Scale, chunks: int) -> int:
    """Frames of a clip the chunked path makes in ``chunks`` chunks (each after the first adds 49 - 5 new ones)."""
    from ...models.mtv.sampler import OVERLAP_FRAMES

    return sc.frames + (chunks - 1) * (sc.frames - OVERLAP_FRAMES)


def mtv_clips(split: str, count: int, sc: Scale, start: int = 0, frames: int | None = None) -> list[MTVClip]:
    """``count`` one-ball clips (indices 2 (start + k)) of ``frames`` frames (default: one chunk)."""
    frames = frames or sc.frames
    seconds = frames / FPS
    # floor: ceil(samples / RATE * FPS) (the feature frame count, wav2vec_features.frame_count) is then ``frames``
    samples = int(seconds * RATE)
    out = []
    for k in range(start, start + count):
        c = generate_clip(clip_spec(split, 2 * k, task="full", seconds=seconds, size=sc.size, fps=FPS,
                                    sample_rate=RATE))
        out.append(MTVClip(2 * k, c.frames, {s: w[:samples].astype(np.float32) for s, w in c.stems.items()},
                           c.truth, prompt(c.truth["caption"])))
    return out


def audio_dict(wave: np.ndarray) -> dict:
    return {"waveform": torch.from_numpy(wave)[None, None], "sample_rate": RATE}


def stream_features(wav2vec, clip: MTVClip, clip_length: int = 49) -> dict[str, torch.Tensor]:
    """MTV stream -> wav2vec windows [F, 5, layers, D] of its stem, by the pipeline's feature path."""
    from ...pipelines.mtv import wav2vec_windows

    out = {}
    for stream, stem in STEMS.items():
        f = wav2vec_windows(audio_dict(clip.stems[stem]), wav2vec, FPS, clip_length)
        out[stream] = f.windows[: f.num_frames]
    return out


def model_config(sc: Scale, features: torch.Tensor):
    """(BackboneConfig, MSTConfig) of the tiny denoiser; ``features`` one stream's windows [F, 5, layers, D]."""
    from ...models.mtv.audio_modules import AUDIO_HEAD_DIM, MSTConfig
    from ...models.mtv.transformer import BackboneConfig

    lat = sc.size // 8
    bb = BackboneConfig(num_layers=sc.layers, num_heads=sc.heads, head_dim=sc.head_dim,
                        in_channels=2 * sc.latent_channels, out_channels=sc.latent_channels, patch_size=2,
                        time_embed_dim=sc.time_dim, text_embed_dim=sc.text_dim, text_length=sc.text_len,
                        latent_frames=LATENT_FRAMES, latent_height=lat, latent_width=lat)
    au = MSTConfig(num_layers=sc.layers, hidden_size=sc.heads * sc.head_dim, num_heads=sc.heads,
                   time_embed_dim=sc.time_dim, token_width=sc.token_width,
                   audio_heads=max(1, sc.token_width // AUDIO_HEAD_DIM), context_tokens=sc.context_tokens,
                   proj_in_dim=int(np.prod(features.shape[1:])), proj_hidden=sc.proj_hidden,
                   num_dual_blocks=sc.dual_blocks)
    return bb, au


def new_model(sc: Scale, features: torch.Tensor, seed: int):
    from ..mtv.train import new_model as fresh_model

    torch.manual_seed(seed)
    return fresh_model(*model_config(sc, features))


def save_model(model, path: Path) -> Path:
    """Our converted naming with the latent grid in the metadata (convert.save_converted), fp16."""
    from ...models.mtv.convert import save_converted

    save_converted(model, path, dtype=torch.float16)
    return path


def load_parts(weights: Path):
    """(model, vae, wav2vec, text encoder path) through the loaders the nodes use."""
    from ...models.common.checkpoint import load_file
    from ...models.mtv.vae import load_cogvideox_vae
    from ...pipelines.mtv import load_mtv, load_wav2vec_model

    model, _ = load_mtv(str(weights / FILES["model"]), "fp32")
    vae = load_cogvideox_vae(load_file(weights / FILES["vae"]), dtype=torch.float32)
    return model, vae, load_wav2vec_model(str(weights / FILES["wav2vec"])), weights / FILES["text_encoder"]


def encode_prompts(encoder_path: Path, prompts: list[str], text_len: int) -> list[torch.Tensor]:
    """[text_len, D] per prompt through the pipeline's T5 path (tokenizer beside the weights)."""
    from ...pipelines.mtv import encode_text

    return [encode_text(p, str(encoder_path), parts.tokenizer_path(encoder_path), torch.float32)[0][0][0, :text_len]
            for p in prompts]


def _ridge_r(x_train, y_train, x_test, y_test, lam: float = 1.0) -> float:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ (y_train - y_train.mean()))
    pred = b @ w
    return round(float(np.corrcoef(pred, y_test)[0, 1]), 3) if pred.std() > 0 and y_test.std() > 0 else float("nan")


def frame_targets(clip: MTVClip, frames: int) -> dict[str, np.ndarray]:
    """Per video frame: an impact within a frame (effects), the mouth's openness (speech), the bar's mood (music)."""
    t = np.arange(frames) / FPS
    impact = np.zeros(frames)
    for e in clip.truth["impacts"]:
        impact[np.abs(t - e["time"]) <= 1 / FPS] = 1.0
    beats = clip.truth["beats"]
    bar = 4 * (beats[1] - beats[0]) if len(beats) > 1 else 4 * frames / FPS
    moods = clip.truth["mood_per_bar"]
    mood = np.asarray([moods[min(int(x // bar), len(moods) - 1)] for x in t])
    return {"effect": impact, "vocal": np.asarray(clip.truth["mouth_openness"][:frames]), "music": mood}


def feature_probe(train_feats, train_clips, test_feats, test_clips) -> dict:
    """Is the frozen random wav2vec enough? Per stream, a ridge probe from its windows (per frame) to what the
    stream must drive, fit on training clips, Pearson r on held-out clips."""
    out = {}
    for stream in STEMS:
        xs = [np.concatenate([f[stream].flatten(1).numpy() for f in feats]) for feats in (train_feats, test_feats)]
        ys = [np.concatenate([frame_targets(c, len(f[stream]))[stream] for c, f in zip(clips, feats)])
              for clips, feats in ((train_clips, train_feats), (test_clips, test_feats))]
        out[stream] = _ridge_r(xs[0], ys[0], xs[1], ys[1])
    return {"target": {"effect": "impact within a frame", "vocal": "mouth openness", "music": "bar mood"},
            "heldout_r": out, "train_clips": len(train_clips), "heldout_clips": len(test_clips)}


def video_vae(sc: Scale, clips: list[MTVClip], data: dict, out: Path, weights: Path, seed: int, stages: list):
    """The recipe's VAE stages (taken from ``out`` when finished), normalised and written to ``weights``: (the VAE
    as inference reads it back, fp32 from the fp16 file; the crop stage's key; the latent statistics)."""
    from ...models.common.checkpoint import load_file
    from ...models.mtv.vae import load_cogvideox_vae

    cfg = parts.tiny_vae_config(sc.latent_channels, sc.vae_widths)
    vae_key = {"data": data, "config": cfg, "loss": [ovi_parts.KL_WEIGHT, ovi_parts.BALL_WEIGHT]}
    vae = ovi_parts.train_frame_vae(parts.new_cogvideox_vae(cfg, seed), vae_key, [c.frames for c in clips], out,
                                    seed, stages, frame_steps=sc.vae_frame_steps, frame_batch=sc.vae_frame_batch,
                                    crop_steps=sc.vae_steps, crop_batch=sc.vae_batch, crop_frames=CROP_FRAMES,
                                    lr=sc.vae_lr)
    latent_stats = parts.normalise_latents(vae, [c.frames for c in clips[:STAT_CLIPS]])
    parts.save_cogvideox_vae(vae, weights / FILES["vae"])
    return load_cogvideox_vae(load_file(weights / FILES["vae"]), dtype=torch.float32), stages[-1]["key"], latent_stats


def decoder_fine_tune(sc: Scale, vae, clips: list[MTVClip], data: dict, vae_stage_key: dict, out: Path,
                      weights: Path, seed: int, stages: list) -> None:
    """Stage ``video_vae_decoder`` on the saved VAE, written over it: the fp16 encoder the denoiser's latents came
    from stays bit for bit, so the denoiser is untouched (and its stage key does not name this one)."""
    if sc.vae_decoder_steps:
        frames = [c.frames for c in clips]
        if sc.vae_decoder_chunks > 1:
            # Late in a long clip the ball's bounces are small and quick, which a clip's first 2 s never show: the
            # round trip of chunk 3 missed them (52.5 ms; benchmarks/tiny_defaults_mtv.md), so the decoder also
            # learns the train clips rendered as long as the chunked path makes them.
            long = chunked_frames(sc, sc.vae_decoder_chunks)
            frames += [c.frames for c in mtv_clips("train", sc.train_clips, sc, frames=long)]
            data = data | {"long_frames": long}
        vae = ovi_parts.train_decoder(vae, {"data": data, "after": vae_stage_key}, frames, out, seed, stages,
                                      steps=sc.vae_decoder_steps, lr=sc.vae_decoder_lr, crop_frames=CROP_FRAMES)
        parts.save_cogvideox_vae(vae, weights / FILES["vae"])


class MTVRecipe:
    system = SYSTEM
    card_clips = 64  # 16 clips hold ~21 impacts: at guidance 5, events 67.1 ms on clips 0-15 and 56.8 on 0-31
    files = FILES
    folders = FOLDERS
    can = ["speech, effects and music stems (16 kHz) to a 2 s, 64 px, 24 fps clip of the synthetic world: the "
           "drawn face, one red ball, the lamp and the room; longer audio in MTV's 49-frame chunks"]
    cannot = ["anything outside the cartoon world; free text beyond the world's caption words maps to <unk>",
              "two balls or other colours (trained on one-ball clips); other sizes than 64 px"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from ...models.mtv.vae import encode_frames
        from ...pipelines.mtv import load_mtv, load_wav2vec_model
        from ..audiogen_omni.train import EMA
        from ..mtv.train import LossConfig, batches, make_loss_fn

        sc = SCALES[scale]
        out, weights, stages, (t0, cpu0) = start_run(out_dir, sc, seed)
        clips = mtv_clips("train", sc.train_clips, sc)
        data = {"split": "train", "clips": sc.train_clips, "frames": sc.frames, "size": sc.size, "indices": "even"}
        data_s = time.time() - t0

        # 1. the video VAE: Ovi's recipe (ovi_parts.train_frame_vae) on CogVideoX's class, 9-frame crops
        vae, vae_stage_key, latent_stats = video_vae(sc, clips, data, out, weights, seed, stages)

        # 2. frozen random encoders: wav2vec2 (HF CTC layout) and T5 (+ a word-level tokenizer of the prompts)
        parts.save_wav2vec(parts.new_wav2vec(sc.wav2vec_hidden, sc.wav2vec_layers, sc.wav2vec_conv, seed + 3),
                           weights / FILES["wav2vec"])
        ovi_parts.train_tokenizer([c.prompt for c in clips], weights / FILES["tokenizer"])
        from ...models.mtv.text import load_tokenizer

        vocab = len(load_tokenizer(weights / FILES["tokenizer"]))
        parts.save_t5(parts.new_t5(vocab, sc.text_dim, seed + 1), weights / FILES["text_encoder"])

        # 3. features, read back through the loaders the nodes use
        t1 = time.time()
        wav2vec = load_wav2vec_model(str(weights / FILES["wav2vec"]))
        feats = [stream_features(wav2vec, c) for c in clips]
        texts = encode_prompts(weights / FILES["text_encoder"], [c.prompt for c in clips], sc.text_len)
        gen = torch.Generator().manual_seed(seed)
        items = []
        for c, f, t in zip(clips, feats, texts):
            frames = torch.from_numpy(c.frames).float() / 255
            items.append({"latents": encode_frames(vae, frames, gen)[0], "image": encode_frames(vae, frames[:1], gen)[0],
                          "context": t} | f)
        held = mtv_clips("heldout", sc.probe_clips, sc)
        probe = feature_probe(feats, clips, [stream_features(wav2vec, c) for c in held], held)
        features_s = time.time() - t1

        # 4. the denoiser with the MST-ControlNet
        net = new_model(sc, feats[0]["vocal"], seed + 2)
        loss = LossConfig()
        ema = EMA(net, sc.ema)
        bb, au = model_config(sc, feats[0]["vocal"])
        run_stage(net, make_loss_fn(loss, seed=seed), batches(items, sc.batch, seed), sc.dit_steps, sc.lr, out, seed,
                  stages, "denoiser", ema=ema, resume=True, schedule="cosine", warmup=min(50, sc.dit_steps // 10),
                  key={"data": data, "batch": sc.batch, "config": {"backbone": asdict(bb), "audio": asdict(au)},
                       "loss": asdict(loss), "after": {"video_vae": vae_stage_key, "wav2vec_seed": seed + 3,
                                                       "text_seed": seed + 1, "vocab": vocab}})
        if sc.dit_tail_steps:
            # At 16 latent channels the music stream has not taken hold after one cycle (mood r 0.20) and a second
            # one brings it (0.99): benchmarks/tiny_defaults_mtv.md, "Sixteen latent channels".
            net = ema.shadow.train().requires_grad_(True)
            ema = EMA(net, sc.ema)
            run_stage(net, make_loss_fn(loss, seed=seed + 1), batches(items, sc.batch, seed + 1), sc.dit_tail_steps,
                      sc.dit_tail_lr, out, seed, stages, "denoiser_tail", ema=ema, resume=True, schedule="cosine",
                      warmup=min(50, sc.dit_tail_steps // 10), key={"after": stages[-1]["key"]})
        save_model(ema.shadow, weights / FILES["model"])
        load_mtv(str(weights / FILES["model"]), "fp32")  # strict read-back: the file is what the loader expects

        # 5. the decoder alone: sharper contacts and mouths from the same latents
        decoder_fine_tune(sc, vae, clips, data, vae_stage_key, out, weights, seed, stages)

        return write_train_report(
            out, SYSTEM, FILES, scale=scale, settings=asdict(sc) | {"seconds": round(sc.seconds, 3)}, seed=seed,
            stages=stages, started=(t0, cpu0), train_seeds=[clips[0].index, clips[-1].index], data_s=round(data_s, 1),
            features_s=round(features_s, 1), video_vae_latents=latent_stats, wav2vec_probe=probe)

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .mtv_eval import evaluate_mtv

        return evaluate_mtv(self, Path(weights_dir), Path(out_dir), SCALES[scale], clips=clips, seed=seed)


RECIPE = MTVRecipe()


__all__ = ["FILES", "FOLDERS", "RECIPE", "SCALES", "Scale", "feature_probe", "frame_targets", "load_parts",
           "chunked_frames", "model_config", "mtv_clips", "new_model", "prompt", "stream_features"]
