"""MTV (audio-sync video generation, MST-ControlNet on CogVideoX-5B) as ComfyUI nodes.

Graph: Load MTV Model / Load CogVideoX VAE; Text Template -> Text Encode; Audio Demix ->
Wav2Vec Features (x3) -> MST-ControlNet; Audio-Sync Video Sampler -> CogVideoX VAE Decode -> IMAGE,
then core CreateVideo muxes the frames with the input audio.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..compat import io, model_management, ui
from ..models.common.device import Placement
from ..models.common.vae_tiling import vae_tiling
from ..models.common.fp8 import tensor_bytes
from ..pipelines import mtv as pipeline
from ..pipelines.mtv import build_control, mtv_dtype
from .common import (check_names, compute_placement, optional_model_choices, search_aliases, seed_input,
                     weight_dtype_input)
from .errors import node_errors
from .model_folders import model_choices, resolve_model
from .model_patch import ModelHandle
from .progress import step_callback

CATEGORY = "Soundstage/MTV"
MODEL = io.Custom("SOUNDSTAGE_MTV_MODEL")
VAE = io.Custom("SOUNDSTAGE_COGVIDEOX_VAE")
FEATURES = io.Custom("SOUNDSTAGE_MTV_AUDIO_FEATURES")
CONTROL = io.Custom("SOUNDSTAGE_MTV_CONTROL")
NO_SEPARATOR = "none (use connected stems)"


@dataclass
class LoadedMTV:
    model: object
    dtype: torch.dtype


# ---- plain functions (testable without a graph) ---------------------------------------------------
def load_mtv(path: str, weight_dtype: str = "default") -> LoadedMTV:
    model, dtype = pipeline.load_mtv(path, weight_dtype)
    return LoadedMTV(model=model, dtype=dtype)


def wav2vec_windows(audio: dict, wav2vec_path: str, fps: float, clip_length: int):
    model = pipeline.load_wav2vec_model(wav2vec_path)
    with _one_shot(model).use() as live:
        return pipeline.wav2vec_windows(audio, live, fps, clip_length)


class _ProjectorStreaming:
    """MTV's own placement (``MTVTransformer.place``): all but the audio projectors on the device."""

    def __init__(self, model, projector_device: torch.device):
        self.model, self.projector_device = model, projector_device

    def place(self, device: torch.device) -> None:
        self.model.place(device, projector_device=self.projector_device)

    def release(self, offload: torch.device) -> None:
        self.model.place(offload)

    def resident_bytes(self) -> int:
        streamed = sum(tensor_bytes(m) for name, m in self.model.audio.named_children() if name.startswith("audio_proj"))
        return tensor_bytes(self.model) - streamed


def _one_shot(module: torch.nn.Module) -> ModelHandle:
    """A model loaded for one node run: placed by the model manager, released right after."""
    dtype = next(module.parameters()).dtype
    return ModelHandle(module, compute_placement(dtype), offload_after_use=True)


def _one_shot_use(module: torch.nn.Module):
    return _one_shot(module).use()


def demix(mixture, speech, effects, music, separator_path: str | list[str] | None, *, seed: int = 0):
    bar = None

    def progress(done: int, total: int) -> None:  # the segment count is known once the shifts are drawn
        nonlocal bar
        bar = bar or step_callback(total)
        bar(done, total)

    return pipeline.demix(mixture, speech, effects, music, separator_path, seed=seed, place=_one_shot_use,
                          callback=progress,
                          errors=lambda: node_errors("SoundstageMTVAudioDemix", "separator", ValueError))


def encode_text(text: str, encoder_path: str) -> list:
    from ..models.mtv.text import find_tokenizer

    try:
        tokenizer_path = find_tokenizer(encoder_path)
    except FileNotFoundError:
        tokenizer_path = _comfy_t5_tokenizer()
        if tokenizer_path is None:
            raise
    dtype = torch.bfloat16 if model_management.get_torch_device().type == "cuda" else torch.float32
    return pipeline.encode_text(text, encoder_path, tokenizer_path, dtype, place=_one_shot_use)


def _comfy_t5_tokenizer() -> Path | None:
    """ComfyUI ships the T5 tokenizer (for SD3/Flux t5xxl, the same T5-v1.1-XXL vocabulary)."""
    try:
        import comfy.text_encoders.sd3_clip as sd3  # type: ignore
    except ImportError:
        return None
    path = Path(sd3.__file__).parent / "t5_tokenizer" / "tokenizer.json"
    return path if path.is_file() else None


def sample_video(loaded: LoadedMTV, positive, control, *, seed: int, steps: int, cfg: float,
                 vae: ModelHandle | None = None, image=None):
    model = loaded.model
    context = pipeline.text_context(model, positive)
    if image is not None and vae is None:
        raise ValueError("SoundstageMTVSampler: input 'image' needs the 'vae' input to encode the keyframe")
    device = model_management.get_torch_device()
    offload = model_management.unet_offload_device()
    # Self-placing: the three 1.2B-parameter projectors run once per chunk and are streamed in from
    # the offload device, which a whole-module model manager cannot express.
    handle = ModelHandle(model, Placement(device, loaded.dtype, offload=offload), placer=_ProjectorStreaming(model, offload))
    total = pipeline.total_steps(model, control, steps)
    with handle.use(), (vae.use() if vae is not None else nullcontext()) as live_vae:
        return pipeline.sample_latents(model, context, control, seed=seed, steps=steps, cfg=cfg, vae=live_vae,
                                       image=image, callback=step_callback(total))


def decode_video(vae: ModelHandle, latent: dict, tiled: bool = False) -> torch.Tensor:
    with vae.use() as live, vae_tiling(live, tiled):
        return pipeline.decode_latents(live, latent)


def load_vae(path: str, dtype_name: str) -> ModelHandle:
    from ..models.common.checkpoint import load_file
    from ..models.mtv.vae import load_cogvideox_vae

    dtype = mtv_dtype(dtype_name)
    vae = load_cogvideox_vae(load_file(path), dtype=dtype)
    placement = compute_placement(dtype, offload=model_management.vae_offload_device())
    return ModelHandle(vae, placement, info={"kind": "cogvideox_vae"})


# ---- nodes ---------------------------------------------------------------------------------------
class MTVLoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageMTVLoadModel",
            **search_aliases('mtv', 'cogvideox'),
            display_name="Load MTV Model",
            category=CATEGORY,
            description="The official MTV checkpoint (mp_rank_00_model_states.pt, single or multi-person) "
                        "or a converted .safetensors; the backbone becomes a diffusers CogVideoX model.",
            inputs=[
                io.Combo.Input("ckpt_name", options=model_choices("soundstage_mtv"),
                               tooltip="From models/soundstage/mtv/."),
                weight_dtype_input("bf16 as the official inference (bf16: True; also what default means here). "
                                   "fp8_e4m3fn: the 42 backbone blocks' linear weights stored in 8 bits (one scale "
                                   "per tensor), computed in bf16. fp8_e4m3fn_fast: their matmuls also run in fp8 on "
                                   "Ada/Hopper GPUs (faster, slightly less accurate).",
                                   name="weight_dtype", fp8=True, default="bf16"),
            ],
            outputs=[MODEL.Output("mtv_model", display_name="mtv_model")],
        )

    @classmethod
    def validate_inputs(cls, weight_dtype=None):
        return check_names(weight_dtype=weight_dtype)

    @classmethod
    def execute(cls, ckpt_name, weight_dtype):
        path = resolve_model("soundstage_mtv", ckpt_name, "SoundstageMTVLoadModel", "ckpt_name")
        return io.NodeOutput(load_mtv(path, weight_dtype))


class CogVideoXVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageCogVideoXVAELoader",
            display_name="Load CogVideoX VAE",
            category=CATEGORY,
            description="diffusers-format CogVideoX VAE (AutoencoderKLCogVideoX) weights.",
            inputs=[
                io.Combo.Input("vae_name", options=model_choices("vae"), tooltip="From models/vae/."),
                weight_dtype_input("bf16 halves the VAE's memory.", name="weight_dtype", default="bf16"),
            ],
            outputs=[VAE.Output("vae", display_name="vae")],
        )

    @classmethod
    def validate_inputs(cls, weight_dtype=None):
        return check_names(weight_dtype=weight_dtype)

    @classmethod
    def execute(cls, vae_name, weight_dtype):
        path = resolve_model("vae", vae_name, "SoundstageCogVideoXVAELoader", "vae_name")
        return io.NodeOutput(load_vae(path, weight_dtype))


class MTVTextTemplate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from ..models.mtv.text import COUNT_WORDS

        return io.Schema(
            node_id="SoundstageMTVTextTemplate",
            display_name="MTV Text Template",
            category=CATEGORY,
            description="The structured prompt MTV was trained on (paper sec. 4.3).",
            inputs=[
                io.String.Input("scene", multiline=True, default="",
                                tooltip="Overall scene description."),
                io.String.Input("people", multiline=True, default="",
                                tooltip="One appearance description per line: Person1, Person2, ..."),
                io.Int.Input("active_speaker", default=1, min=0, max=len(COUNT_WORDS) - 1, step=1,
                             tooltip="1-based index of the person who speaks; 0 = nobody speaks "
                                     "(only the scene description is used)."),
            ],
            outputs=[io.String.Output("prompt", display_name="prompt")],
        )

    @classmethod
    def execute(cls, scene, people, active_speaker):
        from ..models.mtv.text import build_prompt

        lines = [line for line in people.splitlines() if line.strip()]
        with node_errors("SoundstageMTVTextTemplate", "active_speaker", ValueError):
            prompt = build_prompt(scene, lines, active_speaker)
        return io.NodeOutput(prompt, ui=ui.PreviewText(prompt))


class MTVTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageMTVTextEncode",
            display_name="MTV Text Encode (T5)",
            category=CATEGORY,
            description="T5-v1.1-XXL encoder weights (HF layout, e.g. t5xxl_fp16.safetensors); tokenizer.json "
                        "beside them or ComfyUI's bundled T5 tokenizer; padded "
                        "to 226 tokens as the official conditioner.",
            inputs=[
                io.String.Input("text", multiline=True, default="", tooltip="Usually the Text Template output."),
                io.Combo.Input("text_encoder", options=model_choices("text_encoders"),
                               tooltip="From models/text_encoders/."),
            ],
            outputs=[io.Conditioning.Output("positive", display_name="positive")],
        )

    @classmethod
    def execute(cls, text, text_encoder):
        path = resolve_model("text_encoders", text_encoder, "SoundstageMTVTextEncode", "text_encoder")
        with node_errors("SoundstageMTVTextEncode", "text_encoder", FileNotFoundError):
            return io.NodeOutput(encode_text(text, path))


class MTVAudioDemix(io.ComfyNode):
    ENSEMBLE = "MVSEP-CDX23 ensemble of 3 (MTV --high_quality)"

    @classmethod
    def define_schema(cls):
        from ..models.mtv.demix import CDX23_ENSEMBLE, CDX23_FILE, EXPECTED_DEMUCS_FILE

        choices = cls.separator_choices()
        return io.Schema(
            node_id="SoundstageMTVAudioDemix",
            **search_aliases('demix', 'source separation', 'stems', 'demucs'),
            display_name="MTV Audio Demix",
            category=CATEGORY,
            description="Speech / effects / music stems: connected stems are used as given; missing ones "
                        f"are separated from the mixture with MTV's MVSEP-CDX23 HTDemucs ({CDX23_FILE}) "
                        f"or a torchaudio Hybrid Demucs file ({EXPECTED_DEMUCS_FILE}, no effects stem).",
            inputs=[
                io.Combo.Input("separator", options=choices,
                               default=CDX23_FILE if CDX23_FILE in choices else NO_SEPARATOR,
                               tooltip=f"A file in models/soundstage/mtv/: {CDX23_FILE} (MVSEP-CDX23 dialog / "
                                       f"effect / music, MTV's default) or {EXPECTED_DEMUCS_FILE}; '{cls.ENSEMBLE}' "
                                       f"averages {', '.join(CDX23_ENSEMBLE)} (three times slower)."),
                io.Audio.Input("mixture", optional=True, tooltip="The full soundtrack."),
                io.Audio.Input("speech_stem", optional=True, tooltip="Speech stem (drives lip motion)."),
                io.Audio.Input("effects_stem", optional=True, tooltip="Effects stem (drives event timing)."),
                io.Audio.Input("music_stem", optional=True, tooltip="Music stem (drives visual mood)."),
            ],
            outputs=[io.Audio.Output("speech", display_name="speech"), io.Audio.Output("effects", display_name="effects"),
                     io.Audio.Output("music", display_name="music")],
        )

    @classmethod
    def separator_choices(cls) -> list[str]:
        return optional_model_choices("soundstage_mtv", NO_SEPARATOR) + [cls.ENSEMBLE]

    @classmethod
    def execute(cls, separator, mixture=None, speech_stem=None, effects_stem=None, music_stem=None):
        from ..models.mtv.demix import CDX23_ENSEMBLE

        paths = None
        if separator != NO_SEPARATOR:
            names = CDX23_ENSEMBLE if separator == cls.ENSEMBLE else (separator,)
            paths = [resolve_model("soundstage_mtv", n, "SoundstageMTVAudioDemix", "separator") for n in names]
        out = demix(mixture, speech_stem, effects_stem, music_stem, paths)
        return io.NodeOutput(out["speech"], out["effects"], out["music"])


class MTVWav2VecFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageMTVWav2VecFeatures",
            display_name="MTV Wav2Vec Features",
            category=CATEGORY,
            description="wav2vec2-base-960h hidden states of all layers, resampled to the video frame rate, "
                        "5-frame windows (MTV's audio input for one stream).",
            inputs=[
                io.Audio.Input("audio", tooltip="One stem (speech, effects or music)."),
                io.Combo.Input("wav2vec", options=model_choices("audio_encoders"),
                               tooltip="Wav2Vec2ForCTC weights (facebook/wav2vec2-base-960h) in models/audio_encoders/."),
                io.Float.Input("fps", default=24.0, min=1.0, max=120.0, step=0.001,
                               tooltip="Video frame rate; MTV was trained at 24."),
                io.Int.Input("clip_length", default=49, min=2, max=1024, step=1,
                             tooltip="Frames per generated chunk; features are padded to 1 + k*(clip_length-1)."),
            ],
            outputs=[FEATURES.Output("features", display_name="features")],
        )

    @classmethod
    def execute(cls, audio, wav2vec, fps, clip_length):
        path = resolve_model("audio_encoders", wav2vec, "SoundstageMTVWav2VecFeatures", "wav2vec")
        return io.NodeOutput(wav2vec_windows(audio, path, fps, clip_length))


class MTVControlNet(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageMTVControlNet",
            display_name="MST-ControlNet",
            category=CATEGORY,
            description="Bundles the three audio streams (plus a second speaker for the multi-person model) "
                        "for the Multi-Stream Temporal ControlNet.",
            inputs=[
                FEATURES.Input("speech", tooltip="Speech features: interval stream, lip motion."),
                FEATURES.Input("effects", tooltip="Effects features: interval stream, event timing."),
                FEATURES.Input("music", tooltip="Music features: holistic stream, visual mood."),
                FEATURES.Input("speech_2", optional=True, tooltip="Second speaker (multi-person checkpoint)."),
            ],
            outputs=[CONTROL.Output("control", display_name="control")],
        )

    @classmethod
    def execute(cls, speech, effects, music, speech_2=None):
        return io.NodeOutput(build_control(speech, effects, music, speech_2))


class MTVSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageMTVSampler",
            **search_aliases('audio to video', 'a2v', 'music video', 'talking head', 'mtv'),
            display_name="Audio-Sync Video Sampler",
            category=CATEGORY,
            description="DPM++ 2M (zero-SNR v-prediction) with batched CFG; long audio in 49-frame chunks, "
                        "each continuing from the previous chunk's last 5 frames.",
            inputs=[
                MODEL.Input("mtv_model", tooltip="From Load MTV Model."),
                io.Conditioning.Input("positive", tooltip="T5-XXL text features (MTV Text Encode)."),
                CONTROL.Input("control", tooltip="From MST-ControlNet."),
                seed_input("Noise seed."),
                io.Int.Input("steps", default=50, min=1, max=200, step=1, tooltip="Official: 50."),
                io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                               tooltip="Official effective value 3.5; 1.0 disables the unconditional pass."),
                VAE.Input("vae", optional=True,
                          tooltip="Re-encodes each chunk's tail for the next chunk (official); without it the "
                                  "last 2 latents are carried. Needed for 'image'."),
                io.Image.Input("image", optional=True, tooltip="Optional first-frame keyframe (I2V conditioning)."),
            ],
            outputs=[io.Latent.Output("latent", display_name="latent")],
        )

    @classmethod
    def execute(cls, mtv_model, positive, control, seed, steps, cfg, vae=None, image=None):
        return io.NodeOutput(sample_video(mtv_model, positive, control, seed=seed, steps=steps, cfg=cfg,
                                          vae=vae, image=image))


class CogVideoXVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SoundstageCogVideoXVAEDecode",
            display_name="CogVideoX VAE Decode",
            category=CATEGORY,
            description="Decodes MTV chunk latents and joins the chunks (overlapping frames dropped).",
            inputs=[
                VAE.Input("vae", tooltip="From Load CogVideoX VAE."),
                io.Latent.Input("latent", tooltip="From Audio-Sync Video Sampler."),
                io.Boolean.Input("tiled", default=False, optional=True, tooltip="Decode in overlapping spatial tiles (diffusers' tiled decoding): far less memory for long or large videos, faint seams possible."),
            ],
            outputs=[io.Image.Output("images", display_name="images")],
        )

    @classmethod
    def execute(cls, vae, latent, tiled=False):
        return io.NodeOutput(decode_video(vae, latent, tiled))


NODES = [
    MTVLoadModel, CogVideoXVAELoader, MTVTextTemplate, MTVTextEncode, MTVAudioDemix, MTVWav2VecFeatures,
    MTVControlNet, MTVSampler, CogVideoXVAEDecode,
]
