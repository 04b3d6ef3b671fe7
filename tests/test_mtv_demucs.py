"""MTV's separator: MVSEP-CDX23-style HTDemucs packages read as data, our HTDemucs against demucs 4.1.0.

demucs is the reference only (tests); tiny HTDemucs configs with random weights are saved the way
``demucs.states.serialize_model`` does (half-precision state) and separated both ways.
"""
from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction

import pytest
import torch

from helpers import temporary_models_dir
from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.mtv.demix import (
    CDX23_ENSEMBLE, CDX23_FILE, apply_htdemucs, load_separator, load_separators, separate_htdemucs, stems_from_sources,
)

SOURCES = ["music", "effect", "dialog"]  # MVSEP-CDX23's output order
RATE = 4000
CONFIGS = {
    # Branches stay apart; dconv in encoder and decoder (HTDemucs' published config uses dconv_mode 3).
    "split_branches": dict(channels=8, depth=2, nfft=256, t_layers=2, t_heads=2, dconv_comp=4, dconv_mode=3,
                           samplerate=RATE, segment=Fraction(1, 1)),
    # Time branch merges into the last frequency layer; bottleneck channels, CAPE, cross-attention first,
    # group norms from layer 1, float segment truncating like demucs' int(segment * samplerate).
    "merged_bottleneck": dict(channels=8, depth=3, nfft=256, t_layers=3, t_heads=2, dconv_comp=4, norm_starts=1,
                              bottom_channels=16, t_emb="cape", t_cross_first=True, samplerate=RATE, segment=1.3),
}


def _reference(config: dict, seed: int = 0):
    demucs_htdemucs = pytest.importorskip("demucs.htdemucs")
    torch.manual_seed(seed)
    model = demucs_htdemucs.HTDemucs(sources=SOURCES, **config)
    with torch.no_grad():  # move every weight off its init so no branch is near-silent
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _save_package(model, path, **overrides):
    """What demucs.states.serialize_model writes (training_args would be OmegaConf.to_container output)."""
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True),
               "training_args": {"dset": {"segment": 11, "sources": SOURCES}, "seed": 42}, **overrides}
    torch.save(package, path)
    model.load_state_dict({k: v.float() for k, v in package["state"].items()})  # compare at the stored precision
    return path


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_separation_matches_demucs_apply_model(name, tmp_path, monkeypatch):
    ref = _reference(CONFIGS[name])
    import demucs.apply

    ours = load_separator(_save_package(ref, tmp_path / "tiny.th"))
    mix = torch.randn(1, 2, int(RATE * 2.3), generator=torch.Generator().manual_seed(1)) * 0.3
    want0 = demucs.apply.apply_model(ref, mix, shifts=0, overlap=0.8)
    got0 = apply_htdemucs(ours, mix, overlap=0.8)
    offset = 777  # the shift demucs draws with random.randint(0, samplerate // 2), pinned here

    class PinnedRandom:
        @staticmethod
        def randint(low, high):
            assert (low, high) == (0, RATE // 2)
            return offset

    monkeypatch.setattr(demucs.apply, "random", PinnedRandom)
    want1 = demucs.apply.apply_model(ref, mix, shifts=1, overlap=0.8)
    got1 = apply_htdemucs(ours, mix, offsets=[offset], overlap=0.8)
    assert got0.shape == want0.shape == (1, 3, 2, mix.shape[-1])
    assert want0.abs().max() > 1e-2 and (want1 - want0).abs().max() > 1e-4  # the shift changes the estimate
    assert (got0 - want0).abs().max() < 2e-6, (got0 - want0).abs().max()  # measured ~5e-8
    assert (got1 - want1).abs().max() < 2e-6, (got1 - want1).abs().max()


def test_strict_load_names_missing_and_unexpected_keys(tmp_path):
    ref = _reference(CONFIGS["split_branches"])
    state = {k: v.half() for k, v in ref.state_dict().items()}
    state.pop("crosstransformer.layers.1.cross_attn.in_proj_weight")
    state["encoder.0.extra.weight"] = torch.zeros(1)
    args, kwargs = ref._init_args_kwargs
    torch.save({"klass": type(ref), "args": args, "kwargs": kwargs, "state": state}, tmp_path / "broken.th")
    with pytest.raises(CheckpointError, match="broken.th") as err:
        load_separator(tmp_path / "broken.th")
    assert "crosstransformer.layers.1.cross_attn.in_proj_weight" in str(err.value)
    assert "encoder.0.extra.weight" in str(err.value)


class _RunsCode:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    torch.save({"klass": _RunsCode(), "args": (), "kwargs": {"sources": SOURCES}, "state": {}}, tmp_path / "evil.th")
    with pytest.raises(CheckpointError, match=r"evil\.th.*builtins\.print"):
        load_separator(tmp_path / "evil.th")
    assert "pickled code ran" not in capsys.readouterr().out
    # A class torch admits anyway is still no HTDemucs.
    torch.save({"klass": OrderedDict, "args": (), "kwargs": {"sources": SOURCES}, "state": {}}, tmp_path / "other.th")
    with pytest.raises(CheckpointError, match=r"other\.th.*only demucs\.htdemucs\.HTDemucs"):
        load_separator(tmp_path / "other.th")


def test_other_demucs_classes_and_quantized_packages_are_refused(tmp_path):
    demucs_hdemucs = pytest.importorskip("demucs.hdemucs")
    torch.save({"klass": demucs_hdemucs.HDemucs, "args": (), "kwargs": {"sources": SOURCES}, "state": {}},
               tmp_path / "v3.th")
    with pytest.raises(CheckpointError, match=r"v3\.th.*demucs\.hdemucs\.HDemucs"):
        load_separator(tmp_path / "v3.th")
    ref = _reference(CONFIGS["split_branches"])
    args, kwargs = ref._init_args_kwargs
    torch.save({"klass": type(ref), "args": args, "kwargs": kwargs, "state": {"__quantized": True}},
               tmp_path / "q.th")
    with pytest.raises(CheckpointError, match=r"q\.th.*DiffQ-quantized"):
        load_separator(tmp_path / "q.th")


def test_ensemble_is_the_mean_of_its_models(tmp_path):
    paths = [_save_package(_reference(CONFIGS["split_branches"], seed=s), tmp_path / f"m{s}.th") for s in (0, 1)]
    models = load_separators(paths)
    wav = torch.randn(2, RATE, generator=torch.Generator().manual_seed(2)) * 0.3
    steps = []
    both = separate_htdemucs(models, wav, RATE, shifts=0, callback=lambda i, n: steps.append((i, n)))
    alone = [separate_htdemucs(models[i:i + 1], wav, RATE, shifts=0) for i in range(2)]
    for source in SOURCES:
        assert torch.allclose(both[source], (alone[0][source] + alone[1][source]) / 2, atol=1e-6)
    # int((1 - 0.8) * 4000) = 799 (float rounding, as in demucs): 6 segment starts in 1 s, per model
    assert steps[-1] == (len(steps), len(steps)) and len(steps) == 2 * 6


def test_cdx23_sources_map_to_mtv_stems():
    s = {name: torch.full((1, 4), float(i)) for i, name in enumerate(SOURCES)}
    stems = stems_from_sources(s)
    assert stems["speech"][0, 0] == 2 and stems["effects"][0, 0] == 1 and stems["music"][0, 0] == 0
    unnamed = stems_from_sources({f"s{i}": v for i, v in enumerate(s.values())})  # MTV's index order
    assert all(torch.equal(unnamed[k], stems[k]) for k in stems)
    with pytest.raises(ValueError, match="cannot tell"):
        stems_from_sources({"a": s["music"], "b": s["music"]})


def test_node_separates_with_a_package_from_the_models_folder(tmp_path):
    from soundstage.nodes.mtv import MTVAudioDemix

    ref = _reference(CONFIGS["split_branches"])
    with temporary_models_dir(tmp_path / "models", "soundstage/mtv") as root:
        folder = root / "soundstage" / "mtv"
        _save_package(ref, folder / CDX23_FILE)
        assert CDX23_FILE in MTVAudioDemix.separator_choices()
        schema = MTVAudioDemix.define_schema()
        assert schema.inputs[0].default == CDX23_FILE
        mixture = {"waveform": torch.randn(1, 1, 12000, generator=torch.Generator().manual_seed(3)) * 0.2,
                   "sample_rate": 12000}
        music = {"waveform": torch.zeros(1, 1, 12000), "sample_rate": 12000}
        speech, effects, given_music = MTVAudioDemix.execute(CDX23_FILE, mixture=mixture, music_stem=music).result
        assert given_music is music
        assert speech["waveform"].shape == (1, 1, 12000) and speech["sample_rate"] == 12000
        direct = separate_htdemucs(load_separators([folder / CDX23_FILE]), mixture["waveform"][0], 12000)
        assert torch.allclose(speech["waveform"][0], direct["dialog"], atol=1e-6)
        assert torch.allclose(effects["waveform"][0], direct["effect"], atol=1e-6)
        assert effects["waveform"].abs().max() > 1e-4
        assert MTVAudioDemix.ENSEMBLE in MTVAudioDemix.separator_choices()
        with pytest.raises(FileNotFoundError, match=CDX23_ENSEMBLE[0]):  # the ensemble needs all three files
            MTVAudioDemix.execute(MTVAudioDemix.ENSEMBLE, mixture=mixture)
        for name in CDX23_ENSEMBLE:
            (folder / name).write_bytes((folder / CDX23_FILE).read_bytes())
        speech3, _, _ = MTVAudioDemix.execute(MTVAudioDemix.ENSEMBLE, mixture=mixture).result
        assert speech3["waveform"].shape == (1, 1, 12000)
        # Same weights, but each copy draws its own shift: the average is close to, not equal to, one run.
        assert 0 < (speech3["waveform"] - speech["waveform"]).abs().max() < speech["waveform"].abs().max()


def test_package_kwargs_unknown_are_dropped_and_unsupported_are_named():
    from soundstage.models.mtv.htdemucs import HTDemucsConfig

    with pytest.warns(UserWarning, match="num_subbands"):  # demucs load_model(strict=False) drops them too
        cfg = HTDemucsConfig.from_kwargs({"sources": SOURCES, "num_subbands": 1, "t_dropout": 0.02})
    assert cfg.channels == 48 and cfg.training_length == 441000
    with pytest.raises(ValueError, match="cac=False.*sparse"):
        HTDemucsConfig.from_kwargs({"sources": SOURCES, "cac": False, "t_sparse_self_attn": True})
