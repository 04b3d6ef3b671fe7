"""JUST-DUB-IT video dubbing on LTX-2: load the AV model, add the dubbing LoRA, encode the source
clip as in-context conditioning, sample the dubbed audio + video, decode to a VIDEO.

Load LTX-2 AV Model ─┬─ Dubbing LoRA Loader ─┬─ Dubbing Sampler ─ Decode Dubbed Video ─> VIDEO
VIDEO (+AUDIO) ── Encode Dubbing Context ────┘        ^
Load LTX-2 Text Encoder (Gemma-3) ────────────────────┘
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .common import check_names, offload_input, placement_for, search_aliases, seed_input, weight_dtype_input
from .errors import node_errors
from ..compat import InputImpl, Types, io
from ..models.common.device import FP8_WEIGHT_DTYPES, OFFLOAD_MODES, canonical_name
from ..models.common.vae_tiling import vae_tiling
from ..models.just_dub_it.av_codec import decode_audio, decode_video, fit_waveform
from ..models.just_dub_it.memory import Fp8Linear, ltx2_block_swap, store_fp8
from ..models.common.checkpoint import load_file, safetensors_metadata
from ..models.just_dub_it.schedule import DEFAULT_CFG, DEFAULT_STEPS
from ..models.just_dub_it.text import MAX_PROMPT_TOKENS
from .model_folders import model_choices, resolve_model
from .model_patch import ModelHandle
from .progress import step_callback

if TYPE_CHECKING:
    from ..models.just_dub_it.lora import Lora
    from ..pipelines.just_dub_it import DubbingContext

CATEGORY = "Soundstage/JUST-DUB-IT"
WEIGHT_STORAGE = ("default", *FP8_WEIGHT_DTYPES)  # ComfyUI's weight_dtype names
# JUST-DUB-IT's default negative prompt is LTX-2's long list; this is its gist.
DEFAULT_NEGATIVE = ("blurry, low quality, distorted face, mismatched lip sync, silent or muted audio, "
                    "distorted voice, robotic voice, background noise, incorrect dialogue")

LTX2Model = io.Custom("SOUNDSTAGE_LTX2")
TextEncoder = io.Custom("SOUNDSTAGE_LTX2_TEXT_ENCODER")
DubContext = io.Custom("SOUNDSTAGE_DUB_CONTEXT")
DubLatents = io.Custom("SOUNDSTAGE_DUB_LATENTS")
Upsampler = io.Custom("SOUNDSTAGE_LTX2_UPSAMPLER")


@dataclass
class LTX2AVModel:
    transformer: ModelHandle
    connectors: ModelHandle | None
    video_vae: ModelHandle | None
    audio_vae: ModelHandle | None
    vocoder: ModelHandle | None
    name: str
    loras: tuple[tuple[Lora, float], ...] = ()

    def require(self, part: str, node: str, input_name: str) -> ModelHandle:
        handle = getattr(self, part)
        if handle is None:
            raise ValueError(f"{node}: input '{input_name}': {self.name} has no {part.replace('_', ' ')}; "
                             "use the full LTX-2 single-file checkpoint (transformer, connectors, VAEs, vocoder)")
        return handle


@dataclass
class GemmaTextEncoder:
    """Gemma-3 (tokenizer + network) and the handle that places the network while it encodes, so
    ComfyUI's model manager sees its ~24 GB like any other model's."""

    encoder: Any
    handle: ModelHandle
    max_tokens: int


@dataclass
class EncodedClip:
    context: DubbingContext
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height)
    info: dict = field(default_factory=dict)
    source: Any = None  # (VIDEO, AUDIO or None): stage 2 re-encodes the clip at twice the size
    parts: list = field(default_factory=list)  # a long clip's speech segments: [(DubSegment, EncodedClip)]


@dataclass
class DubbedLatents:
    video: torch.Tensor
    audio: torch.Tensor
    frames: int
    fps: float
    parts: list = field(default_factory=list)  # a long clip's segments: [(DubSegment, DubbedLatents)]
    waveform: dict | None = None  # AUDIO the clip carries instead of the decoded latent (own voice)


LONG_CLIPS = ("segments", "trim")


# --------------------------------------------------------------------------- plain functions


def load_ltx2_av(path: str, precision: str, weight_storage: str = "default", offload: str = "none",
                 resident_blocks: int = 0, node: str = "Load LTX-2 AV Model") -> LTX2AVModel:
    from ..models.just_dub_it.bundle import load_ltx2_parts  # diffusers: imported where used

    placement = placement_for(precision)
    weight_storage, offload = canonical_name(weight_storage), canonical_name(offload)
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"{node}: input 'offload': unknown value {offload!r}")
    if weight_storage not in WEIGHT_STORAGE:
        raise ValueError(f"{node}: input 'weight_storage': unknown value {weight_storage!r}")
    with node_errors(node, "ckpt_name"):
        parts = load_ltx2_parts(path, dtype=placement.dtype)
    if weight_storage != "default":  # ~19 GB of block weights instead of ~38 GB in bf16
        store_fp8(parts.transformer.transformer, fp8_matmul=weight_storage.endswith("_fast"))
    name = Path(path).name

    def handle(module, kind, placer=None):
        return None if module is None else ModelHandle(module, placement, info={"kind": kind, "file": name},
                                                       placer=placer)

    swap = None
    if offload == "block_swap":
        blocks = len(parts.transformer.transformer.transformer_blocks)
        if not 0 <= resident_blocks <= blocks:
            raise ValueError(f"{node}: input 'resident_blocks': must be 0..{blocks}, got {resident_blocks}")
        # Streams the blocks itself, so the transformer is never handed whole to a model manager.
        swap = ltx2_block_swap(parts.transformer, placement.device, resident_blocks, place=False)
    return LTX2AVModel(
        transformer=handle(parts.transformer, "ltx2_transformer", swap),
        connectors=handle(parts.connectors, "ltx2_text_connectors"),
        video_vae=handle(parts.video_vae, "ltx2_video_vae"),
        audio_vae=handle(parts.audio_vae, "ltx2_audio_vae"),
        vocoder=handle(parts.vocoder, "ltx2_vocoder"),
        name=name,
    )


def add_lora(model: LTX2AVModel, path: str, strength: float, node: str = "Dubbing LoRA Loader") -> LTX2AVModel:
    from ..models.just_dub_it.lora import read_lora

    if strength == 0.0:
        return model
    with node_errors(node, "lora_name"):
        lora = read_lora(path)
    missing = [p for p in lora.pairs if _linear_or_none(model.transformer.module.transformer, p) is None]
    if missing:
        raise ValueError(f"{node}: input 'lora_name': {len(missing)} target(s) not in the LTX-2 transformer: "
                         f"{', '.join(missing[:5])}")
    # A new model value: the LoRA is merged only while a sampler runs, so graphs never interfere.
    return replace(model, loras=model.loras + ((lora, float(strength)),))


def _linear_or_none(root: torch.nn.Module, path: str):
    try:
        module = root.get_submodule(path)
    except AttributeError:
        return None
    return module if isinstance(module, (torch.nn.Linear, Fp8Linear)) else None


def load_text_encoder(path: str, precision: str, max_tokens: int, node: str = "Load LTX-2 Text Encoder",
                      weight_storage: str = "default") -> GemmaTextEncoder:
    from ..models.just_dub_it.memory import gemma_fp8_
    from ..models.just_dub_it.text import load_gemma

    placement = placement_for(precision)
    weight_storage = canonical_name(weight_storage)
    if weight_storage not in WEIGHT_STORAGE:
        raise ValueError(f"{node}: input 'weight_storage': unknown value {weight_storage!r}")
    try:
        encoder = load_gemma(path, dtype=placement.dtype, device="cpu")
    except (OSError, ValueError, ImportError) as exc:
        raise ValueError(f"{node}: input 'text_encoder': {exc}") from exc
    if weight_storage != "default":  # Gemma-3 12B: ~11.9 GiB on the GPU instead of ~21.9 GiB in bf16
        gemma_fp8_(encoder.model, fp8_matmul=weight_storage.endswith("_fast"))
    # Used once per run and large: released right after each use, as umt5-xxl is.
    handle = ModelHandle(encoder.model, placement, info={"kind": "gemma3", "file": Path(path).name},
                         offload_after_use=True)
    return GemmaTextEncoder(encoder, handle, max_tokens)


def encode_context(model: LTX2AVModel, video, audio: dict | None, width: int, height: int, max_frames: int,
                   image_crf: int = 29, long_clips: str = "segments", node: str = "Encode Dubbing Context") -> EncodedClip:
    from ..models.just_dub_it.preprocess import prepare_reference_clip
    from ..pipelines.just_dub_it import DubbingContext, clip_geometry, encode_clip_audio, encode_clip_video

    if long_clips not in LONG_CLIPS:
        raise ValueError(f"{node}: input 'long_clips' must be one of {LONG_CLIPS}, got {long_clips!r}")
    comps = video.get_components()
    images = comps.images
    frames, w, h = clip_geometry(images, max_frames, width, height, node)
    source_audio = audio if audio is not None else comps.audio
    if source_audio is None:
        raise ValueError(f"{node}: input 'audio': the VIDEO has no audio track; connect the source speech")
    if long_clips == "segments" and frames != images.shape[0]:
        return encode_segments(model, comps, source_audio, w, h, max_frames, image_crf, node)
    ref = prepare_reference_clip(images, comps.frame_rate, source_audio["waveform"][0],
                                 int(source_audio["sample_rate"]), h, w, max_frames)
    vae = model.require("video_vae", node, "model")
    avae = model.require("audio_vae", node, "model")
    # Four phases (video VAE to device, video encode, audio VAE, audio encode): progress and Cancel between them.
    phase = step_callback(4)
    with vae.use() as v:
        phase(1, 4)
        video_latent, first = encode_clip_video(v, images, ref, image_crf)
        phase(2, 4)
    with avae.use() as a:
        phase(3, 4)
        audio_latent = encode_clip_audio(a, ref)
    phase(4, 4)
    fps = float(ref.fps)
    ctx = DubbingContext(video_latent, audio_latent, fps, first)
    return EncodedClip(ctx, frames, fps, (w, h), {"source_frames": int(images.shape[0]), "image_crf": image_crf},
                       (video, audio))


def encode_segments(model: LTX2AVModel, comps, source_audio: dict, width: int, height: int, max_frames: int,
                    image_crf: int, node: str) -> EncodedClip:
    """Every frame of a clip longer than one window (or not 8k+1 long), as speech segments cut at pauses
    (pipelines.just_dub_it.speech_segments); each is encoded on its own with its own source speech, so the
    same voice is the in-context reference throughout."""
    from ..models.common.frame_rate import exact_rate
    from ..pipelines.just_dub_it import frame_activity, speech_segments

    images, rate = comps.images, exact_rate(comps.frame_rate)
    total = images.shape[0]
    wav, sr = source_audio["waveform"][0], int(source_audio["sample_rate"])
    segments = speech_segments(total, max_frames if max_frames > 0 else total,
                               frame_activity(wav, sr, rate, total))
    parts = []
    for seg in segments:
        a, b = (round(f * sr / rate) for f in (seg.encode_start, seg.encode_start + seg.encode_frames))
        piece_audio = {"waveform": wav[None, :, a:b].contiguous(), "sample_rate": sr}
        piece = InputImpl.VideoFromComponents(Types.VideoComponents(
            images=images[seg.encode_start: seg.encode_start + seg.encode_frames], audio=piece_audio, frame_rate=rate))
        parts.append((seg, encode_context(model, piece, piece_audio, width, height, seg.encode_frames, image_crf,
                                          "trim", node)))
    first = parts[0][1]
    info = {"source_frames": total, "image_crf": image_crf,
            "segments_s": [(round(float(s.keep_start / rate), 3), round(float(s.keep_end / rate), 3))
                           for s, _ in parts]}
    return EncodedClip(first.context, total, float(rate), (width, height), info, None, parts)


def split_prompt(prompt: str, parts: int, clip: EncodedClip, node: str) -> list[str]:
    """One prompt per speech segment: blocks separated by a line '---', or one block for them all."""
    import re

    blocks = [b.strip() for b in re.split(r"^\s*---\s*$", prompt, flags=re.M)]
    if len(blocks) == 1:
        return blocks * parts
    if len(blocks) != parts:
        raise ValueError(f"{node}: input 'prompt': {len(blocks)} blocks separated by '---' for {parts} speech "
                         f"segments {clip.info.get('segments_s')} (seconds); give one block per segment or one in all")
    return blocks


def sample_dubbing(model: LTX2AVModel, text: GemmaTextEncoder, clip: EncodedClip, prompt: str, negative: str,
                   steps: int, cfg: float, seed: int, node: str = "Dubbing Sampler") -> DubbedLatents:
    from ..models.just_dub_it.lora import loras_merged
    from ..models.just_dub_it.text import encode_prompts
    from ..pipelines.just_dub_it import TextContext, dub

    if not prompt.strip():
        raise ValueError(f"{node}: input 'prompt': describe the target dialogue (e.g. 'She says in Spanish: ...')")
    require_ltx20(model, node)
    if clip.parts:  # a long clip: each speech segment dubbed alone, same seed and voice reference throughout
        prompts = split_prompt(prompt, len(clip.parts), clip, node)
        return DubbedLatents(None, None, clip.frames, clip.fps, [
            (seg, sample_dubbing(model, text, part, p, negative, steps, cfg, seed, node))
            for (seg, part), p in zip(clip.parts, prompts)])
    connectors = model.require("connectors", node, "model")
    prompts = [prompt, negative] if cfg != 1.0 else [prompt]
    with text.handle.use(), connectors.use() as c:
        try:
            video_ctx, audio_ctx = encode_prompts(text.encoder, c, prompts, text.max_tokens)
        except ValueError as exc:
            raise ValueError(f"{node}: input 'text_encoder': {exc}") from exc
    positive = TextContext(video_ctx[:1], audio_ctx[:1])
    negative_ctx = TextContext(video_ctx[1:], audio_ctx[1:]) if cfg != 1.0 else None
    callback = step_callback(steps)
    with model.transformer.use() as t, loras_merged(t.transformer, model.loras, device=model.transformer.device):
        video, audio = dub(t, clip.context, positive, negative_ctx, steps=steps, cfg=cfg, seed=seed, callback=callback)
    return DubbedLatents(video, audio, clip.frames, clip.fps)


def require_ltx20(model: LTX2AVModel, node: str) -> None:
    """JUST-DUB-IT's LoRA, masks and schedule are LTX-2.0's; an LTX-2.3 file goes to DubIt Sampler."""
    version = getattr(model.transformer.module, "version", "2.0")
    if version != "2.0":
        raise ValueError(f"{node}: input 'model': {model.name} is an LTX-{version} checkpoint; JUST-DUB-IT runs on "
                         "LTX-2.0 (for LTX-2.3 use DubIt Sampler or DubIt Own Voice)")


def load_upsampler(path: str, precision: str, node: str = "Load LTX-2 Latent Upsampler") -> ModelHandle:
    from ..models.just_dub_it.upsampler import load_latent_upsampler

    placement = placement_for(precision)
    with node_errors(node, "upscale_model"):
        meta = safetensors_metadata(path) if path.endswith(".safetensors") else {}
        module = load_latent_upsampler(load_file(path), meta, dtype=placement.dtype)
    return ModelHandle(module, placement, info={"kind": "ltx2_latent_upsampler", "file": Path(path).name})


def refine_dubbing(model: LTX2AVModel, text: GemmaTextEncoder, upsampler: ModelHandle, clip: EncodedClip,
                   latents: DubbedLatents, prompt: str, seed: int, node: str = "Dubbing Refine (Stage 2)") -> DubbedLatents:
    """2x latent upsampling + the distilled-LoRA refinement; the stage-1 audio is kept as it is."""
    from ..models.just_dub_it.lora import loras_merged
    from ..models.just_dub_it.text import encode_prompts
    from ..models.just_dub_it.upsampler import upsample_latent
    from ..pipelines.just_dub_it import TextContext, refine

    if not prompt.strip():
        raise ValueError(f"{node}: input 'prompt': use the stage-1 prompt")
    require_ltx20(model, node)
    if latents.parts:
        if len(clip.parts) != len(latents.parts):
            raise ValueError(f"{node}: input 'latents': {len(latents.parts)} segments, the context has {len(clip.parts)}")
        prompts = split_prompt(prompt, len(clip.parts), clip, node)
        return DubbedLatents(None, None, latents.frames, latents.fps, [
            (seg, refine_dubbing(model, text, upsampler, part, lat, p, seed, node))
            for (seg, part), (_, lat), p in zip(clip.parts, latents.parts, prompts)])
    if clip.source is None:
        raise ValueError(f"{node}: input 'context': encode the clip with Encode Dubbing Context")
    video, audio = clip.source
    w, h = clip.size
    big = encode_context(model, video, audio, 2 * w, 2 * h, clip.frames, clip.info.get("image_crf", 29), "trim",
                         node=node)
    connectors = model.require("connectors", node, "model")
    vae = model.require("video_vae", node, "model")
    with text.handle.use(), connectors.use() as c:
        video_ctx, audio_ctx = encode_prompts(text.encoder, c, [prompt], text.max_tokens)
    with upsampler.use() as up, vae.use() as v:
        upscaled = upsample_latent(up, v, latents.video.to(upsampler.device)).cpu()
    if upscaled.shape != big.context.video_latent.shape:
        raise ValueError(f"{node}: input 'upsampler': upsampled latent {tuple(upscaled.shape)} does not match the "
                         f"2x context {tuple(big.context.video_latent.shape)}")
    callback = step_callback(2)
    with model.transformer.use() as t, loras_merged(t.transformer, model.loras, device=model.transformer.device):
        refined = refine(t, big.context, upscaled, latents.audio, TextContext(video_ctx, audio_ctx), seed=seed,
                         callback=callback)
    return DubbedLatents(refined, latents.audio, latents.frames, latents.fps)


def decode_dubbed(model: LTX2AVModel, latents: DubbedLatents, tiled: bool = False, node: str = "Decode Dubbed Video"):
    fps = Fraction(latents.fps).limit_denominator(1001)
    if latents.parts:
        frames, audio = join_segments(model, latents, fps, tiled, node)
        return InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, audio=audio, frame_rate=fps)), audio
    vae = model.require("video_vae", node, "model")
    avae = model.require("audio_vae", node, "model")
    voc = model.require("vocoder", node, "model")
    with vae.use() as v, vae_tiling(v, tiled):
        frames = decode_video(v, latents.video)[: latents.frames].cpu()
    if latents.waveform is not None:  # given speech: kept as recorded, not through the VAE and vocoder
        wav, rate = latents.waveform["waveform"][0].float(), int(latents.waveform["sample_rate"])
    else:
        with avae.use() as a, voc.use() as vo:
            wav, rate = decode_audio(a, vo, latents.audio)
    wav = fit_waveform(wav.cpu(), rate, latents.frames / latents.fps)  # same duration as the source clip
    audio = {"waveform": wav.unsqueeze(0).contiguous(), "sample_rate": rate}
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, audio=audio, frame_rate=fps)), audio


def join_segments(model: LTX2AVModel, latents: DubbedLatents, fps: Fraction, tiled: bool, node: str):
    """Each segment decoded and cut to the frames it keeps; its audio cut on the same frame borders
    (sample borders rounded from the exact frame times, so the pieces add up to the clip's length)."""
    frames, waves, rate = [], [], None
    for seg, part in latents.parts:
        video, audio = decode_dubbed(model, part, tiled, node)
        images = video.get_components().images
        frames.append(images[seg.keep_start - seg.encode_start: seg.keep_end - seg.encode_start])
        rate = int(audio["sample_rate"])
        at = lambda f: round(f * rate / fps)  # noqa: E731
        wav = audio["waveform"][0]
        piece = wav[:, at(seg.keep_start) - at(seg.encode_start): at(seg.keep_end) - at(seg.encode_start)]
        waves.append(torch.nn.functional.pad(piece, (0, at(seg.keep_end) - at(seg.keep_start) - piece.shape[-1])))
    return torch.cat(frames), {"waveform": torch.cat(waves, -1)[None].contiguous(), "sample_rate": rate}


# --------------------------------------------------------------------------- nodes


class LoadLTX2AVModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadLTX2AVModel",
            **search_aliases('ltx2', 'ltx-2', 'just dub it'),
            display_name="Load LTX-2 AV Model",
            category=CATEGORY,
            description="The LTX-2 single-file checkpoint (LTX-2.0 19B or LTX-2.3 22B, told apart by its keys): "
                        "audio-video transformer, text connectors, video and audio VAEs, vocoder. "
                        "The config comes from the file's metadata.",
            inputs=[
                io.Combo.Input("ckpt_name", options=model_choices("soundstage_ltx2"),
                               tooltip="LTX-2 single file (models/soundstage/ltx2), e.g. ltx-2-19b-dev.safetensors, "
                                       "ltx-2.3-22b-distilled.safetensors or an fp8 release (ComfyUI scaled fp8 / mixed "
                                       "precision, or plain float8_e4m3fn weights). LTX-2.0 or 2.3 is read from the file."),
                weight_dtype_input("Weight dtype; default = bf16 on GPU, fp32 on CPU."),
                io.Combo.Input("weight_storage", options=list(WEIGHT_STORAGE), default="default",
                               tooltip="fp8_e4m3fn stores the transformer blocks' linear weights in 8 bits (one scale "
                                       "per tensor), halving their memory; LoRAs then run unmerged beside them. "
                                       "An fp8 release (e.g. ltx-2-19b-dev-fp8) keeps its own fp8 weights and scales either way. "
                                       "fp8_e4m3fn_fast also runs the blocks' matmuls in fp8 on Ada/Hopper GPUs "
                                       "(faster, slightly less accurate)."),
                offload_input("block_swap keeps only 'resident_blocks' transformer blocks on the GPU and streams "
                              "the others from CPU memory, prefetching the next block while one runs (with fp8 "
                              "storage: the under-24 GB mode).", optional=True),
                io.Int.Input("resident_blocks", default=0, min=0, max=128, step=1, optional=True,
                             tooltip="With offload block_swap: transformer blocks kept on the GPU (more = faster, more VRAM; "
                                     "LTX-2 19B and LTX-2.3 22B have 48). Estimated peaks for a 512x768, 121-frame dub "
                                     "(19B): fp8 with 16 resident ~15 GiB; fp8 without block swap ~26 GiB. LTX-2.3 22B "
                                     "weights: bf16 35.4 GiB, fp8 18.1 GiB, fp8 + block swap 16 resident 7.3 GiB "
                                     "(8 resident 4.4 GiB); DubIt's 1024x1536, 121-frame stage 2 adds ~16.9 GiB of "
                                     "activations: fp8 + block swap with 8 resident ~21.3 GiB peak, the 24 GB mode "
                                     "(16 resident ~24.2 GiB) (benchmarks/roofline.py ltx23)."),
            ],
            outputs=[LTX2Model.Output(display_name="model")],
        )

    @classmethod
    def validate_inputs(cls, precision=None, weight_storage=None, offload=None):
        return check_names(precision=precision, weight_storage=weight_storage, offload=offload)

    @classmethod
    def execute(cls, ckpt_name, precision, weight_storage, offload="none", resident_blocks=0) -> io.NodeOutput:
        path = resolve_model("soundstage_ltx2", ckpt_name, "Load LTX-2 AV Model", "ckpt_name")
        return io.NodeOutput(load_ltx2_av(path, precision, weight_storage, offload, resident_blocks))


class DubbingLoraLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubbingLoraLoader",
            display_name="Dubbing LoRA Loader",
            category=CATEGORY,
            description="Adds a LoRA in the ComfyUI / JUST-DUB-IT format (W += strength * B @ A). Chain loaders to stack LoRAs.",
            inputs=[
                LTX2Model.Input("model"),
                io.Combo.Input("lora_name", options=model_choices("loras"),
                               tooltip="The JUST-DUB-IT in-context dubbing LoRA (or any LTX-2 LoRA)."),
                io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.05,
                               tooltip="Scale of the LoRA delta; 1.0 as trained, 0 disables it."),
            ],
            outputs=[LTX2Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, lora_name, strength) -> io.NodeOutput:
        path = resolve_model("loras", lora_name, "Dubbing LoRA Loader", "lora_name")
        return io.NodeOutput(add_lora(model, path, strength))


class LoadLTX2TextEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadLTX2TextEncoder",
            display_name="Load LTX-2 Text Encoder (Gemma-3)",
            category=CATEGORY,
            description="Gemma-3 12B: ComfyUI's single file (text_encoders/gemma_3_12B_it.safetensors, bf16 or fp8 scaled; "
                        "its tokenizer is stored inside) or a Hugging Face folder (config.json, tokenizer, weights; pick any file inside it).",
            inputs=[
                io.Combo.Input("text_encoder", options=model_choices("text_encoders"),
                               tooltip="gemma_3_12B_it.safetensors (ComfyUI), or a file inside a Hugging Face Gemma-3 folder "
                                       "(e.g. gemma-3-12b-it/model-00001-of-00005.safetensors)."),
                weight_dtype_input("Gemma dtype while encoding."),
                io.Int.Input("max_tokens", default=MAX_PROMPT_TOKENS, min=8, max=4096, step=8,
                             tooltip="Prompts are left-padded to this length; must be a multiple of the connectors' register count (128 for LTX-2)."),
                io.Combo.Input("weight_storage", options=list(WEIGHT_STORAGE), default="default", optional=True,
                               tooltip="fp8_e4m3fn stores Gemma's decoder linears in 8 bits: Gemma-3 12B needs ~11.9 GiB "
                                       "on the GPU while it encodes instead of ~21.9 GiB in bf16, and is released "
                                       "right after encoding, so it never shares a 24 GB card with the LTX-2 "
                                       "transformer (benchmarks/roofline.py, estimate_gemma_bytes)."),
            ],
            outputs=[TextEncoder.Output(display_name="text_encoder")],
        )

    @classmethod
    def validate_inputs(cls, precision=None, weight_storage=None):
        return check_names(precision=precision, weight_storage=weight_storage)

    @classmethod
    def execute(cls, text_encoder, precision, max_tokens, weight_storage="default") -> io.NodeOutput:
        path = resolve_model("text_encoders", text_encoder, "Load LTX-2 Text Encoder", "text_encoder")
        return io.NodeOutput(load_text_encoder(path, precision, max_tokens, weight_storage=weight_storage))


class EncodeDubbingContext(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageEncodeDubbingContext",
            display_name="Encode Dubbing Context",
            category=CATEGORY,
            description="Encodes the source clip (video + its speech) into the clean in-context latents and the clean first frame.",
            inputs=[
                LTX2Model.Input("model"),
                io.Video.Input("video", tooltip="The clip to dub; trimmed to 8k+1 frames (24 or 25 fps as in the paper)."),
                io.Audio.Input("audio", optional=True, tooltip="Source speech; defaults to the VIDEO's own audio track."),
                io.Int.Input("width", default=0, min=0, max=4096, step=32,
                             tooltip="Generation width (multiple of 32); 0 = the source width rounded down. Paper: 768."),
                io.Int.Input("height", default=0, min=0, max=4096, step=32,
                             tooltip="Generation height (multiple of 32); 0 = the source height rounded down. Paper: 512."),
                io.Int.Input("max_frames", default=121, min=0, max=1000, step=8,
                             tooltip="Longest clip in frames (121 = about 5 s at 24 fps); 0 = all frames."),
                io.Int.Input("image_crf", default=29, min=0, max=51, step=1,
                             tooltip="H.264 CRF applied to the first-frame image before encoding (JUST-DUB-IT: 29); 0 = none."),
                io.Combo.Input("long_clips", options=list(LONG_CLIPS), default="segments", optional=True,
                               tooltip="segments: dub every frame, in speech segments of at most 'max_frames' cut "
                                       "at pauses of the source speech (prompt blocks separated by a '---' line, "
                                       "one per segment, or one for all); trim: only the first 8k+1 frames up to "
                                       "'max_frames', as the paper."),
            ],
            outputs=[DubContext.Output(display_name="context")],
        )

    @classmethod
    def execute(cls, model, video, width, height, max_frames, image_crf, audio=None,
                long_clips="segments") -> io.NodeOutput:
        return io.NodeOutput(encode_context(model, video, audio, width, height, max_frames, image_crf, long_clips))


class DubbingSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubbingSampler",
            **search_aliases('lip sync', 'dubbing', 'translate video', 'just dub it', 'ltx2'),
            display_name="Dubbing Sampler",
            category=CATEGORY,
            description="JUST-DUB-IT stage 1: Euler over LTX-2's sigma schedule with CFG, the source clip as clean in-context tokens.",
            inputs=[
                LTX2Model.Input("model"),
                TextEncoder.Input("text_encoder"),
                DubContext.Input("context"),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="Scene description with the target dialogue, e.g. 'A woman speaks in Spanish: \"Hola...\"'."),
                io.String.Input("negative_prompt", multiline=True, default=DEFAULT_NEGATIVE,
                                tooltip="Used for classifier-free guidance."),
                io.Int.Input("steps", default=DEFAULT_STEPS, min=1, max=200, step=1, tooltip="Euler steps (paper: 40)."),
                io.Float.Input("cfg", default=DEFAULT_CFG, min=1.0, max=20.0, step=0.1,
                               tooltip="Guidance scale on the x0 prediction (paper: 3.0); 1.0 skips the negative pass."),
                seed_input("Noise seed."),
            ],
            outputs=[DubLatents.Output(display_name="latents")],
        )

    @classmethod
    def execute(cls, model, text_encoder, context, prompt, negative_prompt, steps, cfg, seed) -> io.NodeOutput:
        return io.NodeOutput(sample_dubbing(model, text_encoder, context, prompt, negative_prompt, steps, cfg, seed))


class DecodeDubbedVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDecodeDubbedVideo",
            display_name="Decode Dubbed Video",
            category=CATEGORY,
            description="Video VAE + audio VAE + vocoder -> the dubbed VIDEO with its new audio, as long as the source clip.",
            inputs=[LTX2Model.Input("model"), DubLatents.Input("latents"),
                    io.Boolean.Input("tiled", default=False, optional=True, tooltip="Decode in overlapping spatial tiles (diffusers' tiled decoding): far less memory for long or large videos, faint seams possible.")],
            outputs=[io.Video.Output(display_name="video"), io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def execute(cls, model, latents, tiled=False) -> io.NodeOutput:
        video, audio = decode_dubbed(model, latents, tiled)
        return io.NodeOutput(video, audio)


class LoadLTX2LatentUpsampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadLTX2LatentUpsampler",
            display_name="Load LTX-2 Latent Upsampler",
            category=CATEGORY,
            description="LTX-2's 2x spatial latent upsampler (config from the file's metadata), for the stage-2 refinement.",
            inputs=[
                io.Combo.Input("upscale_model", options=model_choices("latent_upscale_models"),
                               tooltip="e.g. ltx-2-spatial-upscaler-x2-1.0.safetensors (models/latent_upscale_models)."),
                weight_dtype_input("Weight dtype."),
            ],
            outputs=[Upsampler.Output(display_name="upsampler")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, upscale_model, precision) -> io.NodeOutput:
        path = resolve_model("latent_upscale_models", upscale_model, "Load LTX-2 Latent Upsampler", "upscale_model")
        return io.NodeOutput(load_upsampler(path, precision))


class DubbingRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubbingRefine",
            **search_aliases('lip sync', 'dubbing', 'upscale'),
            display_name="Dubbing Refine (Stage 2)",
            category=CATEGORY,
            description="Optional stage 2: 2x latent upsampling, then 2 Euler steps (sigmas 0.725, 0.421875) with the "
                        "distilled LoRA; the generated audio stays fixed.",
            inputs=[
                LTX2Model.Input("model", tooltip="The model with the dubbing LoRA and the distilled LoRA added."),
                TextEncoder.Input("text_encoder"),
                Upsampler.Input("upsampler"),
                DubContext.Input("context", tooltip="The stage-1 context; the clip is re-encoded at twice its size."),
                DubLatents.Input("latents", tooltip="Stage-1 latents."),
                io.String.Input("prompt", multiline=True, default="", tooltip="The stage-1 prompt (no CFG in stage 2)."),
                seed_input("Noise seed for the re-noising."),
            ],
            outputs=[DubLatents.Output(display_name="latents")],
        )

    @classmethod
    def execute(cls, model, text_encoder, upsampler, context, latents, prompt, seed) -> io.NodeOutput:
        return io.NodeOutput(refine_dubbing(model, text_encoder, upsampler, context, latents, prompt, seed))


NODES: list[type[io.ComfyNode]] = [
    LoadLTX2AVModel, LoadLTX2TextEncoder, DubbingLoraLoader, EncodeDubbingContext, DubbingSampler,
    LoadLTX2LatentUpsampler, DubbingRefine, DecodeDubbedVideo,
]
