"""JUST-DUB-IT step 1: language-switching clips from the base LTX-2 model (paper 3.2, A.1)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from soundstage.training.just_dub_it.datagen import SwitchTiming, language_switch_prompt
from soundstage.training.just_dub_it.datagen_generate import ClipConfig, SpecError, clip_frames, plan_clips

SPEC = {
    "scenes": [{"scene": "Shot in a rainy alleyway at midnight. Eleanor, a detective.", "speaker": "She",
                "actions": ["Eleanor looks directly at the camera.", "She takes a deep breath.", "She lights a cigarette."]},
               "A chef in a busy kitchen."],
    "lines": [{"fr": "Il est trop tard.", "English": "It is too late."},
              {"Greek": "Καλημέρα σας.", "it": "Buongiorno a voi."},
              {"English": "Never come here after midnight.", "French": "Ne viens jamais ici après minuit."}],
}


def _segments(prompt: str) -> list[tuple[str, str, str]]:
    return re.findall(r"At \[(\d\d:\d\d(?:\.\d)?)–(\d\d:\d\d(?:\.\d)?)\]: (.*?)(?= At \[|$)", prompt)


def test_paper_example_prompt_structure_and_timing():
    plans = plan_clips(SPEC, seconds=10.0, fps=25.0)
    assert [p.name for p in plans] == ["clip0000", "clip0001", "clip0002"] and [p.seed for p in plans] == [0, 1, 2]
    first = plans[0]
    # paper A.1: style, scene, then [00:00–00:04] language A, [00:04–00:06] SILENT PAUSE, [00:06–00:10] language B
    assert first.prompt.startswith("Hyper-realistic 8k, sharp focus, neutral lighting. Shot in a rainy alleyway")
    segs = _segments(first.prompt)
    assert [s[:2] for s in segs] == [("00:00", "00:04"), ("00:04", "00:06"), ("00:06", "00:10")]
    assert segs[0][2] == 'Eleanor looks directly at the camera. She speaks in French, saying: "Il est trop tard."'
    assert segs[1][2] == "SILENT PAUSE. She takes a deep breath."
    assert segs[2][2] == 'She lights a cigarette. She speaks in English, saying: "It is too late."'
    assert first.switch_frame == 125  # 249 frames at 25 fps: the pause spans 3.98-5.98 s, its middle is 4.98 s
    (a, b) = first.halves
    assert (a.language, a.line, a.translation) == ("French", "Il est trop tard.", "It is too late.")
    assert (b.language, b.line, b.translation) == ("English", "It is too late.", "Il est trop tard.")
    # Scenes are taken in turn; ISO codes become the paper's language names; no actions, no speaker: defaults.
    assert plans[1].scene.endswith("A chef in a busy kitchen.") and plans[2].scene == first.scene
    assert 'The speaker speaks in Greek, saying: "Καλημέρα σας."' in plans[1].prompt
    assert "SILENT PAUSE. At [" in plans[1].prompt and plans[1].halves[1].language == "Italian"


@pytest.mark.parametrize("seconds, fps, pause, frames, bounds, switch", [
    (10.0, 24.0, 2.0, 241, ("00:04", "00:06", "00:10"), 121),  # 10.04 s: pause 4.02-6.02 s, middle 120.5 frames
    (5.0, 25.0, 1.0, 129, ("00:02.1", "00:03.1", "00:05.2"), 65),  # 125 is no 8k+1: the tie takes 129 (5.16 s)
    (8.0, 25.0, 0.5, 201, ("00:03.8", "00:04.3", "00:08"), 101),  # 8.04 s: pause 3.77-4.27 s
])
def test_timings_follow_the_clip_length(seconds, fps, pause, frames, bounds, switch):
    assert clip_frames(seconds, fps) == frames and (frames - 1) % 8 == 0  # LTX-2: 8k + 1 frames
    plan = plan_clips({"scenes": ["A room."], "lines": [{"English": "Hi.", "German": "Hallo."}]}, seconds=seconds,
                      fps=fps, pause=pause)[0]
    segs = _segments(plan.prompt)
    assert (segs[0][1], segs[1][1], segs[2][1]) == bounds and segs[0][0] == "00:00" and segs[2][0] == segs[1][1]
    timing = SwitchTiming.for_duration(frames / fps, pause)
    assert timing.pause_end - timing.pause_start == pytest.approx(pause) and timing.end == frames / fps
    assert plan.switch_frame == switch == timing.switch_frame(fps)


def test_frame_rule_and_bad_durations():
    for seconds in (1.0, 2.5, 4.0, 10.3):
        for fps in (24.0, 25.0):
            n = clip_frames(seconds, fps)
            assert (n - 1) % 8 == 0 and abs(n - seconds * fps) <= 4
    with pytest.raises(ValueError, match="fps must be one of"):
        clip_frames(10.0, 30.0)
    with pytest.raises(ValueError, match="too short"):
        clip_frames(0.5, 25.0)
    with pytest.raises(ValueError, match="no room"):
        SwitchTiming.for_duration(3.0, pause=3.0)


@pytest.mark.parametrize("spec, message", [
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "Klingon": "nuqneH"}]}, r"lines\[0\]: unknown language 'Klingon'"),
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "French": " "}]}, r"lines\[0\]: missing line for French"),
    ({"scenes": ["A."], "lines": [{"English": "Hi."}]}, r"lines\[0\]: give the same sentence in two languages"),
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "French": "Salut."}],
      "clips": [{"lines": 0, "languages": ["English", "Greek"]}]}, r"clips\[0\]: missing line: no Greek sentence"),
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "French": "Salut."}], "clips": [{"lines": 3}]},
     r"clips\[0\]: 'lines' must be an index below 1"),
    ({"lines": [{"English": "Hi.", "French": "Salut."}]}, "needs 'scenes' and 'lines'"),
    ({"clips": [{"prompt": "x", "halves": [{"language": "English", "line": "a", "translation": "b"},
                                           {"language": "French", "translation": "a"}]}]},
     r"clips\[0\]\.halves\[1\]: missing 'line'"),
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "French": "Salut."}], "clips": [{"name": "a/b"}]},
     "plain file name"),
    ({"scenes": ["A."], "lines": [{"English": "Hi.", "French": "Salut."}], "clips": [{"lines": 0}, {"lines": 0, "name": "clip0000"}]},
     "must be unique"),
])
def test_spec_errors_name_the_entry(spec, message):
    with pytest.raises(SpecError, match=message):
        plan_clips(spec, seconds=4.0)


def test_explicit_clips_and_verbatim_prompts():
    spec = {**SPEC, "style": "", "clips": [
        {"name": "two_lines", "scene": 0, "lines": [0, 2], "languages": ["French", "English"], "seed": 42},
        {"name": "mine", "prompt": "  A man speaks German, then English.  ", "scene": "A man.", "switch_seconds": 2.0,
         "halves": [{"language": "de", "line": "Hallo.", "translation": "Hello."},
                    {"language": "English", "line": "Hello.", "translation": "Hallo."}]}]}
    two, mine = plan_clips(spec, seconds=4.0, fps=25.0, seed=7)
    assert two.seed == 42 and mine.seed == 8 and two.scene.startswith("Shot in")  # "style": "" drops the preamble
    # Half A says line 0 in French, half B line 2 in English: two sentences, as in the paper's example.
    assert '"Il est trop tard."' in two.prompt and '"Never come here after midnight."' in two.prompt
    assert two.halves[0].translation == "It is too late." and two.halves[1].translation == "Ne viens jamais ici après minuit."
    assert mine.prompt == "A man speaks German, then English." and mine.switch_frame == 50
    assert mine.halves[0].language == "German"
    assert language_switch_prompt("S.", "English", "a", "French", "b").startswith("S. The speaker first says in English")


# ---- the tiny LTX-2 end to end ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_single_file

    root = tmp_path_factory.mktemp("ltx2")
    return write_tiny_single_file(root / "ltx2_tiny.safetensors", seed=5), write_tiny_gemma(root / "gemma")


def _box_lips(frames):
    m = torch.zeros(frames.shape[:3])
    m[:, 40:52, 20:44] = 1
    return m


def test_cli_writes_clips_that_dubbing_data_reads(tiny_files, tmp_path, capsys):
    from soundstage.cli import main
    from soundstage.training.just_dub_it.datagen_folder import build_dataset, load_datagen_models, sidecar_switch_clips
    from soundstage.training.just_dub_it.datagen_pairs import DatagenConfig

    ckpt, gemma = tiny_files
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"scenes": ["A woman talks."], "lines": [
        {"English": "hello world", "French": "bonjour le monde"}, {"Spanish": "hola", "Russian": "привет"}]}))
    clips = tmp_path / "clips"
    args = ["dubbing-clips", "--spec", str(spec), "--ckpt", str(ckpt), "--text-encoder", str(gemma), "--out", str(clips),
            "--seconds", "1.5", "--fps", "24", "--pause", "0.4", "--width", "64", "--height", "64", "--steps", "2",
            "--max-tokens", "16", "--precision", "fp32", "--seed", "3"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["clips"] == 2
    assert sorted(p.name for p in clips.iterdir()) == ["clip0000.mp4", "clip0000.switch.json",
                                                       "clip0001.mp4", "clip0001.switch.json"]
    read = list(sidecar_switch_clips(clips))
    frames = clip_frames(1.5, 24.0)  # 33
    for clip, (a, b) in zip(read, [("English", "French"), ("Spanish", "Russian")]):
        assert clip.frames.shape == (frames, 64, 64, 3) and clip.fps == 24.0
        assert clip.switch_frame == 17  # the pause spans 0.4875-0.8875 s of 1.375 s: its middle, 16.5 frames, rounds up
        assert [h.language for h in clip.halves] == [a, b] and clip.halves[0].translation == clip.halves[1].line
        assert abs(clip.waveform.shape[-1] / clip.sample_rate - frames / 24.0) < 0.03
        assert clip.frames.std() > 0.01 and clip.waveform.abs().max() > 0  # something was generated
    sidecar = json.loads((clips / "clip0001.switch.json").read_text())
    assert sidecar["seed"] == 4 and "SILENT PAUSE" in sidecar["prompt"] and sidecar["frames"] == frames
    assert not torch.equal(read[0].frames, read[1].frames)  # each clip its own seed

    # A second run keeps the written clips (resume) and does not sample again.
    assert main(args) == 0 and capsys.readouterr().out.count("exists, kept") == 2

    # The folder is what `dubbing-data --clips` reads: two pairs per clip (lips boxed: the tiny model draws no face).
    models = load_datagen_models(ckpt, gemma, max_tokens=16)
    pairs = build_dataset(clips, tmp_path / "pairs", models, DatagenConfig(steps=1, cfg=1.0, tau=0.01),
                          lip_mask_fn=_box_lips, limit=1, log=lambda _: None)
    index = json.loads((tmp_path / "pairs" / "index.json").read_text())["pairs"]
    assert len(pairs) == 2 and [p["target_language"] for p in index] == ["English", "French"]
    assert index[0]["frames"][1] <= 17 <= index[1]["frames"][0]  # neither half crosses the switch


def test_generate_clips_reports_steps_and_bad_cli_spec(tiny_files, tmp_path, capsys):
    from soundstage.cli import main
    from soundstage.training.just_dub_it.datagen_folder import load_datagen_models
    from soundstage.training.just_dub_it.datagen_generate import generate_clips

    models = load_datagen_models(*tiny_files, max_tokens=16)
    plans = plan_clips({"scenes": ["A man."], "lines": [{"German": "Hallo", "Italian": "Ciao"}] * 2},
                       seconds=1.0, fps=25.0, pause=0.2)
    calls = []
    written = generate_clips(models, plans, tmp_path, ClipConfig(seconds=1.0, width=64, height=64, steps=2, cfg=1.0,
                                                                 pause=0.2),
                             limit=1, callback=lambda i, n: calls.append((i, n)), log=lambda _: None)
    assert [p.name for p in written] == ["clip0000.mp4"] and calls == [(1, 2), (2, 2)]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scenes": ["A."], "lines": [{"English": "Hi.", "Elvish": "Mae govannen"}]}))
    assert main(["dubbing-clips", "--spec", str(bad), "--out", str(tmp_path), "--dry-run"]) == 1
    assert "unknown language 'Elvish'" in capsys.readouterr().err
