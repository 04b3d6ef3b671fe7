"""MTV's wav2vec2 feature path: per-video-frame windows of all encoder hidden states.

Follows MTV's ``AudioProcessor.preprocess`` + ``Wav2VecModel.forward`` + ``process_audio_emb``
(suimuc/MTV_Framework, mtv/sgm/utils/audio_processor.py, mtv/sgm/models/wav2vec.py,
mtv/sample_video.py). The network is transformers' ``Wav2Vec2Model``; only the forward order
differs: the CNN features are resampled to the video frame rate *before* the encoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # transformers is imported where a model is built: the helpers stay cheap
    from transformers import Wav2Vec2Config, Wav2Vec2Model

from ..common.checkpoint import load_strict, rename_keys

SAMPLE_RATE = 16000
WINDOW_RADIUS = 2  # frames i-2..i+2 (process_audio_emb)

# Hugging Face Wav2Vec2ForCTC file -> Wav2Vec2Model; weight norm kept as torch's parametrization.
HF_CTC_TO_MODEL = (
    (r"^wav2vec2\.", ""),
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)
UNUSED_PREFIXES = ("lm_head.", "quantizer.", "project_hid.", "project_q.")


def convert_wav2vec_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    kept = {k: v for k, v in sd.items() if not k.startswith(UNUSED_PREFIXES)}
    return rename_keys(kept, HF_CTC_TO_MODEL)


def config_from_state_dict(
    sd: Mapping[str, torch.Tensor], *, num_attention_heads: int | None = None, **overrides
) -> Wav2Vec2Config:
    """A base-style config read from the weight shapes (strides cannot be read; they are base's).

    Heads cannot be read from shapes either: wav2vec2-base uses 64-wide heads.
    """
    from transformers import Wav2Vec2Config

    sd = convert_wav2vec_state_dict(sd)
    n_conv = sum(1 for k in sd if k.startswith("feature_extractor.conv_layers.") and k.endswith(".conv.weight"))
    conv_w = [sd[f"feature_extractor.conv_layers.{i}.conv.weight"] for i in range(n_conv)]
    hidden = sd["feature_projection.projection.weight"].shape[0]
    n_layers = sum(1 for k in sd if k.startswith("encoder.layers.") and k.endswith(".attention.q_proj.weight"))
    pos_v = sd["encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    group_norm = "feature_extractor.conv_layers.1.layer_norm.weight" not in sd
    cfg = dict(
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=num_attention_heads or max(1, hidden // 64),
        intermediate_size=sd["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0],
        conv_dim=[w.shape[0] for w in conv_w],
        conv_kernel=[w.shape[-1] for w in conv_w],
        conv_stride=[5, 2, 2, 2, 2, 2, 2][:n_conv],  # wav2vec2 base/large (320x downsampling)
        conv_bias="feature_extractor.conv_layers.0.conv.bias" in sd,
        feat_extract_norm="group" if group_norm else "layer",
        num_conv_pos_embeddings=pos_v.shape[-1],
        num_conv_pos_embedding_groups=hidden // pos_v.shape[1],
        do_stable_layer_norm=not group_norm,
    )
    cfg.update(overrides)
    return Wav2Vec2Config(**cfg)


def load_wav2vec(
    sd: Mapping[str, torch.Tensor], config: Wav2Vec2Config | None = None, *, context: str = "wav2vec2"
) -> Wav2Vec2Model:
    from transformers import Wav2Vec2Model

    config = config or config_from_state_dict(sd)
    config._attn_implementation = "sdpa"
    model = Wav2Vec2Model(config)
    load_strict(model, convert_wav2vec_state_dict(sd), context=context)
    return model.eval()


def normalize_waveform(wav: torch.Tensor) -> torch.Tensor:
    """Wav2Vec2FeatureExtractor(do_normalize=True): zero mean, unit variance, eps 1e-7."""
    wav = wav.double()
    return ((wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)).float()


def frame_count(num_samples: int, fps: float) -> int:
    return math.ceil(num_samples / SAMPLE_RATE * fps)


def pad_to_clip_grid(wav: torch.Tensor, fps: float, clip_length: int) -> tuple[torch.Tensor, int]:
    """Zero-pad so the frame count is 1 + k*(clip_length-1), as MTV's preprocess does (49 -> 48k+1)."""
    seq_len = frame_count(wav.shape[-1], fps)
    if clip_length > 1 and (seq_len - 1) % (clip_length - 1) != 0:
        extra = clip_length - 1 - (seq_len - 1) % (clip_length - 1)
        # MTV pads int(extra * (16000 // fps)) samples: floor division of a float, kept as is.
        wav = F.pad(wav, (0, int(extra * (SAMPLE_RATE // fps))))
        seq_len += extra
    return wav, seq_len


@torch.no_grad()
def encode_interpolated(model: Wav2Vec2Model, wav: torch.Tensor, seq_len: int) -> dict[str, torch.Tensor]:
    """CNN features -> linear resample to ``seq_len`` -> projection -> encoder; every layer's output."""
    feats = model.feature_extractor(wav[None] if wav.dim() == 1 else wav).transpose(1, 2)
    feats = F.interpolate(feats.transpose(1, 2), size=seq_len, mode="linear", align_corners=True).transpose(1, 2)
    hidden, _ = model.feature_projection(feats)
    enc = model.encoder
    states = []
    if getattr(model.config, "do_stable_layer_norm", False):
        hidden = hidden + enc.pos_conv_embed(hidden)
        for layer in enc.layers:
            hidden = _layer_out(layer(hidden))
            states.append(hidden)
        states[-1] = enc.layer_norm(states[-1])  # stable-layer-norm models normalise the last output
    else:
        hidden = enc.layer_norm(hidden + enc.pos_conv_embed(hidden))
        for layer in enc.layers:
            hidden = _layer_out(layer(hidden))
            states.append(hidden)
    stacked = torch.stack(states, dim=2)[0]  # [S, layers, D]
    return {"extract_features_interp": feats, "hidden_states_stacked": stacked}


def _layer_out(out):
    # transformers < 5 returns a tuple, >= 5 the tensor
    return out[0] if isinstance(out, tuple) else out


def window_frames(stacked: torch.Tensor, radius: int = WINDOW_RADIUS) -> torch.Tensor:
    """[S, ...] -> [S, 2r+1, ...]: frames i-r..i+r, indices clamped to the clip."""
    s = stacked.shape[0]
    idx = (torch.arange(s)[:, None] + torch.arange(-radius, radius + 1)[None]).clamp(0, s - 1)
    return stacked[idx.to(stacked.device)]


@dataclass
class AudioFeatures:
    """One stream's wav2vec windows: ``windows`` [S, 5, layers, D]; ``num_frames`` before grid padding."""

    windows: torch.Tensor
    num_frames: int
    fps: float


@torch.no_grad()
def wav2vec_features(
    model: Wav2Vec2Model, wav_16k: torch.Tensor, *, fps: float = 24.0, clip_length: int = 49
) -> tuple[AudioFeatures, dict[str, torch.Tensor]]:
    """Mono 16 kHz waveform -> MTV audio windows (and the intermediates, for checking)."""
    if wav_16k.dim() != 1:
        raise ValueError(f"wav2vec_features expects a mono waveform [T], got shape {tuple(wav_16k.shape)}")
    param = next(model.parameters())
    x = normalize_waveform(wav_16k.float().cpu())
    num_frames = frame_count(x.shape[-1], fps)
    x, seq_len = pad_to_clip_grid(x, fps, clip_length)
    x = x.to(param.device, param.dtype)[None]
    inter = encode_interpolated(model, x, seq_len)
    windows = window_frames(inter["hidden_states_stacked"])
    inter = {"input_values_padded": x, **inter, "features_windowed": windows}
    return AudioFeatures(windows=windows, num_frames=num_frames, fps=fps), inter
