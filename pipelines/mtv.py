"""MTV: demixed speech / effects / music -> video (CogVideoX backbone + Multi-Stream Temporal ControlNet).

Plain tensors and core AUDIO dicts in and out. ``place(module)`` is a context manager yielding the module
on its compute device (the nodes pass ComfyUI's model manager; the default keeps it where it is).
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional

import torch

from ..media.mono import mono_at_rate
from ..models.common.device import DTYPES, FP8_WEIGHT_DTYPES, canonical_name

WAV2VEC_RATE = 16000  # wav2vec2-base-960h takes 16 kHz
MTV_DTYPE = torch.bfloat16  # the official inference runs in bf16 (bf16: True): what "default" means here

Place = Callable[[torch.nn.Module], object]


def _here(module):
    return nullcontext(module)


def mtv_dtype(weight_dtype: str) -> torch.dtype:
    """The compute dtype of a weight-dtype name (fp8 storage computes in bf16)."""
    name = canonical_name(weight_dtype)
    return MTV_DTYPE if name == "default" or name in FP8_WEIGHT_DTYPES else DTYPES[name]


def load_mtv(path: str, weight_dtype: str = "default"):
    """The MTV transformer from the official checkpoint or a converted .safetensors: (model, compute dtype)."""
    from ..models.common.checkpoint import safetensors_metadata
    from ..models.mtv.convert import read_official_checkpoint
    from ..models.mtv.memory import store_fp8
    from ..models.mtv.transformer import MTVTransformer

    weight_dtype = canonical_name(weight_dtype)
    fp8 = weight_dtype in FP8_WEIGHT_DTYPES
    dtype = mtv_dtype(weight_dtype)
    size = {}
    if path.endswith(".safetensors"):
        meta = safetensors_metadata(path)
        if "latent_height" in meta and "latent_width" in meta:
            size = {"latent_height": int(meta["latent_height"]), "latent_width": int(meta["latent_width"])}
    model = MTVTransformer.from_official_state_dict(
        read_official_checkpoint(path), dtype=dtype, context=f"MTV checkpoint {Path(path).name}", **size
    )
    if fp8:
        store_fp8(model, fp8_matmul=weight_dtype.endswith("_fast"))
    return model.requires_grad_(False), dtype


def mono_16k(audio: dict) -> torch.Tensor:
    return mono_at_rate(audio, WAV2VEC_RATE)


def load_wav2vec_model(wav2vec_path: str):
    from ..models.common.checkpoint import load_file
    from ..models.mtv.wav2vec_features import load_wav2vec

    return load_wav2vec(load_file(wav2vec_path), _beside_config(wav2vec_path),
                        context=f"wav2vec2 {Path(wav2vec_path).name}")


def wav2vec_windows(audio: dict, wav2vec: torch.nn.Module, fps: float, clip_length: int):
    """One stem's MTV features: wav2vec2 hidden states at the video rate in 5-frame windows (on CPU)."""
    from ..models.mtv.wav2vec_features import wav2vec_features

    feats, _ = wav2vec_features(wav2vec, mono_16k(audio), fps=fps, clip_length=clip_length)
    feats.windows = feats.windows.float().cpu()
    return feats


def _beside_config(weights_path: str):
    """An HF ``config.json`` next to the weights (the repo layout); else sizes are read from the shapes."""
    import json

    from transformers import Wav2Vec2Config

    path = Path(weights_path).parent / "config.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("model_type") != "wav2vec2":
        return None
    return Wav2Vec2Config(**{k: v for k, v in data.items() if k not in ("transformers_version", "torch_dtype")})


def build_control(speech, effects, music, speech_2=None):
    from ..models.mtv.sampler import AudioControl

    streams = {"vocal": speech, "effect": effects, "music": music, "vocal_1": speech_2}
    present = {k: v for k, v in streams.items() if v is not None}
    rates = {v.fps for v in present.values()}
    if len(rates) != 1:
        raise ValueError(f"SoundstageMTVControlNet: input features use different fps {sorted(rates)}")
    length = max(v.windows.shape[0] for v in present.values())
    padded = {}
    for k, v in present.items():
        w = v.windows
        padded[k] = torch.cat([w, w.new_zeros(length - w.shape[0], *w.shape[1:])]) if w.shape[0] < length else w
    return AudioControl(**padded, num_frames=max(v.num_frames for v in present.values()), fps=rates.pop())


def demix(mixture, speech, effects, music, separator_path: str | list[str] | None, *, seed: int = 0,
          place: Place = _here, callback: Optional[Callable[[int, int], None]] = None,
          errors: Callable[[], object] = nullcontext):
    """Connected stems win; missing ones come from the separator run on the mixture, else silence.

    ``separator_path`` is one file or an ensemble (MTV's --high_quality: the three CDX23 packages,
    averaged); ``callback(done, total)`` is called per model segment.
    """
    given = {"speech": speech, "effects": effects, "music": music}
    if all(v is not None for v in given.values()):
        return given
    if mixture is None:
        ref = next((v for v in given.values() if v is not None), None)
        if ref is None:
            raise ValueError("SoundstageMTVAudioDemix: input 'mixture': connect a mixture or the stems")
        return {k: v if v is not None else _silence_like(ref) for k, v in given.items()}
    from ..models.mtv.demix import CDX23_FILE, EXPECTED_DEMUCS_FILE

    if separator_path is None:
        missing = [k for k, v in given.items() if v is None]
        raise ValueError(
            f"SoundstageMTVAudioDemix: input 'separator': stems {missing} are not connected and no separator "
            f"is chosen; put {CDX23_FILE} (MVSEP-CDX23 HTDemucs, MTV's separator) or {EXPECTED_DEMUCS_FILE} "
            "(torchaudio Hybrid Demucs) in the soundstage_mtv models folder, or connect every stem"
        )
    from ..models.mtv.demix import load_separators, separate_any, stems_from_sources

    paths = [separator_path] if isinstance(separator_path, str) else list(separator_path)
    wav, sr = mixture["waveform"][0].float(), int(mixture["sample_rate"])
    with errors():
        models = load_separators(paths)
        with place(models) as live:
            sources = separate_any(list(live), wav, sr, seed=seed, callback=callback)
        stems = stems_from_sources(sources)
    out = {k: {"waveform": v[None].contiguous(), "sample_rate": sr} for k, v in stems.items()}
    return {k: given[k] if given[k] is not None else out[k] for k in given}


def _silence_like(audio: dict) -> dict:
    return {"waveform": torch.zeros_like(audio["waveform"]), "sample_rate": audio["sample_rate"]}


def encode_text(text: str, encoder_path: str, tokenizer_path, dtype: torch.dtype, place: Place = _here) -> list:
    """T5-v1.1-XXL features of one prompt as core CONDITIONING ([[context, {}]])."""
    from ..models.mtv.text import encode_prompts, load_t5_encoder, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    with place(load_t5_encoder(encoder_path, dtype=dtype)) as model:
        context = encode_prompts(model, tokenizer, [text]).cpu()
    return [[context, {}]]


def text_context(model, positive) -> torch.Tensor:
    """The prompt features fitted to the model's text length, checked against its width."""
    from ..models.mtv.text import fit_text_length

    conf = model.config
    context = fit_text_length(positive[0][0].float(), conf.text_length)
    if context.shape[-1] != conf.text_embed_dim:
        raise ValueError(
            f"SoundstageMTVSampler: input 'positive': text features are {context.shape[-1]}-wide, the model "
            f"expects {conf.text_embed_dim} (T5-v1.1-XXL)"
        )
    return context


def total_steps(model, control, steps: int) -> int:
    from ..models.mtv.sampler import num_chunks

    conf = model.config
    return num_chunks(control.num_frames or control.vocal.shape[0], (conf.latent_frames - 1) * 4 + 1) * steps


def sample_latents(model, context: torch.Tensor, control, *, seed: int, steps: int, cfg: float, vae=None, image=None,
                   callback=None) -> dict:
    """Chunked MTV sampling with the model (and ``vae``, when given) already placed: a video LATENT
    {"samples": [chunks, C, T, h, w], "mtv_num_frames", "mtv_fps"}."""
    from ..models.mtv.preprocess import keyframe_pixels
    from ..models.mtv.sampler import sample_mtv
    from ..models.mtv.vae import encode_frames, reencode_tail

    conf = model.config
    image_latents = None
    if image is not None:
        # MTV data_video.py resize_for_rectangle_crop: uint8 bicubic cover-resize + centre crop (no squash).
        frame = keyframe_pixels(image[:1], conf.latent_height * 8, conf.latent_width * 8)
        image_latents = encode_frames(vae, frame, torch.Generator().manual_seed(seed))
    chunks = sample_mtv(
        model, context, control, latent_height=conf.latent_height, latent_width=conf.latent_width,
        steps=steps, guidance=cfg, seed=seed, image_latents=image_latents,
        carry=reencode_tail(vae, seed=seed) if vae is not None else None, callback=callback,
    )
    samples = torch.cat([c.permute(0, 2, 1, 3, 4) for c in chunks]).float().cpu()  # [chunks, C, T, h, w]
    return {"samples": samples, "mtv_num_frames": control.num_frames, "mtv_fps": control.fps}


def decode_latents(vae, latent: dict) -> torch.Tensor:
    """Frames [T, H, W, 3] of a sampled MTV LATENT, chunk overlaps removed."""
    from ..models.mtv.sampler import assemble_chunks
    from ..models.mtv.vae import decode_frames

    samples = latent["samples"]
    frames = [decode_frames(vae, samples[i:i + 1].permute(0, 2, 1, 3, 4)) for i in range(samples.shape[0])]
    return assemble_chunks(frames, int(latent.get("mtv_num_frames", 0)))
