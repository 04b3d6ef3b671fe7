"""AudioGen-Omni / MMAudio nodes: load the MMDiT, encode video, text and lyrics, sample audio latents.

VIDEO/IMAGE -> Visual Features --+
Text Encode (CLIP or T5) --------+--> MMDiT Sampler -> LATENT -> Mel-VAE Decode -> Vocoder -> AUDIO
Lyrics/Transcript Encode --------+        (Mel-VAE Decode and Vocoder live in nodes/audio_codecs.py)
"""
from __future__ import annotations

import json
import os
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..compat import io
from ..models.audiogen_omni.loader import load_mmdit_state_dict
from ..models.audiogen_omni.lyrics import LyricsTokenizer
from ..models.audiogen_omni.mmdit import MMDiTConfig
from ..models.audiogen_omni.sampler import DEFAULT_CFG, DEFAULT_STEPS
from ..models.audiogen_omni.synchformer import load_synchformer
from ..models.audiogen_omni.text import T5TextEncoder
from ..models.audiogen_omni.visual import (
    CLIP_ARCHS, ClipFrameEncoder, clip_text_features, extract_visual_features, load_clip_encoder, open_clip_from_config,
)
from ..models.common.checkpoint import load_file, safetensors_metadata
from ..pipelines.audiogen_omni import (
    DEFAULT_OVERLAP_SECONDS, DEFAULT_WINDOW_SECONDS, TASKS, check_visual_input, generate_latent,
)
from .common import (
    audio_latent, check_names, find_in_model_folders, model_folder_roots, optional_model_choices, placement_for,
    search_aliases, seed_input, weight_dtype_input,
)
from .errors import node_errors
from .model_folders import files_with_suffix, fitting, model_choices, resolve_model
from .model_patch import HandledEncoder, ModelHandle
from .progress import step_callback

CATEGORY = "Soundstage/AudioGen-Omni"
LANGUAGES = ["auto", "en-us", "cmn", "yue", "ja", "ko", "ru", "de", "fr", "es", "it", "pt", "ar", "hi"]

MMDiTModel = io.Custom("SOUNDSTAGE_MMDIT")
VisualEncoders = io.Custom("SOUNDSTAGE_MMDIT_VISUAL_ENCODERS")
VisualFeatures = io.Custom("SOUNDSTAGE_MMDIT_VISUAL_FEATURES")
T5Encoder = io.Custom("SOUNDSTAGE_T5")
TextConditioning = io.Custom("SOUNDSTAGE_MMDIT_TEXT")
LyricsConditioning = io.Custom("SOUNDSTAGE_MMDIT_LYRICS")


@dataclass
class Encoders:
    synchformer: Optional[ModelHandle]
    clip: Optional[ClipFrameEncoder]
    clip_handle: Optional[ModelHandle]  # places clip.model

    def using_clip(self):
        """CLIP on its compute device for the duration of a node's work (a no-op without CLIP)."""
        return self.clip_handle.use() if self.clip_handle is not None else nullcontext()


# --------------------------------------------------------------------------- plain functions


def load_mmdit_model(path: str, precision: str, node: str = "Load MMDiT Model") -> ModelHandle:
    placement = placement_for(precision)
    config = None
    if path.endswith(".safetensors"):
        meta = safetensors_metadata(path)
        if "mmdit_config" in meta:
            config = MMDiTConfig.from_dict(json.loads(meta["mmdit_config"]))
    with node_errors(node, "model_name"):
        net, name = load_mmdit_state_dict(load_file(path), config=config, dtype=placement.dtype,
                                          context=f"{node}: {Path(path).name}")
    family = "audiogen_omni" if net.config.lyrics_dim or net.config.timing_seconds else "mmaudio"
    return ModelHandle(net, placement, info={"kind": "mmdit", "family": family, "preset": name, "file": Path(path).name})


def load_visual_encoders(synchformer_path: Optional[str], clip_path: Optional[str], clip_arch: str, precision: str,
                         node: str = "Load MMDiT Visual Encoders") -> Encoders:
    placement = placement_for(precision)
    sync = clip = None
    if synchformer_path:
        sd = load_file(synchformer_path)
        heads = None
        if synchformer_path.endswith(".safetensors"):
            heads = json.loads(safetensors_metadata(synchformer_path).get("synchformer_heads", "null"))
        with node_errors(node, "synchformer_name"):
            model = load_synchformer(sd, num_heads=heads, context=f"{node}: {Path(synchformer_path).name}")
        sync = ModelHandle(model, placement, info={"kind": "synchformer"})
    if clip_path:
        meta = safetensors_metadata(clip_path) if clip_path.endswith(".safetensors") else {}
        with node_errors(node, "clip_name", RuntimeError):
            if "open_clip_config" in meta:  # small/custom models carry their architecture
                clip = open_clip_from_config(json.loads(meta["open_clip_config"]), load_file(clip_path))
            else:
                clip = load_clip_encoder(clip_arch, clip_path)
    if sync is None and clip is None:
        raise ValueError(f"{node}: choose at least one of 'synchformer_name' and 'clip_name'")
    clip_handle = None
    if clip is not None:
        clip.model.to(dtype=placement.dtype)  # ComfyUI's patcher only moves modules: the cast happens here, once
        clip_handle = ModelHandle(clip.model, placement, info={"kind": "clip"})
    return Encoders(sync, clip, clip_handle)


def encode_visual(encoders: Encoders, images: torch.Tensor, fps: float, duration: float,
                  node: str = "MMDiT Visual Features") -> dict:
    check_visual_input(images, fps, encoders.synchformer is not None, node)
    with ExitStack() as stack:
        stack.enter_context(encoders.using_clip())
        sync = stack.enter_context(encoders.synchformer.use()) if encoders.synchformer is not None else None
        # The reference's frame choice can leave a 0.64 s clip one sync frame short of a segment.
        with node_errors(node, "video", ValueError):
            feats = extract_visual_features(images, fps, clip_encoder=encoders.clip, synchformer=sync,
                                            duration_s=duration or None)
    return {"clip": feats.clip, "sync": feats.sync, "duration_s": feats.duration_s, "fps": float(fps)}


def t5_choices() -> list[str]:
    """Hugging Face T5 folders (config.json) in text_encoders, then single files in T5's layout with their
    ``<name>.tokenizer.json`` beside them (the pack's tiny defaults first)."""
    out = []
    for root in model_folder_roots("text_encoders"):
        out += sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json")))
    tokenizers = {t[: -len(".tokenizer.json")] for t in files_with_suffix("text_encoders", ".tokenizer.json")}
    out += [n for n in model_choices("text_encoders") if n.endswith(".safetensors") and n[: -len(".safetensors")]
            in tokenizers]
    return out or ["none"]


def load_t5(name: str, precision: str, max_length: int, node: str = "Load T5 Text Encoder") -> HandledEncoder:
    placement = placement_for(precision)
    if name.endswith(".safetensors"):
        path = resolve_model("text_encoders", name, node, "t5_name")
        with node_errors(node, "t5_name"):
            t5 = T5TextEncoder.from_file(path, dtype=placement.dtype, max_length=max_length)
    else:
        config = find_in_model_folders("text_encoders", os.path.join(name, "config.json"))
        if config is None:
            raise ValueError(f"{node}: input 't5_name': no folder '{name}' with config.json under text_encoders")
        t5 = T5TextEncoder.from_folder(os.path.dirname(config), dtype=placement.dtype, max_length=max_length)
    return HandledEncoder(t5, ModelHandle(t5.model, placement, info={"kind": "t5"}))


def encode_text(prompt: str, negative: str, t5: Optional[HandledEncoder], encoders: Optional[Encoders],
                node: str = "MMDiT Text Encode") -> dict:
    def one(text: str):
        if t5 is not None:
            with t5.handle.use():
                f = t5.encoder.encode([text])
            return f.features.cpu(), f.mask.cpu()
        with encoders.using_clip():
            return clip_text_features(encoders.clip, [text]).cpu(), None

    if t5 is None and (encoders is None or encoders.clip is None):
        if not prompt.strip() and not negative.strip():  # nothing to encode: the model's learned empty features
            return {"prompt": "", "kind": "none", "features": None, "mask": None, "negative": None,
                    "negative_mask": None}
        raise ValueError(f"{node}: connect 't5' (AudioGen-Omni) or 'clip_encoders' with a CLIP model (MMAudio) "
                         f"to encode a prompt")
    out = {"prompt": prompt, "kind": "t5" if t5 is not None else "clip"}
    out["features"], out["mask"] = one(prompt) if prompt.strip() else (None, None)
    # MMAudio demo.py always passes negative_text=[negative_prompt] (default ""): the unconditional branch
    # uses CLIP features of that string, not the learned empty_string_feat (eval_utils.py generate).
    clip_kind = t5 is None
    out["negative"], out["negative_mask"] = one(negative) if negative.strip() or clip_kind else (None, None)
    return out


def encode_lyrics(text: str, language: str, tokenizer_name: str, node: str = "MMDiT Lyrics/Transcript Encode") -> dict:
    if not text.strip():
        raise ValueError(f"{node}: input 'text' is empty")
    tok_file = None
    if tokenizer_name and tokenizer_name != "none (UTF-8 symbols)":
        tok_file = resolve_model("soundstage_mmaudio", tokenizer_name, node, "tokenizer")
    tok = LyricsTokenizer(tok_file)
    try:
        ids = tok.encode(text, None if language == "auto" else language)
    except (ImportError, RuntimeError, ValueError) as exc:  # its message adds what failed: phonemisation
        raise ValueError(f"{node}: input 'text': cannot phonemise ({exc})") from exc
    return {"ids": torch.tensor(ids, dtype=torch.long), "vocab_size": tok.vocab_size, "text": text}


def sample_mmdit(model: ModelHandle, *, task: str, duration: float, steps: int, cfg: float, seed: int, variations: int,
                 visual: Optional[dict] = None, text: Optional[dict] = None, lyrics: Optional[dict] = None,
                 cuda_graph: bool = False, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 overlap_seconds: float = DEFAULT_OVERLAP_SECONDS, node: str = "MMDiT Sampler") -> dict:
    with model.use() as live:
        latent, duration = generate_latent(live, task=task, duration=duration, steps=steps, cfg=cfg, seed=seed,
                                           variations=variations, visual=visual, text=text, lyrics=lyrics,
                                           cuda_graph=cuda_graph, callback=step_callback(steps),
                                           preset=model.info.get("preset"), node=node,
                                           window_seconds=window_seconds, overlap_seconds=overlap_seconds)
    cfgm = model.module.config
    # num_samples: the vocoder trims the last latent frame's excess, so the audio lasts exactly `duration`.
    return audio_latent(latent, sample_rate=cfgm.sample_rate, latent_hop_length=cfgm.samples_per_latent,
                        duration_s=duration, num_samples=int(round(duration * cfgm.sample_rate)))


# --------------------------------------------------------------------------- nodes


def _precision() -> io.Combo.Input:
    return weight_dtype_input("Weights dtype; default = bf16 on recent GPUs, fp32 on CPU.")


class LoadMMDiT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadMMDiT",
            **search_aliases('mmaudio', 'audiogen omni', 'foley model'),
            display_name="Load MMDiT Model (MMAudio / AudioGen-Omni)",
            category=CATEGORY,
            description="Loads an MMAudio .pth (small_16k ... large_44k_v2) or an AudioGen-Omni checkpoint; the "
                        "family and size are detected from the weights.",
            inputs=[
                io.Combo.Input("model_name", options=fitting(model_choices("soundstage_mmaudio"), "mmdit"),
                               tooltip="From models/soundstage/mmaudio (e.g. mmaudio_large_44k_v2.pth)."),
                _precision(),
            ],
            outputs=[MMDiTModel.Output(display_name="model")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, model_name: str, precision: str = "default") -> io.NodeOutput:
        path = resolve_model("soundstage_mmaudio", model_name, "Load MMDiT Model", "model_name")
        return io.NodeOutput(load_mmdit_model(path, precision))


class LoadMMDiTVisualEncoders(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadMMDiTVisualEncoders",
            display_name="Load MMDiT Visual Encoders",
            category=CATEGORY,
            description="Synchformer (25 fps sync features) and CLIP (8 fps frame and text features) for MMAudio / "
                        "AudioGen-Omni.",
            inputs=[
                io.Combo.Input("synchformer_name",
                               options=["none"] + fitting(model_choices("soundstage_mmaudio"), "synchformer"),
                               tooltip="synchformer_state_dict.pth (25 fps sync features); none = no sync features."),
                io.Combo.Input("clip_name", options=optional_model_choices("clip_vision", "none"),
                               tooltip="open_clip weights: DFN5B ViT-H-14-384 (MMAudio) or MetaCLIP bigG-14 "
                                       "(AudioGen-Omni); also encodes MMAudio's text."),
                io.Combo.Input("clip_arch", options=list(CLIP_ARCHS), default="dfn5b_h14_384",
                               tooltip="Architecture of clip_name (ignored when the file names its own)."),
                _precision(),
            ],
            outputs=[VisualEncoders.Output(display_name="encoders")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, synchformer_name: str, clip_name: str, clip_arch: str, precision: str = "default") -> io.NodeOutput:
        node = "Load MMDiT Visual Encoders"
        sync = None if synchformer_name == "none" else resolve_model("soundstage_mmaudio", synchformer_name, node,
                                                                     "synchformer_name")
        clip = None if clip_name == "none" else resolve_model("clip_vision", clip_name, node, "clip_name")
        return io.NodeOutput(load_visual_encoders(sync, clip, clip_arch, precision))


class MMDiTVisualFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMMDiTVisualFeatures",
            display_name="MMDiT Visual Features",
            category=CATEGORY,
            description="CLIP frame features at 8 fps and Synchformer features at 25 fps, cached per clip.",
            inputs=[
                VisualEncoders.Input("encoders", tooltip="From Load MMDiT Visual Encoders."),
                io.Video.Input("video", optional=True, tooltip="The clip to score; or connect 'images' + 'fps'."),
                io.Image.Input("images", optional=True, tooltip="Frames, used when no 'video' is connected."),
                io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.001, tooltip="Frame rate of 'images'."),
                io.Float.Input("duration", default=0.0, min=0.0, max=600.0, step=0.01,
                               tooltip="Seconds to use from the start; 0 = the whole clip."),
            ],
            outputs=[VisualFeatures.Output(display_name="visual_features")],
        )

    @classmethod
    def execute(cls, encoders: Encoders, video=None, images=None, fps: float = 25.0, duration: float = 0.0) -> io.NodeOutput:
        if video is not None:
            comp = video.get_components()
            images, fps = comp.images, comp.frame_rate  # a Fraction (30000/1001) stays exact
        elif images is None:
            raise ValueError("MMDiT Visual Features: connect 'video' or 'images'")
        return io.NodeOutput(encode_visual(encoders, images, fps, duration))


class LoadT5(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadT5",
            display_name="Load T5 Text Encoder",
            category=CATEGORY,
            description="T5 text encoder for AudioGen-Omni's text condition (a Hugging Face folder in "
                        "models/text_encoders).",
            inputs=[
                io.Combo.Input("t5_name", options=t5_choices(),
                               tooltip="A Hugging Face T5 folder (config.json, weights, tokenizer) in text_encoders, "
                                       "e.g. flan-t5-base, or one T5-layout .safetensors with <name>.tokenizer.json "
                                       "beside it (the soundstage-tiny defaults)."),
                io.Int.Input("max_length", default=77, min=1, max=512, step=1, tooltip="Tokens kept (padded with a mask)."),
                _precision(),
            ],
            outputs=[T5Encoder.Output(display_name="t5")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, t5_name: str, max_length: int = 77, precision: str = "default") -> io.NodeOutput:
        return io.NodeOutput(load_t5(t5_name, precision, max_length))


class MMDiTTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMMDiTTextEncode",
            display_name="MMDiT Text Encode",
            category=CATEGORY,
            description="Encodes the prompt for the MMDiT sampler: CLIP text for MMAudio, T5 for AudioGen-Omni.",
            inputs=[
                io.String.Input("prompt", multiline=True, default="", tooltip="What should be heard; empty = no text."),
                io.String.Input("negative", multiline=True, default="", tooltip="What to steer away from (CFG)."),
                T5Encoder.Input("t5", optional=True, tooltip="AudioGen-Omni models: T5 text features."),
                VisualEncoders.Input("clip_encoders", optional=True,
                                     tooltip="MMAudio models: the CLIP text tower of the visual encoders."),
            ],
            outputs=[TextConditioning.Output(display_name="text")],
        )

    @classmethod
    def execute(cls, prompt: str, negative: str = "", t5=None, clip_encoders=None) -> io.NodeOutput:
        return io.NodeOutput(encode_text(prompt, negative, t5, clip_encoders))


class MMDiTLyricsEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMMDiTLyricsEncode",
            display_name="MMDiT Lyrics/Transcript Encode",
            category=CATEGORY,
            description="Graphemes for Roman scripts, espeak-ng phonemes for others, then tokens (AudioGen-Omni 3.2).",
            inputs=[
                io.String.Input("text", multiline=True, default="", tooltip="Lyrics (song) or transcript (speech)."),
                io.Combo.Input("language", options=LANGUAGES, default="auto",
                               tooltip="espeak-ng voice for phonemes; auto = graphemes for Latin script, else by script."),
                io.Combo.Input("tokenizer",
                               options=["none (UTF-8 symbols)"] + files_with_suffix("soundstage_mmaudio", ".json"),
                               tooltip="VoiceBPE tokenizer.json the model was trained with; none = UTF-8 bytes."),
            ],
            outputs=[LyricsConditioning.Output(display_name="lyrics")],
        )

    @classmethod
    def execute(cls, text: str, language: str = "auto", tokenizer: str = "none (UTF-8 symbols)") -> io.NodeOutput:
        return io.NodeOutput(encode_lyrics(text, language, tokenizer))


class MMDiTSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMMDiTSampler",
            **search_aliases('foley', 'v2a', 'video to audio', 'mmaudio', 'sound effects', 'text to audio', 'song', 'video to speech'),
            display_name="MMDiT Sampler",
            category=CATEGORY,
            description="Euler flow matching (noise t=0 -> data t=1) with classifier-free guidance; any subset of "
                        "conditions (missing ones use the model's learned empty features).",
            inputs=[
                MMDiTModel.Input("model"),
                io.Combo.Input("task", options=TASKS, default="audio",
                               tooltip="audio: sound effects/music; speech and song also use 'lyrics'."),
                io.Float.Input("duration", default=8.0, min=0.0, max=3600.0, step=0.01,
                               tooltip="Seconds; 0 = the visual features' duration. Longer than 'window_seconds' "
                                       "is generated in overlapping windows."),
                io.Int.Input("steps", default=DEFAULT_STEPS, min=1, max=200, step=1, tooltip="Euler steps (paper: 25)."),
                io.Float.Input("cfg", default=DEFAULT_CFG, min=0.0, max=20.0, step=0.1,
                               tooltip="Guidance: cfg*cond + (1-cfg)*uncond (paper: 4.5); below 1 disables it."),
                seed_input("Noise seed (drawn on the CPU: the same seed gives the same audio everywhere)."),
                io.Int.Input("variations", default=1, min=1, max=16, step=1, tooltip="Batch of different takes."),
                VisualFeatures.Input("visual_features", optional=True),
                TextConditioning.Input("text", optional=True),
                LyricsConditioning.Input("lyrics", optional=True),
                io.Boolean.Input("cuda_graph", default=False, optional=True,
                                 tooltip="On a CUDA GPU, capture one step's forward as a CUDA graph and replay it "
                                         "each step (kept for later runs of the same length): removes the kernel-"
                                         "launch overhead that dominates this small model's sampling time."),
                io.Float.Input("window_seconds", default=DEFAULT_WINDOW_SECONDS, min=0.0, max=60.0, step=0.32,
                               optional=True,
                               tooltip="Longer audio is generated in windows of at most this many seconds (MMAudio "
                                       "is trained on 8 s), each conditioned on its own video frames and joined "
                                       "with a crossfade; windows start on 0.32 s Synchformer steps (both "
                                       "settings are rounded to them); 0 = one pass however long."),
                io.Float.Input("overlap_seconds", default=DEFAULT_OVERLAP_SECONDS, min=0.32, max=30.0, step=0.32,
                               optional=True,
                               tooltip="Seconds two neighbouring windows share; their audio is crossfaded there."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, model, task: str, duration: float, steps: int, cfg: float, seed: int, variations: int,
                visual_features=None, text=None, lyrics=None, cuda_graph: bool = False,
                window_seconds: float = DEFAULT_WINDOW_SECONDS,
                overlap_seconds: float = DEFAULT_OVERLAP_SECONDS) -> io.NodeOutput:
        return io.NodeOutput(sample_mmdit(model, task=task, duration=duration, steps=steps, cfg=cfg, seed=seed,
                                          variations=variations, visual=visual_features, text=text, lyrics=lyrics,
                                          cuda_graph=cuda_graph, window_seconds=window_seconds,
                                          overlap_seconds=overlap_seconds))


NODES: list[type[io.ComfyNode]] = [
    LoadMMDiT, LoadMMDiTVisualEncoders, MMDiTVisualFeatures, LoadT5, MMDiTTextEncode, MMDiTLyricsEncode, MMDiTSampler,
]
