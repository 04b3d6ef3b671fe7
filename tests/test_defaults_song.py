"""AudioGen-Omni's song recipe (song from lyrics and a named tune): the single-file T5 its prompt goes through, and
the recipe at smoke scale on the shipped speech default (the default itself is not shipped yet)."""
import json
import shutil

import pytest
import torch

from helpers import temporary_models_dir

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed: no song clips")


def _speech_default_or_skip():
    from soundstage.training.defaults.cli import _installed

    if _installed("audiogen_omni_speech") is None:
        pytest.skip("the song default stands on the speech default, which is not installed in defaults/")


def test_load_t5_reads_one_file_with_its_tokenizer_beside(tmp_path):
    from soundstage.nodes import audiogen as nodes
    from soundstage.training.defaults.audiogen_omni_song import FILES, every_prompt, make_text_encoder

    with temporary_models_dir(tmp_path / "models", "text_encoders") as root:
        folder = root / "text_encoders" / "mine"
        folder.mkdir(parents=True)
        make_text_encoder(folder, seed=3)
        name = f"mine/{FILES['text_encoder']}"
        assert name in nodes.t5_choices()
        t5 = nodes.LoadT5.execute(name, 8, "fp32")[0]
        text = nodes.MMDiTTextEncode.execute(every_prompt()[0], "", t5=t5)[0]
        other = nodes.MMDiTTextEncode.execute(every_prompt()[1], "", t5=t5)[0]
        (folder / FILES["tokenizer"]).unlink()
        assert name not in nodes.t5_choices()  # a T5 file without its tokenizer is not offered
    assert text["kind"] == "t5" and text["features"].shape == (1, 8, 32) and bool(text["mask"].all())
    # the tune's word reaches the features (the prompts differ in it alone)
    assert not torch.allclose(text["features"], other["features"])


@needs_espeak
def test_song_recipe_trains_and_evaluates_at_smoke_scale(tmp_path):
    _speech_default_or_skip()
    from soundstage.cli import main
    from soundstage.models.audiogen_omni.loader import load_mmdit
    from soundstage.training.defaults import audiogen_omni_song as song

    assert main(["train-defaults", "audiogen_omni_song", "--scale", "smoke", "--out", str(tmp_path / "run")]) == 0
    weights = tmp_path / "run" / "weights"
    net, _ = load_mmdit(weights / song.FILES["mmdit"], dtype=torch.float32)
    _, _, base, _ = song.speech_parts()
    assert net.config == base.config  # fine-tuned from the speech MMDiT: the same layout
    report = json.loads((tmp_path / "run" / "train_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["mmdit"]
    assert main(["eval-defaults", "audiogen_omni_song", "--weights", str(weights), "--scale", "smoke", "--clips", "2",
                 "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval" / "audiogen_omni_song" / "report.json").read_text())
    s = result["summary"]
    from soundstage.training.defaults.song_eval import CONDITIONS

    assert set(s) == set(CONDITIONS)
    assert s["truth"]["song"]["melody_within_mean"] >= 0.9  # the world's own singing is in tune
