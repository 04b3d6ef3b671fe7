"""Mel refinement of a vocoder's waveform (models/common/codecs/mel_refine.py): on MMAudio's framing, a waveform
whose mel is the target stays put, a waveform with the wrong band energies is pulled onto the mel, and the Vocoder
node does it when asked."""
from __future__ import annotations

import math

import pytest
import torch

from soundstage.models.common.codecs.mel import MEL_16K, MEL_44K, LogMel
from soundstage.models.common.codecs.mel_refine import refine_to_mel


def _voiced(seconds: float, rate: int, seed: int) -> torch.Tensor:
    """Speech-like test signal: a gliding harmonic voice with pauses and a noise burst, [1, T] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    f0 = 120 + 60 * torch.sin(2 * math.pi * 1.3 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    voice = sum(torch.sin(k * phase) / k for k in range(1, 12))
    gate = ((t % 0.5) < 0.32).float()  # syllables and pauses
    noise = 0.3 * torch.randn(t.shape, generator=g) * ((t > 0.6) & (t < 0.7)).float()
    return (0.25 * voice * gate + noise)[None].clamp(-1, 1)


def _pauses(n: int, rate: int) -> torch.Tensor:
    t = torch.arange(n) / rate
    return ((t % 0.5) > 0.36) & ((t % 0.5) < 0.48) & ((t < 0.6) | (t > 0.75))


def _tilted(wave: torch.Tensor) -> torch.Tensor:
    """The same wave with wrong band energies, as a small vocoder draws them: a bright tilt and a steady floor
    40 dB down that fills the pauses."""
    floor = 0.01 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(5))
    return torch.nn.functional.pad(wave[..., 1:] - 0.2 * wave[..., :-1], (1, 0)) * 1.6 + floor


def _mel_error(wave: torch.Tensor, target: torch.Tensor, config) -> float:
    return float((LogMel(config)(wave) - target).abs().mean())


@pytest.mark.parametrize("config", [MEL_16K, MEL_44K], ids=["16k", "44k"])
def test_a_waveform_already_on_its_mel_stays_put(config):
    wave = _voiced(1.0, config.sample_rate, 0)
    wave = wave[..., : wave.shape[-1] // config.hop_length * config.hop_length]
    target = LogMel(config)(wave)
    out = refine_to_mel(wave[:, None], target, config, 4)[:, 0]
    # Misaligned frames would rescale every band and move the wave by far more than this.
    assert float((out - wave).abs().max()) < 0.05 * float(wave.abs().max())
    assert _mel_error(out, target, config) < 0.02


def test_wrong_band_energies_are_pulled_onto_the_mel():
    wave = _voiced(1.5, 16000, 1)[..., : 23 * 1024]
    target = LogMel(MEL_16K)(wave)
    off = _tilted(wave)
    before = _mel_error(off, target, MEL_16K)
    refined = {n: refine_to_mel(off, target, MEL_16K, n) for n in (1, 4, 16)}
    errors = [_mel_error(w, target, MEL_16K) for w in refined.values()]
    assert before > 1.0
    assert errors[0] < 0.3 * before and errors[2] < errors[1] < errors[0] < 0.5
    pause = _pauses(wave.shape[-1], 16000)
    rms = lambda w: float(w[..., pause].pow(2).mean().sqrt())
    assert rms(off) > 0.009 and rms(refined[4]) < 0.1 * rms(off)  # the floor in the pauses goes


def test_shapes_batches_and_zero_steps():
    a, b = _voiced(1.0, 16000, 2)[..., :15360], _voiced(1.0, 16000, 3)[..., :15360]
    waves = torch.cat([_tilted(a), _tilted(b)])  # [2, T]
    mels = LogMel(MEL_16K)(torch.cat([a, b]))
    assert refine_to_mel(waves, mels, MEL_16K, 0) is waves
    both = refine_to_mel(waves[:, None], mels, MEL_16K, 3)
    assert both.shape == (2, 1, 15360) and both.dtype == waves.dtype
    alone = refine_to_mel(waves[1:], mels[1:], MEL_16K, 3)
    assert torch.allclose(both[1, 0], alone[0], atol=1e-5)  # items do not mix
    with pytest.raises(ValueError, match=r"mel must be \[2, 80, frames\]"):
        refine_to_mel(waves, mels[:, :40], MEL_16K, 2)
    one_frame = waves[:, :256]  # a one-frame mel's waveform is shorter than the front end's padding
    assert refine_to_mel(one_frame, mels[..., :1], MEL_16K, 3) is one_frame


def test_vocoder_node_refines_when_asked(tmp_path):
    from soundstage.nodes import audio_codecs as nodes
    from helpers import bigvgan_generator_state_dict, temporary_models_dir

    with temporary_models_dir(tmp_path / "models", "soundstage/mmaudio") as root:
        torch.save({"generator": bigvgan_generator_state_dict(seed=1)}, root / "soundstage" / "mmaudio" / "voc.pt")
        voc = nodes.LoadVocoder.execute("voc.pt", "fp32")[0]
        audio = {"waveform": _voiced(0.5, 16000, 4)[None], "sample_rate": 16000}
        mel = nodes.AudioToMel.execute(audio, next(iter(nodes.FRONT_ENDS)))[0]
        plain = nodes.VocoderDecode.execute(voc, mel)[0]["waveform"]
        assert torch.equal(nodes.VocoderDecode.execute(voc, mel, 0)[0]["waveform"], plain)
        refined = nodes.VocoderDecode.execute(voc, mel, 8)[0]["waveform"]
    assert refined.shape == plain.shape == (1, 1, 8000)
    # the untrained vocoder's noise, pulled onto the voice's mel
    target = mel["mel"][..., : 8000 // 256]
    n = target.shape[-1] * 256
    assert _mel_error(refined[0, :, :n], target, MEL_16K) < 0.5 * _mel_error(plain[0, :, :n], target, MEL_16K)
    spec = {i.id: i for i in nodes.VocoderDecode.GET_SCHEMA().inputs}["refine_steps"]
    assert spec.optional and spec.default == 0
