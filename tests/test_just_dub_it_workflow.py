"""dub_video on JUST-DUB-IT's tiny default: the sample clip `synth --samples` writes for it, and the workflow run
headless from a fresh clone with an empty models folder (skipped, with the reason, while the default's files are
not installed in defaults/)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import video_and_audio

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng not installed (the world's talking clips need it)")


def shipped_widgets() -> dict[str, list]:
    """What dub_video.json's widgets become when the default ships (node type -> its leading widget values):
    the sample clip, the default's three files, its size, length and prompt length, and the Dubbing Sampler
    dubbing the sample into French with the evaluation's sampling."""
    from soundstage.synthworld.samples import DUB_INPUT, dub_sample_clip
    from soundstage.training.defaults.just_dub_it import FILES, PREFIX, SCALES
    from soundstage.training.defaults.just_dub_it_data import DUB_SCALES, LORA_FILE
    from soundstage.training.defaults.just_dub_it_eval import dub_prompt

    full, dub = SCALES["full"], DUB_SCALES["full"]
    return {
        "LoadVideo": [DUB_INPUT],
        "SoundstageLoadLTX2AVModel": [f"{PREFIX}/{FILES['model']}", "default", "default", "none", 0],
        "SoundstageDubbingLoraLoader": [f"{PREFIX}/{LORA_FILE}", 1.0],
        "SoundstageLoadLTX2TextEncoder": [f"{PREFIX}/{FILES['text_encoder']}", "default", full.max_tokens, "default"],
        "SoundstageEncodeDubbingContext": [full.size, full.size, full.frames, 29, "segments"],
        "SoundstageDubbingSampler": [dub_prompt(dub_sample_clip(), "fr"), "", dub.dub_steps, dub.dub_cfg],
    }


@needs_espeak
def test_the_dub_sample_is_a_held_out_english_clip_as_the_default_was_trained(tmp_path):
    from soundstage.synthworld.samples import (DUB_FPS, DUB_FRAMES, DUB_INPUT, DUB_SAMPLE, DUB_SIZE, dub_sample_clip,
                                               write_workflow_samples)
    from soundstage.training.defaults.just_dub_it import FPS, SCALES

    full = SCALES["full"]
    assert (DUB_FRAMES, DUB_SIZE, DUB_FPS) == (full.frames, full.size, FPS)
    write_workflow_samples(tmp_path)
    frames, wave, rate = video_and_audio(tmp_path / DUB_INPUT)
    clip, french = dub_sample_clip(), dub_sample_clip("fr")
    assert frames.shape == (DUB_FRAMES, DUB_SIZE, DUB_SIZE, 3) and abs(len(wave) / rate - DUB_FRAMES / DUB_FPS) < 0.05
    assert clip.truth["language"] == "en" and clip.spec.seed == 1_000_000 + DUB_SAMPLE  # held out
    assert french.truth["impacts"] == clip.truth["impacts"]  # the French ground truth: the same scene
    prompt = shipped_widgets()["SoundstageDubbingSampler"][0]
    assert f'in French: "{french.truth["transcript"]}"' in prompt


@needs_espeak
def test_dub_video_runs_as_shipped_from_a_fresh_clone(tmp_path):
    from soundstage import defaults as pack_defaults
    from soundstage.headless.runner import Runner
    from soundstage.synthworld.samples import DUB_FRAMES, DUB_FPS, dub_sample_clip, write_workflow_samples
    from soundstage.training.defaults.just_dub_it import FILES
    from soundstage.training.defaults.just_dub_it_data import LORA_FILE
    from soundstage.training.defaults.just_dub_it_eval import face_mask, psnr_outside

    wanted = [pack_defaults.file_path(folder, "just_dub_it", name) for folder, name in
              (("soundstage_ltx2", FILES["model"]), ("text_encoders", FILES["text_encoder"]), ("loras", LORA_FILE))]
    missing = [str(p.relative_to(pack_defaults.DEFAULTS_DIR)) for p in wanted if not p.is_file()]
    if missing:
        pytest.skip(f"the JUST-DUB-IT tiny default is not installed (defaults/ lacks {', '.join(missing)}: "
                    "train-defaults just_dub_it --install); dub_video.json names the released LTX-2 files until then")
    workflow = pack_defaults.DEFAULTS_DIR.parent / "workflows" / "dub_video.json"
    nodes = {n["type"]: n["widgets_values"] for n in json.loads(workflow.read_text())["nodes"]}
    for kind, values in shipped_widgets().items():
        assert nodes[kind][: len(values)] == values, kind
    inp, out, models = tmp_path / "input", tmp_path / "output", tmp_path / "models"
    write_workflow_samples(inp)
    models.mkdir()  # a fresh clone: no model files of the user's own
    Runner(input_dir=inp, output_dir=out, models_dir=models).run(workflow)
    (path,) = sorted(out.rglob("*.mp4"))
    frames, wave, rate = video_and_audio(path)
    source = dub_sample_clip()
    assert frames.shape == source.frames.shape and abs(len(wave) / rate - DUB_FRAMES / DUB_FPS) < 0.05
    assert np.sqrt(np.mean(wave ** 2)) > 1e-3  # it says something
    # loose (the card has the held-out numbers): the room and the balls are the source's, through the VAE
    assert psnr_outside(frames, source.frames, face_mask(source.frames)) > 15


@pytest.fixture(scope="module")
def smoke_default(tmp_path_factory):
    """A smoke base (stages 1-5) and its LoRA (stages 6-8), the recipe's work folder."""
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.skip("espeak-ng not installed (the world's talking clips need it)")
    from soundstage.training.defaults import just_dub_it as jdi
    from soundstage.training.defaults.just_dub_it_data import dub_scale, train_dubbing
    from soundstage.training.defaults.stages import work_folder

    sc = jdi.SCALES["smoke"]
    out = work_folder(str(tmp_path_factory.mktemp("jdi") / "work"), sc, 0)
    stages = []
    jdi.train_base(sc, out, 0, stages)
    train_dubbing(out, dub_scale("smoke", sc), 0, stages, out / "weights", jdi.FILES)
    return out, stages


def test_smoke_default_has_every_stage_and_eval_defaults_scores_it(smoke_default, tmp_path):
    from soundstage.training.defaults import just_dub_it as jdi
    from soundstage.training.defaults.just_dub_it_eval import CONDITIONS, ci_check, evaluate_just_dub_it

    out, stages = smoke_default
    assert [s["stage"] for s in stages][-3:] == ["switch_clips", "pairs", "dubbing_lora"]
    assert stages[-2]["key"]["base"] == stages[-4]["key"]  # the pairs depend on the DiT stage's key
    result = evaluate_just_dub_it(jdi.RECIPE, out / "weights", tmp_path, "smoke", clips=2, seed=0)
    assert set(result["summary"]) == set(CONDITIONS) and result["frames"] == jdi.SCALES["smoke"].frames
    assert all(r[c]["non_finite"] == 0 for r in result["per_clip"] for c in CONDITIONS)  # no NaN from the LoRA
    assert isinstance(ci_check(result["summary"]), list)


def test_shipped_just_dub_it_default_meets_loose_targets_on_the_ci_clips(tmp_path):
    # CI's check of what the pack ships: the two ci clips dubbed into French and German, loose targets
    from soundstage.synthworld.splits import SEED_RANGES
    from soundstage.training.defaults import recipe
    from soundstage.training.defaults.cli import installed_weights
    from soundstage.training.defaults.just_dub_it_eval import ci_check

    with installed_weights("just_dub_it") as weights:
        if weights is None:
            pytest.skip("the JUST-DUB-IT tiny default is not shipped in defaults/ yet (train-defaults just_dub_it "
                        "--install)")
        card = json.loads(pack_defaults_card("just_dub_it").read_text())
        result = recipe("just_dub_it").evaluate(str(weights), str(tmp_path), scale=card["train"]["scale"],
                                                clips=len(SEED_RANGES["ci"]), seed=0)
    assert not ci_check(result["summary"]), (ci_check(result["summary"]), result["summary"]["default"])


def pack_defaults_card(system: str):
    from soundstage import defaults as pack_defaults

    return pack_defaults.card_path(system).with_suffix(".json")


def test_dub_video_runs_on_a_smoke_default_through_the_nodes(smoke_default, tmp_path, monkeypatch):
    """The shipped layout end to end now: the smoke default installed as ``soundstage-tiny/just_dub_it/*`` in a
    temporary defaults folder, and dub_video with the shipped widgets at the smoke scale's sizes, from an empty
    models folder."""
    from helpers import temporary_models_dir

    from soundstage import defaults as pack_defaults
    from soundstage.headless.runner import Runner
    from soundstage.synthworld.samples import dub_sample_clip, write_workflow_samples
    from soundstage.training.defaults import just_dub_it as jdi
    from soundstage.training.defaults.just_dub_it_data import LORA_FILE

    out, _ = smoke_default
    sc = jdi.SCALES["smoke"]
    root = tmp_path / "defaults"
    monkeypatch.setattr(pack_defaults, "DEFAULTS_DIR", root)
    for folder, name in (("soundstage_ltx2", jdi.FILES["model"]), ("text_encoders", jdi.FILES["text_encoder"]),
                         ("loras", LORA_FILE)):
        dest = pack_defaults.file_path(folder, "just_dub_it", name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "weights" / name, dest)
    graph = json.loads((Path(__file__).resolve().parents[1] / "workflows" / "dub_video.json").read_text())
    widgets = shipped_widgets()
    widgets["SoundstageLoadLTX2TextEncoder"][2] = sc.max_tokens
    widgets["SoundstageEncodeDubbingContext"][2] = sc.frames
    widgets["SoundstageDubbingSampler"][2] = 2  # steps: the smoke base is noise anyway
    for node in graph["nodes"]:
        if node["type"] in widgets:
            node["widgets_values"][: len(widgets[node["type"]])] = widgets[node["type"]]
    workflow = tmp_path / "dub_video_tiny.json"
    workflow.write_text(json.dumps(graph))
    inp, res = tmp_path / "input", tmp_path / "output"
    write_workflow_samples(inp)
    with temporary_models_dir(tmp_path / "models"):
        Runner(input_dir=inp, output_dir=res, models_dir=tmp_path / "models").run(workflow)
    (path,) = sorted(res.rglob("*.mp4"))
    frames, wave, rate = video_and_audio(path)
    # the smoke base dubs 9-frame windows: the sample's every frame, in speech segments (long_clips = segments)
    source = dub_sample_clip()
    assert frames.shape == source.frames.shape and abs(len(wave) / rate - len(source.frames) / jdi.FPS) < 0.05
