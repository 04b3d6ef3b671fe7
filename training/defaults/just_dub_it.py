"""JUST-DUB-IT tiny default: the base audio-video model in LTX-2.0's layout (video VAE, audio VAE + vocoder, a
frozen random Gemma-3-layout text encoder with the LTX-2 text connectors, the AV DiT) trained on the world's
joint clips in English, French and German; then (part 2) the dubbing pairs and the in-context dubbing LoRA.

Layout (what part 2, the dubbing data / LoRA / eval / workflow, builds on):

- Files. ``FILES["model"]`` = ``ltx2_av.safetensors`` in ``defaults/soundstage_ltx2/soundstage-tiny/just_dub_it/``:
  ONE native LTX-2.0 single file (transformer ``model.diffusion_model.*``, text connectors, video VAE ``vae.*``,
  audio VAE ``audio_vae.*``, vocoder ``vocoder.*``; header ``config`` with ``transformer`` / ``audio_vae`` /
  ``vocoder`` sections), fp16, read strictly by ``models.just_dub_it.bundle.load_ltx2_parts`` (the Load LTX-2 AV
  Model node). ``FILES["text_encoder"]`` = ``gemma3_text.safetensors`` in ``defaults/text_encoders/soundstage-tiny/
  just_dub_it/``: Gemma-3 in ComfyUI's single-file layout with its SentencePiece model in ``spiece_model``
  (``models.just_dub_it.gemma_file``; the Load LTX-2 Text Encoder node, ``max_tokens = Scale.max_tokens``).
  ``FILES["lora"]`` (folder ``loras``) is the dubbing LoRA of stages 6-8 (``just_dub_it_data``). The writer is ``models/just_dub_it/native_writer.py``.
- Clips. ``jdi_clips(split, count, sc, language=...)``: the world's ``full`` clips (every clip speaks) through
  ``synthworld.splits.clip_spec`` at LTX-2's 25 fps (JUST-DUB-IT's default rate), ``sc.frames`` = 1 + 8k frames
  (``sc.latent_frames`` latent frames), ``sc.size`` px square, audio = effects + speech stems at 16 kHz mono (the
  world's music is an off-screen track the picture cannot predict: left out of audio and prompt, as Ovi's default).
  The same (split, index) in another language is the dubbing pair (same scene, speaker, sentence id).
- Prompts. ``prompt(caption)``: the world's caption without its music, e.g. ``a red ball bounces, a lamp blinks
  with a beep, while a man says in French: "lena voit la voiture bleue aujourd'hui"`` (English has no ``in ...``).
- Latents. Always through the loaders and ``models.just_dub_it.av_codec`` (encode_video / waveform_to_mel /
  encode_audio / decode_*), the code the nodes run; prompts through ``text.encode_prompts`` with
  ``sc.max_tokens``. ``load_base(weights_dir)`` returns (LTX2Parts, GemmaEncoder) from a weights folder.
  ``clip_latents(video_vae, audio_vae, clip, audio_vae_config(sc.audio_width))`` gives one clip's tokens.
- CFG. The DiT is trained with the prompt dropped to the empty prompt ``""`` (``sc.text_dropout``): sample with
  ``""`` as the negative prompt.
- Work folder. ``<out>/weights/`` holds the files above; each stage trains in ``<out>/<stage>/`` and resumes by
  key (stages.run_stage): ``video_vae_frames``, ``video_vae``, ``audio_vae``, ``vocoder``, ``dit``. ``train()``
  builds the base model (``train_base``), then stages 6-8 (``just_dub_it_data.train_dubbing``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...synthworld import generate_clip
from ...synthworld.splits import clip_spec
from . import just_dub_it_parts as parts
from .just_dub_it_data import LORA_FILE, dub_scale, train_dubbing
from .stages import run_stage, work_folder, write_train_report

SYSTEM = "just_dub_it"
PREFIX = "soundstage-tiny/just_dub_it"
FILES = {"model": "ltx2_av.safetensors", "text_encoder": "gemma3_text.safetensors", "lora": LORA_FILE}
FOLDERS = {"model": "soundstage_ltx2", "text_encoder": "text_encoders", "lora": "loras"}
FPS = 25  # JUST-DUB-IT's frame rate (ltx_pipelines: 24 or 25; its LoRA trainer's default 25)
LANGUAGES = ("en", "fr", "de")


@dataclass(frozen=True)
class Scale:
    train_clips: int  # clip indices of the train split; each is used in every language of LANGUAGES
    latent_frames: int  # 1 + 8 (latent_frames - 1) frames at 25 fps
    size: int  # frame side (px), a multiple of 32 from 64 (the decoder reflect-pads its latents): size / 32 tokens a side
    vae_steps: int  # on 9-frame crops (the causal first frame and one 8-frame group)
    audio_vae_steps: int
    vocoder_steps: int
    dit_steps: int
    vae_frame_steps: int = 0  # first, on single frames (the spatial path)
    vae_frame_batch: int = 8
    vae_batch: int = 4
    vae_lr: float = 2e-3
    vae_width: int = 8  # video VAE widths 8 x (1, 2, 4, 8); LTX-2.0: 256 x
    latent_channels: int = 32  # LTX-2.0: 128
    audio_width: int = 8  # audio VAE base = latent channels; audio tokens = 16 x this (LTX-2.0: 128 / 8 / 128)
    audio_batch: int = 8
    audio_lr: float = 2e-3
    audio_crop: int = 64  # mel frames (0.64 s)
    vocoder_width: int = 32  # LTX-2.0: 1024; halved by each of the 5 upsamplers, so at least 32
    vocoder_batch: int = 8
    vocoder_lr: float = 2e-3
    text_vocab: int = 400  # SentencePiece pieces (Gemma-3: 262k)
    text_dim: int = 32  # Gemma hidden = caption_channels (Gemma-3 12B: 3840)
    text_layers: int = 2
    max_tokens: int = 64  # prompts left-padded to this (LTX-2: 1024), a multiple of registers
    registers: int = 16  # connector learnable registers (LTX-2: 128)
    connector_layers: int = 1
    heads: int = 2
    hidden: int = 64  # video stream width (LTX-2.0: 32 x 128)
    audio_hidden: int = 32  # audio stream width (LTX-2.0: 32 x 64)
    layers: int = 2
    batch: int = 8
    lr: float = 1e-3
    text_dropout: float = 0.1
    ema: float = 0.99

    @property
    def frames(self) -> int:
        return 1 + 8 * (self.latent_frames - 1)

    @property
    def seconds(self) -> float:
        return self.frames / FPS


SCALES = {
    "smoke": Scale(train_clips=2, latent_frames=2, size=64, vae_steps=2, audio_vae_steps=2, vocoder_steps=2,
                   dit_steps=2, vae_frame_steps=2, vae_frame_batch=2, vae_batch=2, audio_batch=2, vocoder_batch=2,
                   batch=2, text_vocab=120, latent_channels=8, audio_width=4, text_dim=16,
                   max_tokens=48, registers=8, hidden=32, audio_hidden=16, layers=1),
    # ~12 CPU min on one thread (benchmarks/tiny_defaults_just_dub_it.md)
    "feasibility": Scale(train_clips=32, latent_frames=7, size=64, vae_frame_steps=1000, vae_steps=1200,
                         audio_vae_steps=400, vocoder_steps=400, dit_steps=600),
    # the plan sized from the feasibility run's CPU s/step (~40-43 CPU min; benchmarks/tiny_defaults_just_dub_it.md)
    "full": Scale(train_clips=128, latent_frames=7, size=64, vae_frame_steps=3000, vae_steps=3600,
                  audio_vae_steps=1500, vocoder_steps=1500, dit_steps=6000, hidden=128, audio_hidden=64, layers=4),
}


def prompt(caption: str) -> str:
    """The world's caption without its music (not in the audio)."""
    head, sep, tail = caption.rpartition(" over ")
    return head if sep and tail.endswith(" music") else caption


@dataclass
class JdiClip:
    index: int
    language: str
    frames: np.ndarray  # [T, H, W, 3] uint8 at 25 fps
    audio: np.ndarray  # effects + speech, 16 kHz mono float32
    truth: dict
    prompt: str


def jdi_clips(split: str, count: int, sc: Scale, language: str = "en", start: int = 0) -> list[JdiClip]:
    out = []
    for i in range(start, start + count):
        c = generate_clip(clip_spec(split, i, task="full", language=language, seconds=sc.seconds, size=sc.size,
                                    fps=FPS))
        out.append(JdiClip(i, language, c.frames, (c.stems["effects"] + c.stems["speech"]).astype(np.float32),
                           c.truth, prompt(c.truth["caption"])))
    return out


def native_config(sc: Scale) -> dict:
    """The single file's ``transformer`` config: LTX-2.0 19B's settings at the tiny sizes."""
    from ...models.just_dub_it.config import LTX2_19B_NATIVE_CONFIG

    return {**LTX2_19B_NATIVE_CONFIG,
            "num_attention_heads": sc.heads, "attention_head_dim": sc.hidden // sc.heads,
            "cross_attention_dim": sc.hidden, "in_channels": sc.latent_channels, "out_channels": sc.latent_channels,
            "num_layers": sc.layers, "caption_channels": sc.text_dim,
            "audio_num_attention_heads": sc.heads, "audio_attention_head_dim": sc.audio_hidden // sc.heads,
            "audio_cross_attention_dim": sc.audio_hidden, "audio_in_channels": audio_token_width(sc),
            "audio_out_channels": audio_token_width(sc),
            # ltx_core hard-codes the connectors' 30 x 128 heads; the file's config lets the tiny ones shrink
            "connector_num_attention_heads": sc.heads, "connector_attention_head_dim": sc.text_dim // sc.heads,
            "connector_positional_embedding_max_pos": [sc.max_tokens]}


def audio_token_width(sc: Scale) -> int:
    return sc.audio_width * parts.MEL_BINS // 4  # latent channels x latent mel bins (64 / 4)


def new_dit(sc: Scale, seed: int) -> parts.BaseAV:
    """The AV transformer (wrapped for the pack's forward) and the LTX-2.0 text connectors, as the loaders build
    them from the config this recipe writes."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    from ...models.just_dub_it.config import diffusers_transformer_kwargs
    from ...models.just_dub_it.text import connector_kwargs
    from ...models.just_dub_it.transformer import InContextTransformer, build_transformer

    native = native_config(sc)
    probe = {"text_proj_in.weight": torch.empty(sc.text_dim, sc.text_dim * (sc.text_layers + 1)),
             "video_connector.learnable_registers": torch.empty(sc.registers, sc.text_dim)}
    probe.update({f"video_connector.transformer_blocks.{i}.x": torch.empty(0) for i in range(sc.connector_layers)})
    torch.manual_seed(seed)
    transformer = build_transformer(diffusers_transformer_kwargs(native))
    connectors = LTX2TextConnectors(**connector_kwargs(probe, {"config": json.dumps({"transformer": native})}))
    return parts.BaseAV(InContextTransformer(transformer).train().requires_grad_(True), connectors)


def load_base(weights: Path, *, dtype: torch.dtype = torch.float32):
    """(LTX2Parts, GemmaEncoder) of a weights folder, by the loaders the nodes use."""
    from ...models.just_dub_it.bundle import load_ltx2_parts
    from ...models.just_dub_it.text import load_gemma

    return (load_ltx2_parts(Path(weights) / FILES["model"], dtype=dtype),
            load_gemma(Path(weights) / FILES["text_encoder"], dtype=dtype))


@torch.no_grad()
def as_stored(*modules) -> None:
    """Round every weight to fp16 in place: features are computed with the weights the file will hold."""
    for m in modules:
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


@torch.no_grad()
def clip_latents(video_vae, audio_vae, clip: JdiClip, vae_cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(video tokens [Nv, C], audio tokens [Na, C*M]) of a clip, by the codec the nodes run."""
    from ...models.just_dub_it.av_codec import encode_audio, encode_video
    from ...models.just_dub_it.in_context import patchify_audio, patchify_video

    video = patchify_video(encode_video(video_vae, parts.to_unit(clip.frames)))[0]
    audio = patchify_audio(encode_audio(audio_vae, parts.mels(vae_cfg, [clip.audio])[0][None]))[0]
    return video, audio


def train_codecs(sc: Scale, clips: list[JdiClip], data: dict, out: Path, seed: int, stages: list):
    """Stages 1-2: the video VAE, the audio VAE and the vocoder, each resumed by key."""
    vae_cfg = parts.video_vae_config(sc.vae_width, sc.latent_channels)
    key = {"data": data, "config": vae_cfg, "loss": [parts.ovi_parts.KL_WEIGHT, parts.ovi_parts.BALL_WEIGHT]}
    vae = parts.train_video_vae(parts.new_video_vae(vae_cfg, seed), key, [c.frames for c in clips], out, seed, stages,
                                frame_steps=sc.vae_frame_steps, frame_batch=sc.vae_frame_batch,
                                crop_steps=sc.vae_steps, crop_batch=sc.vae_batch, lr=sc.vae_lr)
    parts.set_video_statistics(vae, [c.frames for c in clips])
    as_stored(vae)  # weights and statistics as the file holds them

    audio_cfg = parts.audio_vae_config(sc.audio_width)
    mels = parts.mels(audio_cfg, [c.audio for c in clips])
    audio_vae = run_stage(parts.new_audio_vae(audio_cfg, seed + 3), parts.audio_vae_loss,
                          parts.mel_crops(mels, sc.audio_batch, seed + 3, sc.audio_crop), sc.audio_vae_steps,
                          sc.audio_lr, out, seed, stages, "audio_vae", resume=True, schedule="cosine",
                          key={"data": data, "config": audio_cfg, "batch": sc.audio_batch, "crop": sc.audio_crop,
                               "kl": parts.AUDIO_KL_WEIGHT})
    parts.set_audio_statistics(audio_vae, mels)
    as_stored(audio_vae)

    voc_cfg = parts.vocoder_config(sc.vocoder_width)
    vocoder = run_stage(parts.new_vocoder(voc_cfg, seed + 4), parts.vocoder_loss,
                        parts.vocoder_batches(mels, parts.to_vocoder_rate([c.audio for c in clips]), sc.vocoder_batch,
                                              seed + 4), sc.vocoder_steps, sc.vocoder_lr, out, seed, stages, "vocoder",
                        resume=True, schedule="cosine",
                        key={"data": data, "config": voc_cfg, "batch": sc.vocoder_batch})
    as_stored(vocoder)
    header = parts.audio_codec_header(audio_cfg, voc_cfg)
    keys = {"video_vae": stages[-3]["key"], "audio_vae": stages[-2]["key"], "vocoder": stages[-1]["key"]}
    return vae.eval(), audio_vae.eval(), vocoder.eval(), header, (vae_cfg, audio_cfg), keys


@torch.no_grad()
def video_vae_check(vae, sc: Scale, clips: int = 4) -> dict:
    """Held-out round trip through the video VAE: PSNR overall and outside the face box, whether the caption's
    balls are still seen, and how far the mouth's openness (share of mouth-coloured pixels) follows the source's
    (the DiT cannot draw what its VAE cannot decode: check this before spending steps on the DiT)."""
    from ...models.just_dub_it.av_codec import decode_video, encode_video
    from . import ovi_eval
    from .mtv_eval import mouth_openness

    outside = ~parts.face_mask(sc.size)
    psnrs, bg, seen, mouth = [], [], [], []
    for c in jdi_clips("heldout", clips, sc):
        frames = (decode_video(vae, encode_video(vae, parts.to_unit(c.frames))).numpy() * 255).round().astype(np.uint8)
        psnrs.append(ovi_eval.psnr(frames, c.frames))
        bg.append(ovi_eval.psnr(frames[:, outside], c.frames[:, outside]))
        seen.append(ovi_eval.seen_colours(frames) == ovi_eval.caption_colours(c.prompt))
        a, b = mouth_openness(frames), mouth_openness(c.frames)
        mouth.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0)
    return {"clips": clips, "psnr_db": round(float(np.mean(psnrs)), 2),
            "psnr_outside_face_db": round(float(np.mean(bg)), 2), "balls_seen": round(float(np.mean(seen)), 3),
            "mouth_openness_r": round(float(np.mean(mouth)), 3)}


@torch.no_grad()
def audio_codec_check(audio_vae, vocoder, sc: Scale, clips: int = 4) -> dict:
    """Held-out round trips of the sound: the audio VAE's log-mel L1 (mel -> latent -> mel) and the whole codec's
    (latent -> mel -> vocoder -> wave, re-analysed at 16 kHz), and the correlation of the 10 ms loudness envelopes
    of the codec's wave and the source (the impacts and the syllables are what the DiT's sound is timed by)."""
    from ...models.just_dub_it.av_codec import decode_audio, encode_audio

    cfg = parts.audio_vae_config(sc.audio_width)
    vae_l1, codec_l1, env_r = [], [], []
    for c in jdi_clips("heldout", clips, sc):
        mel = parts.mels(cfg, [c.audio])[0][None]
        vae_l1.append(float((audio_vae.decode(audio_vae.encode(mel).latent_dist.mode()).sample - mel).abs().mean()))
        wave, rate = decode_audio(audio_vae, vocoder, encode_audio(audio_vae, mel))
        back = parts.to_world_rate(wave.mean(0), rate)[: len(c.audio)]
        again = parts.mels(cfg, [back.numpy()])[0]
        codec_l1.append(float((again - mel[0, :, : again.shape[1]]).abs().mean()))
        env_r.append(parts.envelope_r(back.numpy(), c.audio[: len(back)]))
    return {"clips": clips, "vae_mel_l1": round(float(np.mean(vae_l1)), 3),
            "codec_mel_l1": round(float(np.mean(codec_l1)), 3), "envelope_r": round(float(np.mean(env_r)), 3)}


def train_base(sc: Scale, out: Path, seed: int, stages: list) -> dict:
    """Stages 1-5: the base model's two files in ``out/weights``; returns the report's base part."""
    import sentencepiece

    from ...models.just_dub_it.native_writer import save_gemma_single_file, save_ltx2_single_file
    from ...models.just_dub_it.text import gemma_hidden_states, load_gemma
    from ..audiogen_omni.train import EMA

    weights = out / "weights"
    weights.mkdir(exist_ok=True)
    t0 = time.time()
    clips = [c for lang in LANGUAGES for c in jdi_clips("train", sc.train_clips, sc, lang)]
    data = {"split": "train", "clips": sc.train_clips, "languages": list(LANGUAGES), "frames": sc.frames,
            "size": sc.size, "fps": FPS}
    data_s = time.time() - t0

    # 1-2. the codecs
    vae, audio_vae, vocoder, header, (vae_cfg, audio_cfg), codec_keys = train_codecs(sc, clips, data, out, seed, stages)
    vae_check = video_vae_check(vae, sc)
    audio_check = audio_codec_check(audio_vae, vocoder, sc)

    # 3. the text encoder: random and frozen, with a SentencePiece model of the prompts in every language
    spiece = parts.train_spiece(sorted({c.prompt for c in clips}), sc.text_vocab)
    vocab = sentencepiece.SentencePieceProcessor(model_proto=spiece).get_piece_size()
    save_gemma_single_file(weights / FILES["text_encoder"], parts.new_gemma(vocab, sc.text_dim, sc.text_layers,
                                                                           seed + 1), spiece)
    gemma = load_gemma(weights / FILES["text_encoder"], dtype=torch.float32)  # what the nodes read

    # 4. features: the clips' latents and prompts' hidden states
    t1 = time.time()
    prompts = sorted({c.prompt for c in clips})
    hidden, mask = gemma_hidden_states(gemma, prompts + [""], sc.max_tokens)
    by_prompt = {p: (hidden[i], mask[i]) for i, p in enumerate(prompts)}
    items = []
    for c in clips:
        v, a = clip_latents(vae, audio_vae, c, audio_cfg)
        items.append({"video": v, "audio": a, "text": by_prompt[c.prompt][0], "text_mask": by_prompt[c.prompt][1]})
    features_s = time.time() - t1

    # 5. the AV DiT and the text connectors, by flow matching on the joint latents
    lat = (sc.latent_frames, sc.size // 32, sc.size // 32)
    net = new_dit(sc, seed + 2)
    ema = EMA(net, sc.ema)
    run_stage(net, parts.make_av_loss(FPS, lat, seed), parts.av_batches(items, (hidden[-1], mask[-1]), sc.batch, seed,
                                                                        sc.text_dropout),
              sc.dit_steps, sc.lr, out, seed, stages, "dit", ema=ema, resume=True, schedule="cosine",
              key={"data": data, "batch": sc.batch, "config": native_config(sc), "text_dropout": sc.text_dropout,
                   "after": codec_keys | {"text_seed": seed + 1, "vocab": vocab, "max_tokens": sc.max_tokens}})
    save_ltx2_single_file(weights / FILES["model"], transformer=ema.shadow.transformer.transformer,
                          native_config=native_config(sc), connectors=ema.shadow.connectors, video_vae=vae,
                          audio_vae=audio_vae, vocoder=vocoder, codec_config=header, dtype=torch.float16)
    load_base(weights)  # strict read-back: the files are what the loaders expect
    return {"train_seeds": [clips[0].index, clips[-1].index], "data_s": round(data_s, 1),
            "features_s": round(features_s, 1), "video_vae_heldout": vae_check,
            "audio_codec_heldout": audio_check, "vocab": vocab,
            "tokens": {"video": int(items[0]["video"].shape[0]), "audio": int(items[0]["audio"].shape[0]),
                       "prompt_max": int(mask.sum(1).max())}}


class JustDubItRecipe:
    system = SYSTEM
    card_clips = 16
    files = FILES
    folders = FOLDERS
    can = ["the base model: text to a 2 s, 64 px, 25 fps clip of the synthetic world with its sound in LTX-2.0's "
           "layout (balls, the lamp's beep, the face speaking the prompt's line in English, French or German)",
           "with the dubbing LoRA: a 2 s, 64 px English clip of the world re-spoken in French or German (the Dubbing "
           "Sampler's prompt names the line), the source clip as in-context tokens"]
    cannot = ["anything outside the cartoon world; prompt words outside the world's captions split into pieces "
              "the encoder never saw", "other sizes or lengths than trained"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        sc = SCALES[scale]
        out = work_folder(out_dir, sc, seed)
        stages: list[dict] = []
        t0, cpu0 = time.time(), time.process_time()
        base = train_base(sc, out, seed, stages)
        weights = out / "weights"
        # stages 6-8 on the base (paper 3.2-3.3): the world's switch clips, dubbing pairs, the dubbing LoRA
        dubbing = train_dubbing(out, dub_scale(scale, sc), seed, stages, weights, FILES)
        return write_train_report(
            out, SYSTEM, FILES, scale=scale, settings=asdict(sc) | {"seconds": round(sc.seconds, 3)}, seed=seed,
            stages=stages, started=(t0, cpu0), **base, dubbing=dubbing)

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .just_dub_it_eval import evaluate_just_dub_it

        return evaluate_just_dub_it(self, Path(weights_dir), Path(out_dir), scale, clips=clips, seed=seed)


RECIPE = JustDubItRecipe()


__all__ = ["FILES", "FOLDERS", "FPS", "LANGUAGES", "RECIPE", "SCALES", "JdiClip", "Scale", "audio_token_width",
           "audio_codec_check", "clip_latents", "jdi_clips", "load_base", "native_config", "new_dit", "prompt", "train_base",
           "train_codecs", "video_vae_check"]
