"""DualDub nodes: load the LM + WavTokenizer codec + CLIP vision, encode video / text / speaker,
sample the two token streams, and decode them into a background AUDIO and a speech AUDIO.

Each node's ``execute`` calls one plain function below; the models live in ``models/dualdub``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .common import check_names, placement_for, search_aliases, seed_input, weight_dtype_input
from .errors import node_errors
from ..compat import io
from ..models.common.codecs.wavtokenizer import load_wavtokenizer
from ..models.common.device import Placement
from ..models.dualdub.config import V2A_PROMPT
from ..models.dualdub.io import load_dualdub
from ..models.dualdub.sampler import SamplingOptions, steps_for_duration
from ..pipelines import dualdub as pipeline
from ..pipelines.dualdub import TASKS
from ..models.dualdub.vision import load_clip_vision
from .model_folders import model_choices, resolve_model
from .model_patch import ModelHandle
from .progress import step_callback

CATEGORY = "Soundstage/DualDub"
DualDubModel = io.Custom("SOUNDSTAGE_DUALDUB")
WavTokenizerCodec = io.Custom("SOUNDSTAGE_WAVTOKENIZER")
ClipVisionHF = io.Custom("SOUNDSTAGE_CLIP_VISION")
DualDubVideo = io.Custom("SOUNDSTAGE_DUALDUB_VIDEO")
DualDubText = io.Custom("SOUNDSTAGE_DUALDUB_TEXT")
DualDubSpeaker = io.Custom("SOUNDSTAGE_DUALDUB_SPEAKER")
DualDubTokens = io.Custom("SOUNDSTAGE_DUALDUB_TOKENS")


@dataclass
class LoadedDualDub:
    handle: ModelHandle
    tokenizer: object


# ----------------------------------------------------------------------------- loader
def load_dualdub_parts(ckpt_name: str, codec_name: str, clip_name: str, precision: str,
                       node: str = "Load DualDub"):
    placement = placement_for(precision)
    with node_errors(node, "ckpt_name", OSError):
        model, tokenizer = load_dualdub(resolve_model("soundstage_dualdub", ckpt_name, node, "ckpt_name"))
    with node_errors(node, "codec_name", OSError):
        codec = load_wavtokenizer(resolve_model("audio_encoders", codec_name, node, "codec_name"))
    with node_errors(node, "clip_name", OSError):
        clip = load_clip_vision(resolve_model("clip_vision", clip_name, node, "clip_name"))
    if codec.codebook_size != model.config.codebook_size:
        raise ValueError(f"{node}: input 'codec_name': the codec has {codec.codebook_size} codes but the "
                         f"DualDub checkpoint was trained on {model.config.codebook_size}")
    if abs(codec.sample_rate / codec.hop_length - model.config.token_rate) > 1e-6:
        raise ValueError(f"{node}: input 'codec_name': codec runs at {codec.sample_rate / codec.hop_length:g} "
                         f"tokens/s, the DualDub checkpoint at {model.config.token_rate:g}")
    if clip.dim != model.config.video_dim:
        raise ValueError(f"{node}: input 'clip_name': CLIP width {clip.dim} does not match the "
                         f"checkpoint's video_dim {model.config.video_dim}")
    # The codec's ISTFT and the CLIP tower stay in float32: they are small and precision-sensitive.
    fp32 = Placement(placement.device, torch.float32, placement.offload)
    return (LoadedDualDub(ModelHandle(model, placement, info={"name": ckpt_name}), tokenizer),
            ModelHandle(codec, fp32, info={"name": codec_name}), ModelHandle(clip, fp32, info={"name": clip_name}))


class LoadDualDub(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadDualDub",
            **search_aliases('dualdub', 'v2a model'),
            display_name="Load DualDub",
            category=CATEGORY,
            description="The DualDub LM (with its BPE tokenizer beside it), the WavTokenizer codec both tracks "
                        "use, and the CLIP vision tower for video features.",
            inputs=[
                io.Combo.Input("ckpt_name", options=model_choices("soundstage_dualdub"),
                               tooltip="DualDub checkpoint (.safetensors; <name>.tokenizer.json beside it)."),
                io.Combo.Input("codec_name", options=model_choices("audio_encoders"),
                               tooltip="WavTokenizer .ckpt the model was trained with (40 or 75 tokens/s, 24 kHz)."),
                io.Combo.Input("clip_name", options=model_choices("clip_vision"),
                               tooltip="CLIP vision model (Hugging Face folder or single file)."),
                weight_dtype_input("LM precision; default = bf16 on GPU, fp32 on CPU."),
            ],
            outputs=[DualDubModel.Output("dualdub"), WavTokenizerCodec.Output("codec"),
                     ClipVisionHF.Output("clip_vision")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, ckpt_name, codec_name, clip_name, precision) -> io.NodeOutput:
        return io.NodeOutput(*load_dualdub_parts(ckpt_name, codec_name, clip_name, precision))


# ----------------------------------------------------------------------------- video
def dualdub_video_encode(clip: ModelHandle, video, node: str = "DualDub Video Encode") -> dict:
    components = video.get_components()
    with clip.use() as tower:
        return pipeline.video_features(tower, components.images, components.frame_rate, node)



class DualDubVideoEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDualDubVideoEncode",
            display_name="DualDub Video Encode",
            category=CATEGORY,
            description="CLIP features of one frame in every three (DualDub paper 3.2), with their timestamps; "
                        "also carries the video's duration for the sampler.",
            inputs=[ClipVisionHF.Input("clip_vision"), io.Video.Input("video")],
            outputs=[DualDubVideo.Output("video_features")],
        )

    @classmethod
    def execute(cls, clip_vision, video) -> io.NodeOutput:
        return io.NodeOutput(dualdub_video_encode(clip_vision, video))


# ----------------------------------------------------------------------------- text
def dualdub_text_encode(dualdub: LoadedDualDub, text: str, node: str = "DualDub Text Encode") -> dict:
    return pipeline.text_ids(dualdub.tokenizer, text, dualdub.handle.module.config.text_vocab_size, node)



class DualDubTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDualDubTextEncode",
            display_name="DualDub Text Encode",
            category=CATEGORY,
            description="BPE-tokenize the transcript with the tokenizer saved beside the checkpoint.",
            inputs=[
                DualDubModel.Input("dualdub"),
                io.String.Input("text", multiline=True, default="Hello there.",
                                tooltip=f"Transcript of the speech. For background audio only, use '{V2A_PROMPT}'."),
            ],
            outputs=[DualDubText.Output("text_tokens")],
        )

    @classmethod
    def execute(cls, dualdub, text) -> io.NodeOutput:
        return io.NodeOutput(dualdub_text_encode(dualdub, text))


# ----------------------------------------------------------------------------- speaker
def dualdub_speaker_prompt(dualdub: LoadedDualDub, audio: dict | None, seconds: float,
                           node: str = "DualDub Speaker Prompt") -> dict:
    if audio is None:
        return pipeline.speaker_embedding(dualdub.handle.module, None, seconds, node)
    with dualdub.handle.use() as model:
        return pipeline.speaker_embedding(model, audio, seconds, node)



class DualDubSpeakerPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDualDubSpeakerPrompt",
            display_name="DualDub Speaker Prompt",
            category=CATEGORY,
            description="Speaker embedding from a reference voice (log-mel of its first seconds, average-pooled). "
                        "Leave 'reference' unconnected for a zero speaker (background audio only).",
            inputs=[
                DualDubModel.Input("dualdub"),
                io.Audio.Input("reference", optional=True, tooltip="A recording of the target voice."),
                io.Float.Input("seconds", default=3.0, min=0.5, max=30.0, step=0.1,
                               tooltip="Length of reference used; the paper uses 3 s."),
            ],
            outputs=[DualDubSpeaker.Output("speaker")],
        )

    @classmethod
    def execute(cls, dualdub, seconds, reference=None) -> io.NodeOutput:
        return io.NodeOutput(dualdub_speaker_prompt(dualdub, reference, seconds))


# ----------------------------------------------------------------------------- sampler
def dualdub_sample(dualdub: LoadedDualDub, text: dict, task: str, duration: float, temperature: float, top_k: int,
                   top_p: float, repetition_penalty: float, seed: int, allow_early_end: bool,
                   video: dict | None = None, speaker: dict | None = None,
                   window_seconds: float = pipeline.DEFAULT_WINDOW_SECONDS,
                   context_seconds: float = pipeline.DEFAULT_CONTEXT_SECONDS, pause_guide: dict | None = None,
                   node: str = "DualDub AR LM Sampler") -> dict:
    cfg = dualdub.handle.module.config
    seconds = duration if duration > 0 else (video["seconds"] if video is not None else 0.0)
    options = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p,
                              repetition_penalty=repetition_penalty, seed=seed)
    callback = step_callback(steps_for_duration(seconds, cfg.token_rate)) if seconds > 0 else None
    with dualdub.handle.use() as model:
        return pipeline.generate_tokens(model, dualdub.tokenizer, text, task=task, duration=duration, options=options,
                                        allow_early_end=allow_early_end, video=video, speaker=speaker,
                                        callback=callback, node=node, window_seconds=window_seconds,
                                        context_seconds=context_seconds, pause_guide=pause_guide)



class DualDubSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDualDubSampler",
            **search_aliases('foley', 'v2a', 'video to audio', 'dubbing', 'tts', 'text to speech', 'soundtrack'),
            display_name="DualDub AR LM Sampler",
            category=CATEGORY,
            description="Generate background-audio tokens and speech tokens together, one step per codec token "
                        "(KV-cached). Length = duration x the codec's token rate.",
            inputs=[
                DualDubModel.Input("dualdub"),
                DualDubText.Input("text"),
                DualDubVideo.Input("video_features", optional=True),
                DualDubSpeaker.Input("speaker", optional=True),
                io.Combo.Input("task", options=list(TASKS), default="v2st",
                               tooltip="v2st: speech + background from video; v2a: background only (the text is replaced by the "
                                       "V2A prompt, the speaker by zeros); tts: speech only (no video)."),
                io.Float.Input("duration", default=0.0, min=0.0, max=600.0, step=0.01,
                               tooltip="Seconds to generate; 0 = the video's duration."),
                io.Float.Input("temperature", default=1.0, min=0.0, max=5.0, step=0.01, tooltip="0 = greedy."),
                io.Int.Input("top_k", default=50, min=0, max=100000, step=1, tooltip="0 = no top-k."),
                io.Float.Input("top_p", default=0.95, min=0.0, max=1.0, step=0.01, tooltip="1 = no nucleus filter."),
                io.Float.Input("repetition_penalty", default=1.0, min=1.0, max=3.0, step=0.01,
                               tooltip="Penalise codes used in the last 50 steps; 1 = off."),
                seed_input("Sampling seed; the same seed gives the same soundtrack."),
                io.Boolean.Input("allow_early_end", default=False,
                                 tooltip="Let a stream stop at its EOS before 'duration' (then padded with silence). "
                                         "Off: the video fixes the length (V2A/V2ST); on for TTS, where "
                                         "'duration' is only the upper bound."),
                io.Float.Input("window_seconds", default=pipeline.DEFAULT_WINDOW_SECONDS, min=0.0, max=60.0,
                               step=0.5, optional=True,
                               tooltip="Longer clips are generated in windows of at most this many seconds, each "
                                       "continuing both token streams from the previous one and speaking its share "
                                       "of the transcript; 0 = one pass however long."),
                io.Float.Input("context_seconds", default=pipeline.DEFAULT_CONTEXT_SECONDS, min=0.0, max=10.0,
                               step=0.1, optional=True,
                               tooltip="Seconds of the previous window's tokens each window continues from."),
                io.Audio.Input("pause_guide", optional=True,
                               tooltip="A track whose pauses the window borders follow (e.g. the original "
                                       "dialogue when dubbing), so no word is cut between windows."),
            ],
            outputs=[DualDubTokens.Output("tokens")],
        )

    @classmethod
    def execute(cls, dualdub, text, task, duration, temperature, top_k, top_p, repetition_penalty, seed,
                allow_early_end, video_features=None, speaker=None,
                window_seconds=pipeline.DEFAULT_WINDOW_SECONDS, context_seconds=pipeline.DEFAULT_CONTEXT_SECONDS,
                pause_guide=None) -> io.NodeOutput:
        return io.NodeOutput(dualdub_sample(dualdub, text, task, duration, temperature, top_k, top_p,
                                            repetition_penalty, seed, allow_early_end, video_features, speaker,
                                            window_seconds, context_seconds, pause_guide))


# ----------------------------------------------------------------------------- decode
def dualdub_decode(codec: ModelHandle, tokens: dict, node: str = "DualDub Codec Decode") -> tuple[dict, dict]:
    """Both streams -> two AUDIO dicts of the same length (silence after a stream's last token)."""
    with codec.use() as model:
        return pipeline.decode_tokens(model, tokens, node)



class DualDubDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDualDubDecode",
            display_name="DualDub Codec Decode",
            category=CATEGORY,
            description="WavTokenizer decode of both token streams (Vocos backbone + ISTFT) at 24 kHz.",
            inputs=[WavTokenizerCodec.Input("codec"), DualDubTokens.Input("tokens")],
            outputs=[io.Audio.Output("background"), io.Audio.Output("speech")],
        )

    @classmethod
    def execute(cls, codec, tokens) -> io.NodeOutput:
        return io.NodeOutput(*dualdub_decode(codec, tokens))


NODES: list[type[io.ComfyNode]] = [
    LoadDualDub, DualDubVideoEncode, DualDubTextEncode, DualDubSpeakerPrompt, DualDubSampler, DualDubDecode,
]
