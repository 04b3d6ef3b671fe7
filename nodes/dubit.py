"""Lightricks' DubIt on LTX-2.3, and dubbing with your own voice: one node each, beside the JUST-DUB-IT
(LTX-2.0) nodes whose loaders, LoRA loader, upsampler and decoder they share.

Load LTX-2 AV Model (2.3) ─ Dubbing LoRA Loader (DubIt LoRA) ─┬─ DubIt Sampler ──────┬─ Decode Dubbed Video
Load LTX-2 Text Encoder ───────────────────────────────────────┤   or                │
Load LTX-2 Latent Upsampler ───────────────────────────────────┘ DubIt Own Voice ────┘
"""
from __future__ import annotations

from typing import Any

from ..compat import io
from .common import search_aliases, seed_input
from .dubbing import CATEGORY, DubbedLatents, DubLatents, GemmaTextEncoder, LTX2AVModel, LTX2Model, TextEncoder, \
    Upsampler
from .errors import node_errors
from .model_patch import ModelHandle
from .progress import step_callback

# dubit.py defaults: the final size 1024x1536 (stage 1 at 512x768); reference_strength 1.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1536, 1024


def _video_parts(video, audio: dict | None, node: str):
    comps = video.get_components()
    source_audio = audio if audio is not None else comps.audio
    if source_audio is None:
        raise ValueError(f"{node}: input 'audio': the VIDEO has no audio track; connect the source audio")
    return comps.images, comps.frame_rate, source_audio


def _require_23(model: LTX2AVModel, node: str) -> None:
    version = getattr(model.transformer.module, "version", "2.0")  # read from the file's keys by the loader
    if version != "2.3":
        raise ValueError(f"{node}: input 'model': {model.name} is an LTX-{version} checkpoint; DubIt and its LoRA "
                         "are trained on LTX-2.3 (use Dubbing Sampler for JUST-DUB-IT on LTX-2.0)")


def _encode_text(model: LTX2AVModel, text: GemmaTextEncoder, prompt: str, node: str):
    from ..models.just_dub_it.text import encode_prompts
    from ..pipelines.dubit import TextContext

    if not prompt.strip():
        raise ValueError(f"{node}: input 'prompt': describe the scene and the target dialogue")
    connectors = model.require("connectors", node, "model")
    with text.handle.use(), connectors.use() as c:
        try:
            video_ctx, audio_ctx = encode_prompts(text.encoder, c, [prompt], text.max_tokens)
        except ValueError as exc:
            raise ValueError(f"{node}: input 'text_encoder': {exc}") from exc
    return TextContext(video_ctx, audio_ctx)


def run_dubit(model: LTX2AVModel, text: GemmaTextEncoder, upsampler: ModelHandle, video, prompt: str, width: int,
              height: int, max_frames: int, reference_strength: float, seed: int, audio: dict | None = None,
              voice: dict | None = None, node: str = "DubIt Sampler") -> DubbedLatents:
    """Encode the clip, both DubIt stages with the model's LoRAs merged, and the latents for Decode Dubbed Video."""
    from ..models.just_dub_it.lora import loras_merged
    from ..models.just_dub_it.upsampler import upsample_latent
    from ..pipelines.dubit import DISTILLED_SIGMAS, STAGE2_SIGMAS, dubit, encode_source

    _require_23(model, node)
    if not 0.0 <= reference_strength <= 1.0:
        raise ValueError(f"{node}: input 'reference_strength': must be in [0, 1], got {reference_strength}")
    images, fps, source_audio = _video_parts(video, audio, node)
    vae = model.require("video_vae", node, "model")
    avae = model.require("audio_vae", node, "model")
    given = None if voice is None else (voice["waveform"][0], int(voice["sample_rate"]))
    with vae.use() as v, avae.use() as a, node_errors(node, "video", RuntimeError):
        source = encode_source(v, a, images, fps, source_audio["waveform"][0], int(source_audio["sample_rate"]),
                               width=width, height=height, max_frames=max_frames, voice=given, node=node)
    context = _encode_text(model, text, prompt, node)

    def upsample(latent):
        with upsampler.use() as up, vae.use() as v:
            return upsample_latent(up, v, latent.to(upsampler.device))

    callback = step_callback(len(DISTILLED_SIGMAS) + len(STAGE2_SIGMAS) - 2)
    # DubIt merges its LoRA into both stages at the same strength (dubit.py).
    with model.transformer.use() as t, loras_merged(t.transformer, model.loras, device=model.transformer.device):
        video_latent, audio_latent = dubit(t, upsample, source, context, seed=seed,
                                           reference_strength=reference_strength, callback=callback)
    return DubbedLatents(video_latent, audio_latent, source.frames, float(source.fps))


def run_own_voice(model: LTX2AVModel, text: GemmaTextEncoder, upsampler: ModelHandle, video, voice: dict, prompt: str,
                  width: int, height: int, max_frames: int, reference_strength: float, seed: int,
                  effects: dict | None = None, music: dict | None = None, duck_depth_db: float = 10.0,
                  node: str = "DubIt Own Voice") -> DubbedLatents:
    """DubIt with the given speech frozen; the decoded clip carries that speech itself (not a VAE round trip),
    with the source's effects / music stems mixed under it when connected."""
    from ..pipelines.dubit import voice_track

    latents = run_dubit(model, text, upsampler, video, prompt, width, height, max_frames, reference_strength, seed,
                        voice=voice, node=node)
    stem = lambda a: None if a is None else (a["waveform"][0], int(a["sample_rate"]))  # noqa: E731
    with node_errors(node, "voice", ValueError):
        wave, rate = voice_track(voice["waveform"][0], int(voice["sample_rate"]), latents.frames / latents.fps,
                                 effects=stem(effects), music=stem(music), duck_depth_db=duck_depth_db)
    latents.waveform = {"waveform": wave.unsqueeze(0).contiguous(), "sample_rate": rate}
    return latents


def _common_inputs() -> list[Any]:
    return [
        LTX2Model.Input("model", tooltip="LTX-2.3 (22B distilled) with the DubIt IC-LoRA added by Dubbing LoRA Loader "
                                         "(ltx-2.3-22b-ic-lora-dubit-0.9, strength 1)."),
        TextEncoder.Input("text_encoder"),
        Upsampler.Input("upsampler", tooltip="LTX-2.3's x2 spatial upscaler (ltx-2.3-spatial-upscaler-x2)."),
        io.Video.Input("video", tooltip="The clip to dub: its frames (cut to 8k+1), audio and exact frame rate "
                                        "(29.97 stays 30000/1001)."),
    ]


def _size_inputs() -> list[Any]:
    return [
        io.Int.Input("width", default=DEFAULT_WIDTH, min=0, max=4096, step=64,
                     tooltip="Final width (multiple of 64); stage 1 runs at half. 0 = the source width rounded down."),
        io.Int.Input("height", default=DEFAULT_HEIGHT, min=0, max=4096, step=64,
                     tooltip="Final height (multiple of 64); stage 1 runs at half. 0 = the source height rounded down."),
        io.Int.Input("max_frames", default=0, min=0, max=2000, step=8,
                     tooltip="Longest clip in frames; 0 = the whole clip (DubIt dubs it all, cut to 8k+1)."),
        io.Float.Input("reference_strength", default=1.0, min=0.0, max=1.0, step=0.05,
                       tooltip="How clean the source video is as reference: 1 = fully (DubIt's default), lower lets "
                               "the model re-noise it (denoise mask 1 - strength). The audio reference is always clean."),
        seed_input("Noise seed (one noise stream for both stages)."),
    ]


class DubItSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubItSampler",
            **search_aliases('dubit', 'lip sync', 'dubbing', 'translate video', 'ltx-2.3', 'lipdub'),
            display_name="DubIt Sampler (LTX-2.3)",
            category=CATEGORY,
            description="Lightricks' DubIt: the source clip as clean in-context reference (video at the target's "
                        "positions, the whole source audio at negative time, no masks); 8 distilled steps at half "
                        "size, the x2 upscaler, 3 steps at full size with the new audio frozen. No CFG.",
            inputs=_common_inputs() + [
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The scene and the target-language dialogue, e.g. 'A man speaks in French: \"...\"'."),
            ] + _size_inputs() + [
                io.Audio.Input("audio", optional=True, tooltip="Source audio; defaults to the VIDEO's own track."),
            ],
            outputs=[DubLatents.Output(display_name="latents")],
        )

    @classmethod
    def execute(cls, model, text_encoder, upsampler, video, prompt, width, height, max_frames, reference_strength,
                seed, audio=None) -> io.NodeOutput:
        return io.NodeOutput(run_dubit(model, text_encoder, upsampler, video, prompt, width, height, max_frames,
                                       reference_strength, seed, audio=audio))


class DubItOwnVoice(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubItOwnVoice",
            **search_aliases('own voice', 'voice over', 'lip sync to audio', 'dubbing', 'dubit', 'tts'),
            display_name="DubIt Own Voice (LTX-2.3)",
            category=CATEGORY,
            description="Dub with speech you supply (a recording or any TTS): the speech is frozen in both DubIt "
                        "stages, as DubIt freezes its stage-2 audio, so only the lips and face are regenerated to "
                        "match it. Optionally keeps the source's effects and music under the new speech, ducked.",
            inputs=_common_inputs() + [
                io.Audio.Input("voice", tooltip="The target-language speech, aligned to the clip's start; cut or "
                                                "padded with silence to the clip's length."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The scene and the spoken line (helps the face match the words)."),
            ] + _size_inputs() + [
                io.Audio.Input("effects", optional=True,
                               tooltip="Source effects to keep under the new speech (e.g. MTV Audio Demix's effects)."),
                io.Audio.Input("music", optional=True,
                               tooltip="Source music to keep under the new speech (e.g. MTV Audio Demix's music)."),
                io.Float.Input("duck_depth_db", default=10.0, min=0.0, max=60.0, step=0.5, optional=True,
                               tooltip="How far effects and music dip while the new speech plays (sidechain "
                                       "ducking, as Mix Tracks); 0 = no ducking."),
            ],
            outputs=[DubLatents.Output(display_name="latents")],
        )

    @classmethod
    def execute(cls, model, text_encoder, upsampler, video, voice, prompt, width, height, max_frames,
                reference_strength, seed, effects=None, music=None, duck_depth_db=10.0) -> io.NodeOutput:
        return io.NodeOutput(run_own_voice(model, text_encoder, upsampler, video, voice, prompt, width, height,
                                           max_frames, reference_strength, seed, effects, music, duck_depth_db))


NODES: list[type[io.ComfyNode]] = [DubItSampler, DubItOwnVoice]
