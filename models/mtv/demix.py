"""Speech / effects / music stems for MTV's three audio streams.

MTV's data pipeline (data_process/demix.py) separates each soundtrack with the MVSEP-CDX23
cinematic Demucs4 checkpoints: ``97d170e1-dbb4db15.th`` alone, or the three-checkpoint ensemble
(``--high_quality``) whose outputs are averaged, each run as ``demucs.apply.apply_model(model, mix,
shifts=1, overlap=0.8)`` on the raw 44.1 kHz stereo mixture (no extra normalisation; HTDemucs
standardises internally). Those ``.th`` packages are read as data (demucs_package.py) into our own
HTDemucs (htdemucs.py); :func:`apply_htdemucs` is demucs' ``apply_model`` with the random shift made
reproducible. A torchaudio Hybrid Demucs state dict (``hdemucs_high_trained.pt``, a music separator:
vocals -> speech, drums+bass+other -> music, no effects stem) still works as a fallback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..common.checkpoint import CheckpointError, flatten_tensors, load_file, load_strict
from .demucs_package import is_package, package_from, read_checkpoint
from .htdemucs import HTDemucs, build_htdemucs

CDX23_FILE = "97d170e1-dbb4db15.th"  # MTV's default separator
CDX23_ENSEMBLE = ("97d170e1-a778de4a.th", "97d170e1-dbb4db15.th", "97d170e1-e41a5468.th")  # --high_quality
CDX23_ORDER = ("music", "effects", "speech")  # MTV reads output 0 = music, 1 = effect, 2 = dialog
EXPECTED_DEMUCS_FILE = "hdemucs_high_trained.pt"
HDEMUCS_SOURCES = ("drums", "bass", "other", "vocals")
HDEMUCS_RATE = 44100
STEMS = ("speech", "effects", "music")
STEM_ALIASES = {
    "speech": ("dialog", "dialogue", "speech", "vocals", "voice"),
    "effects": ("effect", "effects", "sfx"),
    "music": ("music", "drums", "bass", "other", "instrumental"),
}

Callback = Callable[[int, int], None] | None


# ---- loading ---------------------------------------------------------------------------------------
def load_separator(path: str | Path) -> nn.Module:
    """An HTDemucs package (``.th``) or a torchaudio Hybrid Demucs state dict, in eval mode, float32."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _hdemucs_from(load_file(path), path.name)
    obj = read_checkpoint(path)
    if is_package(obj):
        package = package_from(obj, path.name)
        context = f"HTDemucs package {path.name}"
        try:
            model = build_htdemucs(package.kwargs, context=context)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{context}: {exc}") from exc
        load_strict(model, package.state, context=context, dtype=torch.float32)
        return model.eval()
    return _hdemucs_from(flatten_tensors(obj), path.name)


def _hdemucs_from(sd: dict, name: str):
    from torchaudio.models import hdemucs_high

    model = hdemucs_high(sources=list(HDEMUCS_SOURCES))
    load_strict(model, sd, context=f"Hybrid Demucs ({name}; expected {CDX23_FILE} or {EXPECTED_DEMUCS_FILE})")
    return model.eval()


def load_separators(paths: Sequence[str | Path]) -> nn.ModuleList:
    """One model, or an ensemble whose estimates are averaged (all HTDemucs with the same sources)."""
    models = nn.ModuleList(load_separator(p) for p in paths)
    if len(models) > 1:
        names = [Path(p).name for p in paths]
        if not all(isinstance(m, HTDemucs) for m in models):
            raise CheckpointError(f"separator ensemble {names}: only HTDemucs packages can be averaged")
        first = models[0]
        for name, m in zip(names, models):
            if (m.sources, m.samplerate, m.audio_channels) != (first.sources, first.samplerate, first.audio_channels):
                raise CheckpointError(
                    f"separator ensemble: {name} separates {m.sources} at {m.samplerate} Hz, "
                    f"{names[0]} {first.sources} at {first.samplerate} Hz; they cannot be averaged"
                )
    return models


# ---- demucs apply_model, reproducible -------------------------------------------------------------
def _window(base: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``base[..., start:start+length]`` with zeros where the window leaves the signal."""
    end = start + length
    lo, hi = max(start, 0), min(end, base.shape[-1])
    return F.pad(base[..., lo:hi], (lo - start, end - hi))


def _triangle(length: int) -> torch.Tensor:
    """Overlap-add weights peaking mid-segment (demucs apply_model, transition_power 1)."""
    w = torch.cat([torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)])
    return w / w.max()


def _chunk_starts(model: HTDemucs, length: int, overlap: float) -> range:
    segment = model.training_length
    return range(0, length, int((1 - overlap) * segment))


def _split_pass(model: HTDemucs, base: torch.Tensor, begin: int, length: int, overlap: float, step) -> torch.Tensor:
    """Segments of ``base[..., begin:begin+length]``; a short last segment is centred in real context
    read from ``base`` (demucs TensorChunk.padded), and outputs are cross-faded with triangles."""
    segment = model.training_length
    weight = _triangle(segment)
    out = torch.zeros(base.shape[0], len(model.sources), base.shape[1], length)
    total = torch.zeros(length)
    param = next(model.parameters())
    for start in _chunk_starts(model, length, overlap):
        n = min(length - start, segment)
        run = model.valid_length(n)
        x = _window(base, begin + start - (run - n) // 2, run)
        y = model(x.to(param)).float().cpu()
        trim = (y.shape[-1] - n) // 2
        out[..., start:start + n] += weight[:n] * y[..., trim:trim + n]
        total[start:start + n] += weight[:n]
        step()
    return out / total


def shift_offsets(model: HTDemucs, shifts: int, generator: torch.Generator) -> list[int]:
    """The "shift trick" offsets, uniform in [0, 0.5 s] like demucs' ``random.randint`` but seeded."""
    max_shift = int(0.5 * model.samplerate)
    return torch.randint(0, max_shift + 1, (shifts,), generator=generator).tolist()


def count_segments(model: HTDemucs, length: int, overlap: float, offsets: Sequence[int]) -> int:
    if not offsets:
        return len(_chunk_starts(model, length, overlap))
    max_shift = int(0.5 * model.samplerate)
    return sum(len(_chunk_starts(model, length + max_shift - o, overlap)) for o in offsets)


@torch.no_grad()
def apply_htdemucs(model: HTDemucs, mix: torch.Tensor, *, offsets: Sequence[int] = (), overlap: float = 0.8,
                   step=lambda: None) -> torch.Tensor:
    """[B, C, T] -> [B, sources, C, T]: ``demucs.apply.apply_model(model, mix, shifts=len(offsets),
    overlap=overlap)`` where ``offsets`` are the shifts demucs would draw at random."""
    length = mix.shape[-1]
    if not offsets:
        return _split_pass(model, mix, 0, length, overlap, step)
    max_shift = int(0.5 * model.samplerate)
    padded = F.pad(mix, (max_shift, max_shift))
    out = 0.0
    for offset in offsets:
        # Shifted by `offset` into half a second of leading silence; the opposite shift undoes it.
        res = _split_pass(model, padded, offset, length + max_shift - offset, overlap, step)
        out = out + res[..., max_shift - offset:]
    return out / len(offsets)


# ---- separation -----------------------------------------------------------------------------------
def _to_model_input(wav: torch.Tensor, sample_rate: int, rate: int) -> torch.Tensor:
    import torchaudio.functional as AF

    x = wav if wav.shape[0] == 2 else wav[:1].expand(2, -1)  # MTV duplicates mono into stereo
    return AF.resample(x, sample_rate, rate) if sample_rate != rate else x


def _from_model_output(out: torch.Tensor, sample_rate: int, rate: int, length: int, channels: int) -> torch.Tensor:
    import torchaudio.functional as AF

    if sample_rate != rate:
        out = AF.resample(out, rate, sample_rate)
    out = out[..., :length]
    return out.mean(dim=1, keepdim=True) if channels == 1 else out


@torch.no_grad()
def separate_htdemucs(models: Sequence[HTDemucs], wav: torch.Tensor, sample_rate: int, *, shifts: int = 1,
                      overlap: float = 0.8, seed: int = 0, callback: Callback = None) -> dict[str, torch.Tensor]:
    """[C, T] mixture -> {source: [C, T]} at the input rate, averaged over ``models`` (MTV's ensemble)."""
    first = models[0]
    x = _to_model_input(wav.float(), sample_rate, first.samplerate)[None]
    generator = torch.Generator().manual_seed(seed)
    offsets = [shift_offsets(m, shifts, generator) for m in models]
    total = sum(count_segments(m, x.shape[-1], overlap, o) for m, o in zip(models, offsets))
    done = 0

    def step():
        nonlocal done
        done += 1
        if callback is not None:
            callback(done, total)

    out = sum(apply_htdemucs(m, x, offsets=o, overlap=overlap, step=step) for m, o in zip(models, offsets))
    out = _from_model_output(out[0] / len(models), sample_rate, first.samplerate, wav.shape[-1], wav.shape[0])
    return dict(zip(first.sources, out))


@torch.no_grad()
def separate(model, wav: torch.Tensor, sample_rate: int, *, segment_s: float = 10.0, overlap_s: float = 1.0,
             callback: Callback = None):
    """torchaudio Hybrid Demucs: [C, T] mixture -> {source: [C, T]} at the input rate, overlap-added
    segments with linear fades, normalised by the mixture like demucs/separate.py."""
    length, channels = wav.shape[-1], wav.shape[0]
    x = _to_model_input(wav, sample_rate, HDEMUCS_RATE)
    ref = x.mean(0)
    mean, std = ref.mean(), ref.std().clamp_min(1e-8)
    x = (x - mean) / std
    seg, hop = int(segment_s * HDEMUCS_RATE), int((segment_s - overlap_s) * HDEMUCS_RATE)
    fade = int(overlap_s * HDEMUCS_RATE)
    n = x.shape[-1]
    out = torch.zeros(len(HDEMUCS_SOURCES), 2, n)
    weight = torch.zeros(n)
    param = next(model.parameters())
    starts = range(0, max(n - fade, 1), hop)
    for i, start in enumerate(starts):
        piece = x[:, start:start + seg]
        got = model(F.pad(piece, (0, seg - piece.shape[-1]))[None].to(param))[0, :, :, : piece.shape[-1]].float().cpu()
        w = torch.ones(piece.shape[-1])
        if start > 0:
            w[:fade] = torch.linspace(0, 1, fade)
        if start + seg < n:
            w[-fade:] = torch.linspace(1, 0, fade)
        out[..., start:start + piece.shape[-1]] += got * w
        weight[start:start + piece.shape[-1]] += w
        if callback is not None:
            callback(i + 1, len(starts))
    out = out / weight.clamp_min(1e-8) * std + mean
    return dict(zip(HDEMUCS_SOURCES, _from_model_output(out, sample_rate, HDEMUCS_RATE, length, channels)))


def separate_any(models: Sequence[nn.Module], wav: torch.Tensor, sample_rate: int, *, seed: int = 0,
                 callback: Callback = None) -> dict[str, torch.Tensor]:
    """MTV's settings (shifts=1, overlap=0.8) for HTDemucs; the torchaudio model's own segmentation otherwise."""
    if isinstance(models[0], HTDemucs):
        return separate_htdemucs(list(models), wav, sample_rate, shifts=1, overlap=0.8, seed=seed, callback=callback)
    return separate(models[0], wav, sample_rate, callback=callback)


def _stem_of(source: str) -> str | None:
    return next((stem for stem, names in STEM_ALIASES.items() if source.lower() in names), None)


def stems_from_sources(sources: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separator sources -> speech / effects / music by name; a stem no source feeds is silent."""
    names = list(sources)
    stem_of = {n: _stem_of(n) for n in names}
    if None in stem_of.values():
        if len(names) != len(CDX23_ORDER):
            raise ValueError(f"separator sources {names}: cannot tell which are speech, effects and music")
        stem_of = dict(zip(names, CDX23_ORDER))  # unnamed 3-stem packages follow MTV's index order
    ref = next(iter(sources.values()))
    out = {}
    for stem in STEMS:
        parts = [sources[n] for n in names if stem_of[n] == stem]
        out[stem] = sum(parts[1:], parts[0]) if parts else torch.zeros_like(ref)
    return out
