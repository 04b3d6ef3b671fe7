"""Ovi nodes: load the fusion model, build and encode the prompt, sample audio+video latents, and
the Wan2.2 video VAE. Audio latents ([1, 20, L], MMAudio 16 kHz layout) go to the shared MMAudio
VAE + BigVGAN codec nodes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..compat import io, ui
from ..models.common.device import FP8_WEIGHT_DTYPES, Placement, canonical_name, resolve_dtype
from ..models.common.images import center_crop_to_aspect
from ..models.ovi.preprocess import (VIDEO_FPS, first_frame_pixels, format_prompt, image_size_for_area, latent_lengths,
                                     spec, variant_from_filename)
from ..models.ovi.loader import WAN_TEXT_LEN, load_ovi_fusion
from ..models.ovi.long_clip import overlap_frames, stitch_audio, stitch_frames
from ..models.common.vae_tiling import vae_tiling
from ..models.ovi.memory import BlockSwap, cast_non_fp8_, fp8_blocks_, ovi_block_swap
from ..models.ovi.sampler import OviSampling
from ..pipelines import ovi as pipeline
from ..pipelines.ovi import check_pixel_size
from ..models.ovi.text import (DEFAULT_AUDIO_NEGATIVE, DEFAULT_VIDEO_NEGATIVE, MODEL_VARIANTS, Umt5TextEncoder,
                               build_prompt, load_tokenizer, load_umt5)
from ..models.ovi.video_vae import decode_video, encode_image, last_frame_reencoder, load_wan_vae
from .common import (audio_latent, check_names, compute_device, find_in_model_folders, model_folder_roots,
                     offload_input, placement_for, search_aliases, seed_input, weight_dtype_input)
from .errors import node_errors
from .model_folders import model_choices, resolve_model
from .model_patch import HandledEncoder, ModelHandle
from .progress import step_callback

CATEGORY = "Soundstage/Ovi"
OviModel = io.Custom("SOUNDSTAGE_OVI_MODEL")
OviTextEncoder = io.Custom("SOUNDSTAGE_UMT5")
OviConditioningType = io.Custom("SOUNDSTAGE_OVI_CONDITIONING")
WanVAE = io.Custom("SOUNDSTAGE_WAN_VAE")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")  # google/umt5-xxl (Wan2.2-TI2V-5B ships it under google/)


# ----------------------------------------------------------------------------- model
@dataclass
class LoadedOvi:
    """The fusion model and how it runs; one per loader output, no global state."""

    handle: ModelHandle
    offload: str
    resident_blocks: int
    variant: str = "720x720_5s"  # which release: its target area, trained length and caption format

    @property
    def module(self) -> torch.nn.Module:
        return self.handle.module

    @property
    def device(self) -> torch.device:
        return self.handle.device

    @property
    def swap(self) -> BlockSwap | None:
        return self.handle.placer if isinstance(self.handle.placer, BlockSwap) else None

    def use(self):
        return self.handle.use()


VARIANT_AUTO = "auto"


def model_variant(ckpt_name: str, choice: str = VARIANT_AUTO, node: str = "Load Ovi Model") -> str:
    """The release the user loaded: named on the loader, or read from the file name (the weights of the three
    releases have one layout and cannot tell)."""
    if choice in (None, "", VARIANT_AUTO):
        return variant_from_filename(ckpt_name)
    if choice not in MODEL_VARIANTS:
        raise ValueError(f"{node}: input 'model_variant': {choice!r} is not one of {(VARIANT_AUTO,) + MODEL_VARIANTS}")
    return choice


def load_ovi_model(ckpt_name: str, precision: str, offload: str, resident_blocks: int, num_heads: int,
                   text_len: int, node: str = "Load Ovi Model", variant: str = VARIANT_AUTO) -> LoadedOvi:
    variant = model_variant(ckpt_name, variant, node)
    path = resolve_model("soundstage_ovi", ckpt_name, node, "ckpt_name")
    device = compute_device()
    precision, offload = canonical_name(precision), canonical_name(offload)
    fp8 = precision in FP8_WEIGHT_DTYPES
    dtype = torch.bfloat16 if fp8 else resolve_dtype(precision, device)
    with node_errors(node, "ckpt_name", OSError):
        # fp8: keep the file's dtypes so an fp8 release is not rounded twice, then quantise the rest.
        model = load_ovi_fusion(path, num_heads=num_heads or None, text_len=text_len, dtype=None if fp8 else dtype)
    if fp8:
        fp8_blocks_(model, compute_dtype=torch.bfloat16, fp8_matmul="ffn" if precision.endswith("_fast") else "none")
        cast_non_fp8_(model, torch.bfloat16)
    if not 0 <= resident_blocks <= model.num_blocks:
        raise ValueError(f"{node}: input 'resident_blocks': must be 0..{model.num_blocks}, got {resident_blocks}")
    # fp8 blocks keep their storage dtype when moved; everything else computes in bf16.
    placement = Placement(device, dtype, cast_dtype=not fp8)
    info = {"kind": "ovi_fusion"}
    if offload == "block_swap":
        # Block swap places the weights itself: a model manager would load every block at once.
        swap = ovi_block_swap(model, device, resident_blocks, place=False)
        return LoadedOvi(ModelHandle(model, placement, info=info, placer=swap), offload, resident_blocks, variant)
    return LoadedOvi(ModelHandle(model, placement, info=info), offload, resident_blocks, variant)


class LoadOviModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviLoadModel",
            **search_aliases('ovi', 'audio video model'),
            display_name="Load Ovi Model",
            category=CATEGORY,
            description="Ovi twin-DiT fusion checkpoint (video_model.* + audio_model.*): Ovi 1.0 model.safetensors "
                        "(720x720, 5 s) or Ovi 1.1 model_960x960.safetensors / model_960x960_10s.safetensors.",
            inputs=[
                io.Combo.Input("ckpt_name", options=model_choices("soundstage_ovi"),
                               tooltip="Fusion checkpoint in models/soundstage/ovi."),
                weight_dtype_input("default: bf16 on GPU, fp32 on CPU. fp8_e4m3fn: block weights stored in fp8 "
                                   "(per-tensor scale), computed in bf16 - about half the memory. fp8_e4m3fn_fast: "
                                   "the FFN matmuls also run in fp8 (Ada/Hopper GPUs; slightly less accurate).",
                                   fp8=True),
                offload_input("block_swap: keep only 'resident_blocks' fusion blocks on the GPU and stream the "
                              "others from pinned CPU memory, copying the next block while one runs (with "
                              "fp8_e4m3fn: the 24 GB-card mode)."),
                io.Int.Input("resident_blocks", default=0, min=0, max=64, step=1,
                             tooltip="With block_swap: fusion blocks kept on the GPU (more = faster, more VRAM; Ovi has "
                                     "30). Estimated peaks at 704x704, 121 frames: fp8 with 10 resident ~9 GiB, all "
                                     "30 ~15 GiB (benchmarks/roofline.py)."),
                io.Int.Input("num_heads", default=0, min=0, max=256, step=1,
                             tooltip="Attention heads; 0 = dim / 128 as in the released models."),
                io.Int.Input("text_len", default=WAN_TEXT_LEN, min=1, max=4096, step=1,
                             tooltip="Text tokens the model pads to (512 for the released models)."),
                io.Combo.Input("model_variant", options=[VARIANT_AUTO, *MODEL_VARIANTS], default=VARIANT_AUTO,
                               optional=True,  # optional: graphs saved before Ovi 1.1 lack it
                               tooltip="Which Ovi release the file is (the three share one weight layout): its "
                                       "target area, trained length and audio caption format. auto reads the file "
                                       "name: '960x960' and '10s' in it -> 960x960_10s, '960x960' -> 960x960_5s, "
                                       "else 720x720_5s (Ovi 1.0 model.safetensors)."),
            ],
            outputs=[OviModel.Output("ovi_model")],
        )

    @classmethod
    def validate_inputs(cls, precision=None, offload=None):
        return check_names(precision=precision, offload=offload)

    @classmethod
    def execute(cls, ckpt_name, precision, offload, resident_blocks, num_heads, text_len,
                model_variant=VARIANT_AUTO) -> io.NodeOutput:
        return io.NodeOutput(load_ovi_model(ckpt_name, precision, offload, resident_blocks, num_heads, text_len,
                                            variant=model_variant))


# ----------------------------------------------------------------------------- prompt
def ovi_prompt(video: str, speech: str, audio: str, variant: str, video_negative: str,
               audio_negative: str) -> tuple[str, str, str]:
    lines = [ln for ln in speech.splitlines() if ln.strip()]
    with node_errors("Ovi Prompt Builder", "model_variant", ValueError):
        # The engine rewrites audio captions to the checkpoint's tag style (Ovi ovi_fusion_engine.py L199-203).
        prompt = format_prompt(build_prompt(video, lines, audio, variant), variant)
    if not prompt:
        raise ValueError("Ovi Prompt Builder: input 'video_prompt': the prompt is empty")
    return prompt, video_negative, audio_negative


class OviPromptBuilder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviPromptBuilder",
            display_name="Ovi Prompt Builder",
            category=CATEGORY,
            description="Writes the prompt format the chosen checkpoint was trained on: speech in <S>..<E>, "
                        "audio caption in <AUDCAP>..<ENDAUDCAP> (720x720 5 s) or 'Audio: ...' (960 models).",
            inputs=[
                io.String.Input("video_prompt", multiline=True, default="A woman smiles at the camera in a sunny kitchen.",
                                tooltip="What is seen (you may also place <S>..<E> lines inside it)."),
                io.String.Input("speech", multiline=True, default="Good morning!",
                                tooltip="Spoken lines, one per line; each becomes <S>line<E>."),
                io.String.Input("audio_caption", multiline=True, default="Warm female voice, soft kitchen ambience.",
                                tooltip="Describes the sound: voices, ambience, effects, music."),
                io.Combo.Input("model_variant", options=list(MODEL_VARIANTS), default="720x720_5s",
                               tooltip="The checkpoint the prompt is for (decides the audio caption tags)."),
                io.String.Input("video_negative", multiline=True, default=DEFAULT_VIDEO_NEGATIVE,
                                tooltip="Negative prompt of the video branch."),
                io.String.Input("audio_negative", multiline=True, default=DEFAULT_AUDIO_NEGATIVE,
                                tooltip="Negative prompt of the audio branch."),
            ],
            outputs=[io.String.Output("prompt_out", display_name="prompt"),
                     io.String.Output("video_negative_out", display_name="video_negative"),
                     io.String.Output("audio_negative_out", display_name="audio_negative")],
        )

    @classmethod
    def execute(cls, video_prompt, speech, audio_caption, model_variant, video_negative, audio_negative) -> io.NodeOutput:
        prompt, video_neg, audio_neg = ovi_prompt(video_prompt, speech, audio_caption, model_variant, video_negative,
                                                  audio_negative)
        return io.NodeOutput(prompt, video_neg, audio_neg, ui=ui.PreviewText(prompt))  # the text the model will read


# ----------------------------------------------------------------------------- text
def tokenizer_choices() -> list[str]:
    found = set()
    for folder in model_folder_roots("text_encoders"):
        for root, _, files in os.walk(folder):
            for f in files:
                if f in TOKENIZER_FILES or f.endswith("tokenizer.json"):
                    found.add(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/"))
    return sorted(found)


def resolve_tokenizer(name: str, node: str) -> str:
    path = find_in_model_folders("text_encoders", name)
    if path is not None:
        return path
    raise ValueError(f"{node}: input 'tokenizer': '{name}' not found in the text_encoders folders")


def load_text_encoder(text_encoder: str, tokenizer: str, text_len: int, node: str = "Load umt5 (Ovi)"):
    weights = resolve_model("text_encoders", text_encoder, node, "text_encoder")
    tok_path = resolve_tokenizer(tokenizer, node)
    placement = placement_for("default")
    with node_errors(node, "text_encoder", OSError):
        model = load_umt5(weights, dtype=placement.dtype)
    with node_errors(node, "tokenizer", OSError):
        if tok_path.endswith(".model"):
            from transformers import T5TokenizerFast

            tok = T5TokenizerFast(vocab_file=tok_path)
        else:
            tok = load_tokenizer(tok_path)
    # umt5-xxl is 11 GB in bf16: on the GPU only while it encodes, so the fusion model gets the memory.
    handle = ModelHandle(model, placement, info={"kind": "umt5"}, offload_after_use=True)
    return HandledEncoder(Umt5TextEncoder(handle.module, tok, text_len=text_len), handle)


class LoadOviTextEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviLoadTextEncoder",
            display_name="Load umt5 Text Encoder (Ovi)",
            category=CATEGORY,
            description="umt5-xxl encoder, HF format or Wan's models_t5_umt5-xxl-enc-bf16.pth, with its tokenizer.",
            inputs=[
                io.Combo.Input("text_encoder", options=model_choices("text_encoders"),
                               tooltip="umt5 encoder weights in models/text_encoders."),
                io.Combo.Input("tokenizer", options=tokenizer_choices(),
                               tooltip="tokenizer.json (or spiece.model) of google/umt5-xxl, in models/text_encoders."),
                io.Int.Input("text_len", default=WAN_TEXT_LEN, min=1, max=4096, step=1,
                             tooltip="Tokens per prompt (Ovi/Wan: 512); longer prompts are truncated."),
            ],
            outputs=[OviTextEncoder.Output("umt5", display_name="text_encoder")],
        )

    @classmethod
    def execute(cls, text_encoder, tokenizer, text_len) -> io.NodeOutput:
        return io.NodeOutput(load_text_encoder(text_encoder, tokenizer, text_len))


def encode_ovi_text(encoder: HandledEncoder, prompt: str, video_negative: str, audio_negative: str,
                    ovi: LoadedOvi | None = None) -> dict:
    if not prompt.strip():
        raise ValueError("Ovi Text Encode: input 'prompt': the prompt is empty")
    if ovi is not None:
        # As the engine does before encoding (ovi_fusion_engine.py L199-203): the caption in the model's tags.
        prompt = format_prompt(prompt, ovi.variant)
    with encoder.handle.use():
        pos, vneg, aneg = encoder.encoder.encode([prompt, video_negative, audio_negative])
    return {"positive": pos, "video_negative": vneg, "audio_negative": aneg, "prompt": prompt}


def check_prompt_format(conditioning: dict, variant: str, node: str = "Ovi Sampler") -> None:
    """A caption in the other release's tags is text the model never saw in training: refuse it."""
    prompt = conditioning.get("prompt")
    if prompt is not None and format_prompt(prompt, variant) != prompt:
        tags = "<AUDCAP>...<ENDAUDCAP>" if variant == "720x720_5s" else "'Audio: ...'"
        raise ValueError(f"{node}: input 'conditioning': the {variant} model reads its audio caption as {tags}; "
                         f"set Ovi Prompt Builder's model_variant to {variant}, or connect ovi_model to Ovi Text "
                         f"Encode so it rewrites the caption")


class OviTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviTextEncode",
            display_name="Ovi Text Encode (umt5)",
            category=CATEGORY,
            description="One umt5 pass over the prompt and the two negatives.",
            inputs=[
                OviTextEncoder.Input("text_encoder"),
                io.String.Input("prompt", multiline=True, default="", tooltip="From Ovi Prompt Builder, or typed."),
                io.String.Input("video_negative", multiline=True, default=DEFAULT_VIDEO_NEGATIVE,
                                tooltip="Negative prompt of the video branch."),
                io.String.Input("audio_negative", multiline=True, default=DEFAULT_AUDIO_NEGATIVE,
                                tooltip="Negative prompt of the audio branch."),
                OviModel.Input("ovi_model", optional=True,
                               tooltip="Connect the loaded model to rewrite the audio caption to its format "
                                       "(<AUDCAP>..<ENDAUDCAP> for 720x720, 'Audio: ...' for the 960 models)."),
            ],
            outputs=[OviConditioningType.Output("conditioning")],
        )

    @classmethod
    def execute(cls, text_encoder, prompt, video_negative, audio_negative, ovi_model=None) -> io.NodeOutput:
        return io.NodeOutput(encode_ovi_text(text_encoder, prompt, video_negative, audio_negative, ovi_model))


# ----------------------------------------------------------------------------- sampler
def _image(image_latent: dict | None):
    return None if image_latent is None else image_latent["samples"]


SIZE_MODES = ("model_area", "exact")


def model_size(ovi: LoadedOvi, conditioning: dict, latent_frames: int, audio_length: int, size_mode: str,
               node: str) -> tuple[int, int, int]:
    """(video latents, audio latents, pixel area or 0) for the loaded release; checks the caption format."""
    if size_mode not in SIZE_MODES:
        raise ValueError(f"{node}: input 'size_mode': {size_mode!r} is not one of {SIZE_MODES}")
    check_prompt_format(conditioning, ovi.variant, node)
    frames, audio = latent_lengths(ovi.variant, latent_frames, audio_length)
    return frames, audio, spec(ovi.variant).video_area if size_mode == "model_area" else 0


def ovi_sample(ovi: LoadedOvi, conditioning: dict, width: int, height: int, latent_frames: int, audio_length: int,
               steps: int, shift: float, video_cfg: float, audio_cfg: float, slg_layer: int, seed: int,
               batch_cfg: bool, image_latent: dict | None = None, node: str = "Ovi Sampler",
               size_mode: str = "exact"):
    s = OviSampling(steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg, slg_layer=slg_layer,
                    seed=seed, batch_cfg=batch_cfg)
    latent_frames, audio_length, area = model_size(ovi, conditioning, latent_frames, audio_length, size_mode, node)
    pipeline.sampling_inputs(ovi.module.num_blocks, conditioning, width, height, slg_layer, _image(image_latent), node,
                             area)
    with ovi.use() as model, node_errors(node, "image_latent", ValueError):
        video, audio = pipeline.generate(model, conditioning, width=width, height=height, latent_frames=latent_frames,
                                         audio_length=audio_length, sampling=s, image_latent=_image(image_latent),
                                         device=ovi.device, callback=step_callback(steps), node=node, area=area)
    return {"samples": video[None]}, audio_latent(audio.T[None])


def ovi_sample_long(ovi: LoadedOvi, conditioning: dict, chunks: int, width: int, height: int, latent_frames: int,
                    audio_length: int, steps: int, shift: float, video_cfg: float, audio_cfg: float, slg_layer: int,
                    seed: int, batch_cfg: bool, image_latent: dict | None = None, seconds: float = 0.0,
                    carry_frames: int = 1, node: str = "Ovi Long Clip Sampler", size_mode: str = "exact",
                    vae: ModelHandle | None = None):
    s = OviSampling(steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg, slg_layer=slg_layer,
                    seed=seed, batch_cfg=batch_cfg)
    latent_frames, audio_length, area = model_size(ovi, conditioning, latent_frames, audio_length, size_mode, node)
    extra = {}
    if seconds > 0:  # enough chunks for `seconds`; the decode and the audio stitch cut to exactly that
        chunks, _ = pipeline.chunks_for_seconds(seconds, latent_frames, carry_frames, node)
        extra = {"ovi_seconds": float(seconds)}
    pipeline.sampling_inputs(ovi.module.num_blocks, conditioning, width, height, slg_layer, _image(image_latent), node,
                             area)
    with ovi.use() as model:
        parts = pipeline.generate_long(model, conditioning, chunks=chunks, width=width, height=height,
                                       latent_frames=latent_frames, audio_length=audio_length, sampling=s,
                                       image_latent=_image(image_latent), device=ovi.device,
                                       callback=step_callback(chunks * steps), node=node, carry=carry_frames,
                                       area=area, reencode=_last_frame_reencoder(vae))
    overlap = parts[-1].audio_overlap if chunks > 1 else 0
    video = {"samples": torch.stack([p.video for p in parts]), "ovi_chunks": True,
             "ovi_video_overlap": overlap_frames(carry_frames), **extra}
    audio = audio_latent(torch.stack([p.audio.T for p in parts]), ovi_chunks=True, ovi_audio_overlap=overlap, **extra)
    return video, audio


def _last_frame_reencoder(vae: ModelHandle | None):
    if vae is None:
        return None

    def reencode(latents: torch.Tensor) -> torch.Tensor:
        with vae.use() as module:
            return last_frame_reencoder(module)(latents)
    return reencode


def stitch_ovi_audio(audio: dict, audio_latent: dict, node: str = "Ovi Stitch Audio") -> dict:
    """Decoded chunk waveforms [K, C, T] -> one track, crossfading each chunk's overlapping start."""
    wav, lat = audio["waveform"], audio_latent["samples"]
    if wav.shape[0] != lat.shape[0]:
        raise ValueError(f"{node}: input 'audio': {wav.shape[0]} chunks, but the latent has {lat.shape[0]}")
    per_latent = wav.shape[-1] / lat.shape[-1]
    overlap = round(int(audio_latent.get("ovi_audio_overlap", 0)) * per_latent)
    joined = stitch_audio(list(wav), overlap)
    if audio_latent.get("ovi_seconds"):
        joined = _cut(joined, round(float(audio_latent["ovi_seconds"]) * int(audio["sample_rate"])), -1, node)
    return {"waveform": joined[None].contiguous(), "sample_rate": audio["sample_rate"]}


def _cut(x: torch.Tensor, length: int, dim: int, node: str) -> torch.Tensor:
    if x.shape[dim] < length:
        raise ValueError(f"{node}: the chunks hold {x.shape[dim]} frames/samples, {length} were asked for")
    return x.narrow(dim, 0, length)


def _sampler_inputs() -> list:
    return [
        OviModel.Input("ovi_model"),
        OviConditioningType.Input("conditioning"),
        io.Latent.Input("image_latent", optional=True,
                        tooltip="First frame from Wan VAE Encode (i2av); its size overrides width/height."),
        io.Int.Input("width", default=704, min=32, max=2048, step=32,
                     tooltip="Video width (multiple of 32). With size_mode model_area only the aspect counts."),
        io.Int.Input("height", default=704, min=32, max=2048, step=32,
                     tooltip="Video height (multiple of 32). With size_mode model_area only the aspect counts."),
        io.Int.Input("latent_frames", default=0, min=0, max=1024, step=1,
                     tooltip="Video latent frames; 0 = the model's trained length: 31 = 121 frames = 5 s at 24 fps, "
                             "61 = 241 frames = 10 s for the 960x960_10s model."),
        io.Int.Input("audio_length", default=0, min=0, max=1024, step=1,
                     tooltip="Audio latent frames; 0 = the model's trained length: 157 = 5 s of 16 kHz audio, "
                             "314 = 10 s for the 960x960_10s model."),
        io.Int.Input("steps", default=50, min=1, max=200, step=1, tooltip="Solver steps."),
        io.Float.Input("shift", default=5.0, min=0.1, max=20.0, step=0.1, tooltip="Flow sigma shift."),
        io.Float.Input("video_cfg", default=4.0, min=0.0, max=20.0, step=0.1, tooltip="Video guidance scale."),
        io.Float.Input("audio_cfg", default=3.0, min=0.0, max=20.0, step=0.1, tooltip="Audio guidance scale."),
        io.Int.Input("slg_layer", default=11, min=0, max=255, step=1,
                     tooltip="Fusion block skipped in the negative pass (0 = no skip-layer guidance)."),
        seed_input("Noise seed (noise is drawn on the CPU: same seed, same clip on any device).", default=100),
        io.Boolean.Input("batch_cfg", default=True,
                         tooltip="Run the positive and negative passes as one batch (faster, more memory)."),
        io.Combo.Input("size_mode", options=list(SIZE_MODES), default="model_area", optional=True,
                       tooltip="model_area: as Ovi does, width x height is scaled to the model's trained area "
                               "(720x720 or 960x960) keeping its aspect, each side snapped to 32. exact: that size."),
    ]


class OviSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviSampler",
            **search_aliases('text to video with audio', 't2av', 'i2av', 'audio video', 'talking video', 'ovi'),
            display_name="Ovi Sampler",
            category=CATEGORY,
            description="Joint audio+video generation (UniPC, CFG per modality, skip-layer guidance in the "
                        "negative pass). Connect image_latent for image-to-audio+video.",
            inputs=_sampler_inputs(),
            outputs=[io.Latent.Output("video_latent"), io.Latent.Output("audio_latent")],
        )

    @classmethod
    def execute(cls, ovi_model, conditioning, width, height, latent_frames, audio_length, steps, shift, video_cfg,
                audio_cfg, slg_layer, seed, batch_cfg, image_latent=None, size_mode="model_area") -> io.NodeOutput:
        return io.NodeOutput(*ovi_sample(ovi_model, conditioning, width, height, latent_frames, audio_length, steps,
                                         shift, video_cfg, audio_cfg, slg_layer, seed, batch_cfg, image_latent,
                                         size_mode=size_mode))


class OviLongSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviLongSampler",
            **search_aliases('long video', 't2av', 'ovi'),
            display_name="Ovi Long Clip Sampler (chunked)",
            category=CATEGORY,
            description="Beyond the paper (its section 6 names the 5 s length a limitation): several 5 s chunks, "
                        "each continuing from the previous chunk's last frame and overlapping audio. Decode with "
                        "Wan VAE Decode (joins the frames) and join the audio with Ovi Stitch Audio.",
            inputs=[io.Int.Input("chunks", default=2, min=1, max=32, step=1,
                                 tooltip="Number of chunks; each adds about 5 s.")] + _sampler_inputs() + [
                io.Float.Input("seconds", default=0.0, min=0.0, max=600.0, step=0.01, optional=True,
                               tooltip="Clip length in seconds (0 = 'chunks' chunks): as many chunks as it takes, "
                                       "and the decoded frames (24 fps) and stitched audio are cut to exactly it."),
                io.Int.Input("carry_frames", default=1, min=1, max=1023, step=1, optional=True,
                             tooltip="Latent frames each chunk continues from: the first becomes its clean first "
                                     "frame (Ovi's image-to-video input, the only clean frame it was trained on), "
                                     "the others are held to the previous chunk's values while sampling, for "
                                     "smoother motion across the join; each one more costs 4 frames per chunk."),
                WanVAE.Input("vae", optional=True,
                             tooltip="Wan VAE: each chunk starts from the previous chunk's last decoded frame, "
                                     "encoded as a still image (the clean first frame Ovi's i2v training saw), "
                                     "so the picture does not jump at the join. Without it, the carried latent "
                                     "frame (which holds 4 frames) is reused as it is."),
            ],
            outputs=[io.Latent.Output("video_latent", tooltip="One batch item per chunk."),
                     io.Latent.Output("audio_latent", tooltip="One batch item per chunk.")],
        )

    @classmethod
    def execute(cls, chunks, ovi_model, conditioning, width, height, latent_frames, audio_length, steps, shift,
                video_cfg, audio_cfg, slg_layer, seed, batch_cfg, image_latent=None, size_mode="model_area",
                seconds=0.0, carry_frames=1, vae=None) -> io.NodeOutput:
        return io.NodeOutput(*ovi_sample_long(ovi_model, conditioning, chunks, width, height, latent_frames,
                                              audio_length, steps, shift, video_cfg, audio_cfg, slg_layer, seed,
                                              batch_cfg, image_latent, seconds, carry_frames, size_mode=size_mode,
                                              vae=vae))


class OviStitchAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageOviStitchAudio",
            display_name="Ovi Stitch Audio",
            category=CATEGORY,
            description="Join the decoded audio of Ovi Long Clip Sampler chunks, crossfading the overlaps.",
            inputs=[io.Audio.Input("audio", tooltip="Decoded chunk audio (one batch item per chunk)."),
                    io.Latent.Input("audio_latent", tooltip="The audio latent from Ovi Long Clip Sampler.")],
            outputs=[io.Audio.Output("AUDIO")],
        )

    @classmethod
    def execute(cls, audio, audio_latent) -> io.NodeOutput:
        return io.NodeOutput(stitch_ovi_audio(audio, audio_latent))


# ----------------------------------------------------------------------------- Wan VAE
def load_video_vae(vae_name: str, precision: str, node: str = "Load Wan2.2 VAE") -> ModelHandle:
    path = resolve_model("vae", vae_name, node, "vae_name")
    placement = placement_for(precision)
    with node_errors(node, "vae_name", OSError):
        vae = load_wan_vae(path, dtype=placement.dtype)
    return ModelHandle(vae, placement, info={"kind": "wan22_vae"})


class LoadWanVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageWanVAELoader",
            display_name="Load Wan2.2 VAE",
            category=CATEGORY,
            description="Wan2.2 video VAE (z=48) in diffusers layout, for Ovi's video latents.",
            inputs=[
                io.Combo.Input("vae_name", options=model_choices("vae"), tooltip="Wan2.2 VAE in models/vae."),
                weight_dtype_input("default: bf16 on GPU, fp32 on CPU."),
            ],
            outputs=[WanVAE.Output("vae")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, vae_name, precision) -> io.NodeOutput:
        return io.NodeOutput(load_video_vae(vae_name, precision))


def wan_decode(vae: ModelHandle, latent: dict, tiled: bool = False, node: str = "Wan VAE Decode") -> torch.Tensor:
    z = latent["samples"]
    z_dim = vae.module.config.z_dim
    if z.dim() != 5 or z.shape[1] != z_dim:
        raise ValueError(f"{node}: input 'latent': expected [B, {z_dim}, F, H, W], got {tuple(z.shape)}")
    with vae.use() as module, vae_tiling(module, tiled):
        frames = decode_video(module, z)
    if latent.get("ovi_chunks"):
        joined = stitch_frames(list(frames), int(latent.get("ovi_video_overlap", 1)))
        if latent.get("ovi_seconds"):
            joined = _cut(joined, max(1, round(float(latent["ovi_seconds"]) * VIDEO_FPS)), 0, node)
        return joined
    return frames.reshape(-1, *frames.shape[2:])


class WanVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageWanVAEDecode",
            display_name="Wan VAE Decode",
            category=CATEGORY,
            description="Ovi video latent -> frames with the Wan2.2 VAE.",
            inputs=[WanVAE.Input("vae"), io.Latent.Input("latent", tooltip="Video latent from Ovi Sampler."),
                    io.Boolean.Input("tiled", default=False,
                                     tooltip="Decode in overlapping spatial tiles: less memory, faint seams possible.")],
            outputs=[io.Image.Output("IMAGE", tooltip="Frames (4*(F-1)+1 of them).")],
        )

    @classmethod
    def execute(cls, vae, latent, tiled=False) -> io.NodeOutput:
        return io.NodeOutput(wan_decode(vae, latent, tiled))


def wan_encode_first_frame(vae: ModelHandle, image: torch.Tensor, width: int, height: int,
                           node: str = "Wan VAE Encode") -> dict:
    check_pixel_size(width, height, node)
    img = image[:1].float()
    if image_size_for_area(img.shape[1], img.shape[2], width * height) != (height, width):
        img = center_crop_to_aspect(img, width / height)  # another aspect than Ovi would pick: crop, not squash
    # Ovi preprocess_image_tensor: bicubic to the size, no crop when the size is the image's own snap.
    pixels = first_frame_pixels(img[0], height, width)
    with vae.use() as module:
        return {"samples": encode_image(module, ((pixels + 1) / 2).permute(0, 2, 3, 1))}


class WanVAEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageWanVAEEncode",
            display_name="Wan VAE Encode (first frame)",
            category=CATEGORY,
            description="Encode a start image as the clean first latent frame for Ovi image-to-audio+video.",
            inputs=[
                WanVAE.Input("vae"),
                io.Image.Input("image", tooltip="First image of the batch is used."),
                io.Int.Input("width", default=704, min=32, max=2048, step=32, tooltip="Video width (multiple of 32)."),
                io.Int.Input("height", default=704, min=32, max=2048, step=32, tooltip="Video height (multiple of 32)."),
            ],
            outputs=[io.Latent.Output("image_latent")],
        )

    @classmethod
    def execute(cls, vae, image, width, height) -> io.NodeOutput:
        return io.NodeOutput(wan_encode_first_frame(vae, image, width, height))


NODES = [LoadOviModel, OviPromptBuilder, LoadOviTextEncoder, OviTextEncode, OviSampler, OviLongSampler,
         OviStitchAudio, LoadWanVAE, WanVAEDecode, WanVAEEncode]
