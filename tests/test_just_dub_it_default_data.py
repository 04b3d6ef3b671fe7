"""JUST-DUB-IT tiny default, stages 6-8 and its evaluation: the world's language-switch clips (read by dubbing-data
as they are), the pairs and the LoRA made from a tiny random LTX-2 base with resumption by key, and the
held-out dubbing evaluation's metrics on the world's own clips."""
import hashlib
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng not installed (the world's talking clips need it)")


def _digest(clip) -> str:
    h = hashlib.sha256(clip.frames.tobytes())
    for stem in ("speech", "effects", "music"):
        h.update(np.ascontiguousarray(clip.stems[stem]).tobytes())
    return h.hexdigest()[:16]


@needs_espeak
@pytest.mark.parametrize("kwargs, digest", [
    # recorded from the world before switch clips existed: the plain clips must stay byte for byte the same
    (dict(split="heldout", index=2, seconds=3.0, size=64), "fdb26eb3681b8dc4"),
    (dict(split="train", index=5, language="fr", seconds=2.0, size=32, speech_timing="varied"), "5a1f245e3d3eb2ce"),
    (dict(split="heldout", index=1, task="v2a", seconds=2.0, size=32), "ddbfe06ecef4090b"),
])
def test_default_clips_are_unchanged(kwargs, digest):
    from soundstage.synthworld import generate_clip
    from soundstage.synthworld.splits import clip_spec

    assert _digest(generate_clip(clip_spec(**kwargs))) == digest


@needs_espeak
def test_switch_clip_says_the_line_in_a_then_after_the_pause_in_b():
    from soundstage.synthworld import generate_clip
    from soundstage.synthworld.splits import clip_spec
    from soundstage.synthworld.switch import PAUSE_S, switch_clip

    sw = switch_clip("heldout", 3, ("en", "de"), seconds=None, size=64)
    clip, n = sw.clip, len(sw.clip.frames)
    assert (n - 1) % 8 == 0 and clip.truth["words"][-1][2] <= n / clip.spec.fps  # 8k+1 frames, every word inside
    words = clip.truth["words"]
    na = len(sw.lines[0].split())
    assert [w for w, _, _ in words] == sw.lines[0].split() + sw.lines[1].split()
    assert sw.pause == pytest.approx((words[na - 1][2], words[na][1]), abs=1e-4) and sw.pause[1] - sw.pause[0] == pytest.approx(PAUSE_S, abs=1e-4)
    assert sw.pause[0] * 25 < sw.switch_frame < sw.pause[1] * 25
    # the first language is the plain clip's speech (to the sample: the fixed rhythm's word times count 0.07 s
    # a gap, its wave 1543 samples), the scene is the plain clip's scene
    plain = generate_clip(clip_spec("heldout", 3, language="en", seconds=n / 25, size=64))
    assert [w for w, _, _ in plain.truth["words"]] == [w for w, _, _ in words[:na]]
    assert np.allclose([t for _, *ts in plain.truth["words"] for t in ts], [t for _, *ts in words[:na] for t in ts],
                       atol=1e-3)
    assert plain.truth["impacts"] == clip.truth["impacts"]
    before = int(sw.pause[0] * 25) - 1
    assert np.corrcoef(plain.truth["mouth_openness"][:before], clip.truth["mouth_openness"][:before])[0, 1] > 0.99
    assert np.array_equal(plain.stems["effects"], clip.stems["effects"])
    # ... and the second is the German clip's sentence: the dubbing pair's line
    assert sw.lines[1] == generate_clip(clip_spec("heldout", 3, language="de", seconds=1.0, size=32)).truth["transcript"]
    with pytest.raises(ValueError, match="need"):
        switch_clip("heldout", 3, ("en", "de"), seconds=2.0, size=32)


@needs_espeak
def test_switch_clip_in_halves_of_the_base_models_length():
    from soundstage.synthworld import generate_clip
    from soundstage.synthworld.splits import clip_spec
    from soundstage.synthworld.switch import PAUSE_S, switch_clip

    sw = switch_clip("train", 2, ("fr", "en"), half_frames=49, size=64)
    clip = sw.clip
    assert len(clip.frames) == 105 and sw.switch_frame == 49  # two 49-frame halves and the 7 frames to 8k + 1
    said = clip.truth["switch"]["said"]
    words = clip.truth["words"]
    assert [w for w, _, _ in words] == said[0] + said[1] and sw.pause[1] - sw.pause[0] >= PAUSE_S
    assert said[0] == sw.lines[0].split()[: len(said[0])] and said[1] == sw.lines[1].split()[: len(said[1])]
    # the second half speaks as the plain English clip does in its first 49 frames: from 0.3 s, same rhythm
    plain = generate_clip(clip_spec("train", 2, language="en", seconds=49 / 25, size=64))
    second = [(w, a - 49 / 25, b - 49 / 25) for w, a, b in words[len(said[0]):]]
    for (w, a, b), (pw, pa, pb) in zip(second, plain.truth["words"]):
        assert w == pw and a == pytest.approx(pa, abs=2e-3) and b == pytest.approx(pb, abs=2e-3)
    assert words[len(said[0]) - 1][2] <= 49 / 25  # the first language ends inside its half
    with pytest.raises(ValueError, match="8k"):
        switch_clip("train", 2, ("fr", "en"), half_frames=48, size=64)


@needs_espeak
def test_switch_folder_is_what_dubbing_data_reads_and_the_spec_what_dubbing_clips_reads(tmp_path):
    from soundstage.training.just_dub_it.datagen_folder import sidecar_switch_clips
    from soundstage.training.just_dub_it.datagen_generate import plan_clips
    from soundstage.synthworld.switch import LANGUAGE_ORDERS, switch_spec, write_switch_clips

    from soundstage.cli import main

    assert main(["synth", "--switch", "49", "--n", "2", "--size", "32", "--out", str(tmp_path)]) == 0
    written = write_switch_clips(tmp_path, "train", 2, half_frames=49, size=32)  # the same clips: kept
    assert [p.name for p in written] == ["train00000.mp4", "train00001.mp4"]
    clips = list(sidecar_switch_clips(tmp_path))
    sidecar = json.loads((tmp_path / "train00001.switch.json").read_text())
    assert [h.language for h in clips[1].halves] == ["German", "English"]  # LANGUAGE_ORDERS[1]
    assert clips[1].halves[0].translation == clips[1].halves[1].line and clips[1].switch_frame == sidecar["switch_frame"] == 49
    assert clips[0].frames.shape[0] == sidecar_frames(tmp_path / "train00000.switch.json") and clips[0].fps == 25
    assert clips[0].scene.startswith("A red ball") and clips[0].sample_rate == 16000
    before = (tmp_path / "train00000.mp4").stat().st_mtime_ns
    write_switch_clips(tmp_path, "train", 2, half_frames=49, size=32)  # finished clips are kept
    assert (tmp_path / "train00000.mp4").stat().st_mtime_ns == before
    plans = plan_clips(switch_spec("heldout", [0, 1]), seconds=9.0, fps=25.0, pause=0.5)
    assert [p.name for p in plans] == ["heldout00000", "heldout00001"]
    assert [(p.halves[0].language, p.halves[1].language) for p in plans] == [("English", "French"), ("German", "English")]
    assert LANGUAGE_ORDERS[0] == ("en", "fr") and 'speaks in French, saying: "' in plans[0].prompt
    # the spec file, as the command line reads it (--dry-run: the prompts, no model)
    from soundstage.synthworld.switch import write_switch_spec

    spec = write_switch_spec(tmp_path / "spec.json", "heldout", [0, 1])
    assert main(["dubbing-clips", "--spec", str(spec), "--out", str(tmp_path / "c"), "--seconds", "4", "--pause", "0.5",
                 "--width", "64", "--height", "64", "--dry-run"]) == 0


def sidecar_frames(path) -> int:
    return json.loads(path.read_text())["world"]["frames"]


# ---- stages 6-8 on a tiny random base ------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_single_file

    root = tmp_path_factory.mktemp("ltx2")
    return write_tiny_single_file(root / "base.safetensors", seed=4), write_tiny_gemma(root / "gemma")


@pytest.fixture(scope="module")
def data_run(tiny_base, tmp_path_factory):
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.skip("espeak-ng not installed (the world's talking clips need it)")
    from soundstage.training.defaults import just_dub_it_data as jd

    ckpt, gemma = tiny_base
    sc = jd.DUB_SCALES["smoke"]
    out = tmp_path_factory.mktemp("dub")
    return run_data(out, sc, ckpt, gemma), out, sc


def run_data(out, sc, ckpt, gemma):
    from soundstage.training.defaults import just_dub_it_data as jd

    stages = []
    clips, ck = jd.switch_clips(out, sc, stages)
    pairs, pk = jd.dubbing_pairs(out, clips, ck, ckpt, gemma, {"base": "tiny-4"}, sc, 0, stages)
    lora, _ = jd.dubbing_lora(out, pairs, pk, ckpt, sc, 0, stages, out / "weights")
    return stages


def test_stages_make_switch_clips_pairs_and_a_lora_the_loader_reads(data_run, tiny_base):
    from safetensors import safe_open

    from soundstage.models.just_dub_it.lora import read_lora
    from soundstage.training.defaults.just_dub_it_data import LORA_FILE

    stages, out, sc = data_run
    assert [s["stage"] for s in stages] == ["switch_clips", "pairs", "dubbing_lora"]
    assert stages[0]["clips"] == sc.switch_clips and stages[1]["pairs"] == 2 * sc.switch_clips
    index = json.loads((out / "pairs" / "index.json").read_text())["pairs"]
    assert [p["target_language"] for p in index] == ["English", "French"]  # train00000 switches en -> fr
    assert 'in French: "' in index[0]["context_audio_prompt"]  # the English half re-spoken in French
    with safe_open(str(out / "pairs" / index[1]["file"]), "pt") as f:
        assert f.get_tensor("fg_mask").sum() > 0  # the drawn lips reach the latents
    lora = read_lora(out / "weights" / LORA_FILE)
    assert lora.rank == sc.lora_rank and lora.pairs
    with safe_open(str(out / "weights" / LORA_FILE), "pt") as f:
        assert max(float(f.get_tensor(k).abs().max()) for k in f.keys() if ".lora_B." in k) > 0  # it trained


def test_rerun_takes_every_stage_and_a_new_lora_setting_retrains_only_the_lora(data_run, tiny_base, tmp_path):
    stages, out, sc = data_run
    work = tmp_path / "work"
    shutil.copytree(out, work)
    again = run_data(work, sc, *tiny_base)
    assert [(s["stage"], bool(s.get("resumed"))) for s in again] == [
        ("switch_clips", True), ("pairs", True), ("dubbing_lora", True)]
    changed = run_data(work, replace(sc, lora_steps=sc.lora_steps + 1), *tiny_base)
    assert [(s["stage"], bool(s.get("resumed"))) for s in changed] == [
        ("switch_clips", True), ("pairs", True), ("dubbing_lora", False)]
    assert changed[-1]["steps"] == sc.lora_steps + 1


# ---- the evaluation ------------------------------------------------------------------------------

def test_dtw_matches_the_textbook_recursion():
    from soundstage.training.defaults.just_dub_it_eval import dtw_distance

    g = np.random.default_rng(0)
    a, b = g.normal(size=(7, 3)), g.normal(size=(5, 3))
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    d = np.full((8, 6), np.inf)
    d[0, 0] = 0
    for i in range(1, 8):
        for j in range(1, 6):
            d[i, j] = cost[i - 1, j - 1] + min(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1])
    assert dtw_distance(a, b) == pytest.approx(d[7, 5] / 12)
    assert dtw_distance(a, a) == 0.0
    assert dtw_distance(a, np.repeat(a, 2, axis=0)) == 0.0  # a slower saying of the same line costs nothing


def test_face_box_covers_the_mouth_and_leaves_the_balls():
    from soundstage.synthworld import render
    from soundstage.training.defaults.just_dub_it_eval import face_mask, psnr_outside

    canvas = render.Canvas(64, 64)
    frame = render.draw_frame(canvas, mood=0.5, openness=1.0, head_dx=0.0, head_dy=0.0, profile=False,
                              balls=[(0.8, 0.2, 0.05, (220, 50, 50))], light_on=False)
    face = face_mask(frame[None])[0]
    mouth = (np.abs(frame.astype(float) - render.MOUTH).sum(-1) < 30)
    ball = (np.abs(frame.astype(float) - (220, 50, 50)).sum(-1) < 30)
    assert mouth.any() and face[mouth].all() and not face[ball].any()
    changed = frame.copy()
    changed[mouth] = 0  # a new mouth: not counted outside the face
    assert psnr_outside(changed[None], frame[None], face[None]) > 100
    changed[ball] = 0
    assert psnr_outside(changed[None], frame[None], face[None]) < 40


def test_evaluation_scores_the_worlds_own_clips_as_the_ceiling(data_run, tiny_base, tmp_path):
    from soundstage.training.defaults import just_dub_it_data as jd
    from soundstage.training.defaults.just_dub_it_eval import CONDITIONS, evaluate_dubbing

    _, out, _ = data_run
    ckpt, gemma = tiny_base
    weights = out / "weights"
    shutil.copyfile(ckpt, weights / "base.safetensors")
    shutil.copytree(gemma, weights / "gemma", dirs_exist_ok=True)
    sc = jd.DUB_SCALES["smoke"]
    result = evaluate_dubbing(weights, tmp_path / "eval", files={"model": "base.safetensors", "text_encoder": "gemma",
                                                                 "lora": jd.LORA_FILE},
                              seconds=2.0, dub=sc, clips=2, seed=0, untrained_seed=1, languages=("fr",))
    assert result["clips"] == ["heldout/0", "heldout/1"] and result["frames"] == 49
    s = result["summary"]
    assert set(s) == set(CONDITIONS) and set(result["by_language"]) == {"fr"} and all(m["dubs"] == 2 for m in s.values())
    truth, source = s["truth"], s["source"]
    # the world's French clip: nearest its own line, its own voice, lips that follow French better than English;
    # the same scene outside the face
    assert truth["dtw_share"] == 1.0 and truth["psnr_outside_face_db_median"] > 100
    assert truth["mouth_r_target_mean"] > truth["mouth_r_english_mean"]
    assert source["mouth_r_english_mean"] > source["mouth_r_target_mean"]  # the English clip: the other way round
    assert source["dtw_share"] == 0.0  # copying the source is not dubbing
    assert truth["impact_median_ms"] < 100 and source["impact_median_ms"] < 100  # most of the balls are heard (2 short clips)
    if truth["voice_share"] is not None:
        assert truth["voice_share"] == 1.0
    row = result["per_clip"][0]
    assert row["mismatched"]["psnr_outside_face_db"] == row["default"]["psnr_outside_face_db"]  # the default's video
    assert set(result["target_check"]) >= {"dtw_share", "impacts", "psnr_outside_face", "all"}
    assert "| truth |" in (tmp_path / "eval" / "report.md").read_text()


def test_lora_on_an_fp16_base_trains_fp32_adapters_and_stays_finite(data_run, tiny_base, tmp_path):
    """The default's base file is fp16: AdamW on fp16 adapters underflows its eps and gives NaN at step 2."""
    from safetensors.torch import load_file, safe_open, save_file

    from soundstage.training.just_dub_it.train import DubbingLoraConfig, train

    _, out, _ = data_run
    ckpt, _ = tiny_base
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    half = tmp_path / "base_fp16.safetensors"
    save_file({k: v.half() for k, v in load_file(str(ckpt)).items()}, str(half), metadata=meta)
    result = train(str(half), str(out / "pairs"), str(tmp_path / "run"), steps=3, mixed_precision="no", save_every=10,
                   cfg=DubbingLoraConfig(rank=2, video_lr=1e-3, audio_lr=1e-4, gradient_checkpointing=False))
    lora = load_file(result["lora"])
    assert np.isfinite(result["last_loss"]) and all(torch.isfinite(v).all() for v in lora.values())
    assert max(float(v.abs().max()) for k, v in lora.items() if ".lora_B." in k) > 0
