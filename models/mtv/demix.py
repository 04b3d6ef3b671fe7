"""Speech / effects / music stems for MTV's three audio streams.

MTV's own demixing (data_process/demix.py) runs the MVSEP-CDX23 cinematic Demucs4 checkpoints
(dialog / effect / music), which are pickled ``demucs`` objects that cannot be read with
``weights_only=True``. No separation weights ship offline, so stems come from the user, or from a
torchaudio Hybrid Demucs state dict (``hdemucs_high_trained.pt``, sources drums/bass/other/vocals)
placed in the MTV models folder: vocals -> speech, drums+bass+other -> music, effects silent
(a music separator has no effects stem; connect an effects stem to fill it).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..common.checkpoint import CheckpointError, load_file, load_strict

EXPECTED_DEMUCS_FILE = "hdemucs_high_trained.pt"
HDEMUCS_SOURCES = ("drums", "bass", "other", "vocals")
HDEMUCS_RATE = 44100
STEMS = ("speech", "effects", "music")


def load_hdemucs(path: str | Path):
    from torchaudio.models import hdemucs_high

    try:
        sd = load_file(path)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{Path(path).name}: not a weights-only Hybrid Demucs state dict ({exc}). Pickled demucs "
            f"'.th' models need converting; expected torchaudio's {EXPECTED_DEMUCS_FILE}."
        ) from exc
    model = hdemucs_high(sources=list(HDEMUCS_SOURCES))
    load_strict(model, sd, context=f"Hybrid Demucs ({Path(path).name})")
    return model.eval()


@torch.no_grad()
def separate(model, wav: torch.Tensor, sample_rate: int, *, segment_s: float = 10.0, overlap_s: float = 1.0):
    """[C, T] mixture -> {source: [C, T]} at the input rate, overlap-added segments with linear fades."""
    import torchaudio.functional as AF

    channels, length = wav.shape
    x = wav if channels == 2 else wav[:1].expand(2, -1)
    if sample_rate != HDEMUCS_RATE:
        x = AF.resample(x, sample_rate, HDEMUCS_RATE)
    ref = x.mean(0)
    mean, std = ref.mean(), ref.std().clamp_min(1e-8)
    x = (x - mean) / std
    seg, hop = int(segment_s * HDEMUCS_RATE), int((segment_s - overlap_s) * HDEMUCS_RATE)
    fade = int(overlap_s * HDEMUCS_RATE)
    n = x.shape[-1]
    out = torch.zeros(len(HDEMUCS_SOURCES), 2, n)
    weight = torch.zeros(n)
    param = next(model.parameters())
    for start in range(0, max(n - fade, 1), hop):
        piece = x[:, start:start + seg]
        got = model(F.pad(piece, (0, seg - piece.shape[-1]))[None].to(param))[0, :, :, : piece.shape[-1]].float().cpu()
        w = torch.ones(piece.shape[-1])
        if start > 0:
            w[:fade] = torch.linspace(0, 1, fade)
        if start + seg < n:
            w[-fade:] = torch.linspace(1, 0, fade)
        out[..., start:start + piece.shape[-1]] += got * w
        weight[start:start + piece.shape[-1]] += w
    out = out / weight.clamp_min(1e-8) * std + mean
    if sample_rate != HDEMUCS_RATE:
        out = AF.resample(out, HDEMUCS_RATE, sample_rate)
    out = out[..., :length]
    if channels == 1:
        out = out.mean(dim=1, keepdim=True)
    return dict(zip(HDEMUCS_SOURCES, out))


def stems_from_sources(sources: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    music = sources["drums"] + sources["bass"] + sources["other"]
    return {"speech": sources["vocals"], "effects": torch.zeros_like(music), "music": music}
