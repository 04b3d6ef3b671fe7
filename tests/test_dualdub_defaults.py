"""DualDub tiny default: the recipe's parts in their real layouts, a smoke-scale train + evaluate through the CLI,
stage resumption, and the sampler's KV-cache identity on the trained weights."""
import json
import shutil

import numpy as np
import pytest
import torch

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng not installed (the world's talking clips need it)")


def test_tiny_wavtokenizer_file_loads_strictly_at_40_tokens_per_second(tmp_path):
    from safetensors.torch import save_file

    from soundstage.models.common.codecs.wavtokenizer import load_wavtokenizer
    from soundstage.training.defaults import wavtokenizer as wt

    cfg = wt.tiny_config(bins=32, width=32)
    codec = wt.new_codec(cfg, 0)
    loss = wt.CodecLoss(0, autoencoder_steps=0)
    codec.train()
    wave = torch.randn(2, 24000) * 0.1
    value, logs = loss(codec, wave)  # the first training step initialises the codebook from the data
    assert torch.isfinite(value) and bool(codec.feature_extractor.encodec.quantizer.vq.layers[0]._codebook.inited)
    save_file(wt.codec_state_dict(codec), str(tmp_path / "c.safetensors"))
    loaded = load_wavtokenizer(tmp_path / "c.safetensors", dtype=torch.float32)
    assert loaded.sample_rate / loaded.hop_length == 40 and loaded.codebook_size == 32
    assert loaded.config.n_fft == 2 * loaded.hop_length  # read from the head's width, as the module says
    codes = loaded.encode(wave[:1])[1]
    assert codes.shape == (1, 1, 40) and int(codes.max()) < 32
    assert loaded.decode_codes(codes[0]).shape == (1, 24000)


def test_a_new_codec_hears_its_input_and_draws_its_codebook_after_autoencoding():
    from soundstage.training.defaults import wavtokenizer as wt

    torch.manual_seed(0)
    waves = [torch.randn(24000) * 0.1 * (torch.arange(24000) > 12000) for _ in range(3)]
    cfg = wt.tiny_config(bins=16, width=32)
    codec = wt.new_codec(cfg, 0, waves)
    # the features vary with the sound over time as much as they are offset (default init: ~1/30)
    z = codec.encode_features(torch.stack(waves[:2])).detach()
    assert float(z.std(-1).mean()) > 0.5 * float(z.pow(2).mean().sqrt())
    # the head starts at the data's average spectrum, not at silence
    assert float(codec.head.out.bias[: cfg.n_fft // 2 + 1].max()) > float(wt.soft_log(torch.zeros(1)))
    loss = wt.CodecLoss(0, autoencoder_steps=2)
    book = codec.feature_extractor.encodec.quantizer.vq.layers[0]._codebook
    codec.train()
    for step in range(3):
        value, logs = loss(codec, torch.stack(waves[:2]))
        assert bool(book.inited) == (step == 2) and (logs["commit"] > 0) == (step == 2)


def test_codebook_follows_the_data_and_revives_dead_codes():
    from soundstage.training.defaults import wavtokenizer as wt

    codec = wt.new_codec(wt.tiny_config(bins=8, width=32), 0)
    book = codec.feature_extractor.encodec.quantizer.vq.layers[0]._codebook
    g = torch.Generator().manual_seed(0)
    data = torch.randn(64, 32, generator=g) + 5.0  # far from the random initial codebook
    wt.update_codebook(book, data, g)
    assert abs(float(book.embed.mean()) - 5.0) < 0.3  # initialised from the data, not left at randn
    for _ in range(800):  # an unused code's EMA size falls under the threshold after ~400 steps
        wt.update_codebook(book, data[:4], g)  # only a few vectors: most codes go dead and are replaced
    assert float(torch.cdist(book.embed, data[:4]).min(1).values.max()) < 1.0


def test_frame_targets_mark_the_lamp_the_mouth_and_the_contacts():
    from soundstage.training.defaults.dualdub_encoders import frame_targets

    truth = {"impacts": [{"time": 0.4}], "beeps": [{"time": 0.2}], "mouth_openness": [0.5] * 25}
    t = frame_targets(truth, 25, 25.0)
    assert t.shape == (25, 5)
    assert t[5, 0] == 1 and t[4, 0] == 0 and t[10, 0] == 0  # lit from 0.2 s for 0.2 s
    assert torch.allclose(t[:, 1], torch.full((25,), 0.5))
    assert t[10, 4] == pytest.approx(1.0) and t[10, 2] == 0 and t[10, 3] == 1.0  # at the only contact
    assert t[9, 3] == pytest.approx(0.04 / 0.5) and t[9, 4] == pytest.approx(np.exp(-0.5))  # one frame before
    assert t[5, 3] == pytest.approx(0.2 / 0.5) and t[15, 2] == pytest.approx(0.2 / 0.5)  # 0.2 s before / after
    assert t[0, 2] == 1.0  # no contact before: clipped at 0.5 s


def test_clip_file_loads_from_its_shapes_alone_and_embeds_as_trained(tmp_path):
    from safetensors.torch import save_file

    from soundstage.models.common.clip_vision import embed_frames
    from soundstage.models.dualdub.vision import load_clip_vision
    from soundstage.training.defaults import dualdub_encoders as enc

    tower = enc.tiny_clip(0, 32).eval()
    save_file(enc.clip_state_dict(tower), str(tmp_path / "clip_vision.safetensors"))
    loaded = load_clip_vision(tmp_path / "clip_vision.safetensors")  # no config beside it
    assert loaded.dim == enc.CLIP_WIDTH and loaded.image_size == 32
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want = tower(pixel_values=enc.clip_pixels(frames, 32)).pooler_output
    assert torch.allclose(embed_frames(loaded, frames), want, atol=2e-2)  # fp16 file


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from soundstage.cli import main

    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.skip("espeak-ng not installed (the world's talking clips need it)")
    out = tmp_path_factory.mktemp("dualdub")
    assert main(["train-defaults", "dualdub", "--scale", "smoke", "--out", str(out / "a")]) == 0
    return out


@needs_espeak
def test_smoke_default_trains_the_curriculum_into_loadable_real_layouts(smoke_run):
    from soundstage.training.defaults.dualdub import FILES
    from soundstage.training.defaults.dualdub_eval import load_parts

    report = json.loads((smoke_run / "a" / "train_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["codec", "clip", "speaker", "lm_stage1", "lm_stage2", "lm_stage3"]
    model, tokenizer, codec, clip = load_parts(smoke_run / "a" / "weights", FILES)
    assert model.config.codebook_size == codec.codebook_size and model.config.video_dim == clip.dim
    assert model.config.token_rate == codec.sample_rate / codec.hop_length == 40
    # the curriculum ran by train dualdub's own function: one checkpoint per stage, each from the previous
    for n in (1, 2, 3):
        assert (smoke_run / "a" / f"lm_stage{n}" / f"dualdub_stage{n}.safetensors").is_file()
    manifest = json.loads((smoke_run / "a" / "data" / "manifest.json").read_text())
    assert sorted({e["task"] for e in manifest}) == ["tts", "v2a", "v2st"]
    assert sum(report["files"][k]["bytes"] for k in FILES) < 40e6
    # trained in the world whose speech timing is on the lips; the probe of what the LM sees of them is reported
    assert report["scale_settings"]["speech_timing"] == "varied"
    assert -1.0 <= report["heldout_diagnostics"]["mouth_probe_r"] <= 1.0


@needs_espeak
def test_rerun_takes_finished_stages_and_retrains_a_missing_one_to_the_same_weights(smoke_run):
    from safetensors.torch import load_file

    from soundstage.cli import main
    from soundstage.training.defaults.dualdub import FILES

    work = smoke_run / "resumed"
    shutil.copytree(smoke_run / "a", work)
    shutil.rmtree(work / "lm_stage3")  # as if the run had stopped before the last curriculum stage
    (work / "weights" / FILES["lm"]).unlink()
    assert main(["train-defaults", "dualdub", "--scale", "smoke", "--out", str(work)]) == 0
    report = json.loads((work / "train_report.json").read_text())
    assert [(s["stage"], bool(s.get("resumed"))) for s in report["stages"]] == [
        ("codec", True), ("clip", True), ("speaker", True), ("lm_stage1", True), ("lm_stage2", True),
        ("lm_stage3", False)]
    for name in FILES.values():
        if name.endswith(".safetensors"):
            a, b = load_file(str(smoke_run / "a" / "weights" / name)), load_file(str(work / "weights" / name))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@needs_espeak
def test_more_steps_for_the_last_curriculum_stage_retrain_that_stage_only(smoke_run, monkeypatch):
    import dataclasses

    from soundstage.cli import main
    from soundstage.training.defaults import dualdub as dd

    work = smoke_run / "longer"
    shutil.copytree(smoke_run / "a", work)
    smoke = dd.SCALES["smoke"]
    monkeypatch.setitem(dd.SCALES, "smoke", dataclasses.replace(smoke, lm_steps=smoke.lm_steps[:2] + (2,),
                                                                temperature=0.5))  # sampling: retrains nothing
    assert main(["train-defaults", "dualdub", "--scale", "smoke", "--out", str(work)]) == 0
    report = json.loads((work / "train_report.json").read_text())
    assert [(s["stage"], bool(s.get("resumed"))) for s in report["stages"]] == [
        ("codec", True), ("clip", True), ("speaker", True), ("lm_stage1", True), ("lm_stage2", True),
        ("lm_stage3", False)]
    assert report["stages"][-1]["steps"] == 2
    monkeypatch.setitem(dd.SCALES, "smoke", dataclasses.replace(smoke, lm_steps=(2,) + smoke.lm_steps[1:]))
    assert main(["train-defaults", "dualdub", "--scale", "smoke", "--out", str(work)]) == 0
    report = json.loads((work / "train_report.json").read_text())
    assert [bool(s.get("resumed")) for s in report["stages"]] == [True, True, True, False, False, False]


def test_speech_timing_reaches_train_and_held_out_clips_and_every_stage_key(monkeypatch):
    import dataclasses

    from soundstage.training.defaults import dualdub as dd

    monkeypatch.setattr(dd, "generate_clip", lambda spec: spec)  # the specs the recipe asks the world for
    # full is the shipped fixed-timing recipe; the others train in the varied timing
    assert {name: s.speech_timing for name, s in dd.SCALES.items()} == {"smoke": "varied", "feasibility": "varied",
                                                                        "full": "fixed"}
    for scale in dd.SCALES.values():
        for split in ("train", "heldout"):
            assert {c.speech_timing for c in dd.talking_clips(split, 3, scale)} == {scale.speech_timing}
        fixed = dd.stage_keys(dataclasses.replace(scale, speech_timing="fixed"), 0)
        varied = dd.stage_keys(dataclasses.replace(scale, speech_timing="varied"), 0)
        # a changed world retrains every stage
        assert all(fixed[k] != varied[k] and varied[k]["speech_timing"] == "varied" for k in varied)


def test_a_wider_lm_or_more_tts_sentences_retrain_the_lm_stages_and_no_encoder():
    import dataclasses

    from soundstage.training.defaults import dualdub as dd

    base = dd.SCALES["full"]
    keys = dd.stage_keys(base, 0)
    lm_stages = [f"lm_stage{n}" for n in (1, 2, 3)]
    for change in ({"hidden": base.hidden + 32}, {"tts_clips": base.tts_clips + 8}, {"layers": base.layers + 1},
                   {"lm_schedule": next(x for x in ("constant", "cosine") if x != base.lm_schedule)}):
        changed = dd.stage_keys(dataclasses.replace(base, **change), 0)
        retrained = {k for k in keys if keys[k] != changed[k]}
        encoders = {"speaker"} if "hidden" in change else set()  # the speaker encoder is as wide as the LM
        assert retrained == set(lm_stages) | encoders, change
    # an encoder's own steps retrain that encoder and the LM, not the other encoders
    changed = dd.stage_keys(dataclasses.replace(base, clip_steps=base.clip_steps + 1), 0)
    assert {k for k in keys if keys[k] != changed[k]} == {"clip"} | set(lm_stages)
    assert dd.stage_keys(base, 1)["codec"] != keys["codec"]  # every stage is seeded
    # stage 3's task weights retrain stage 3 alone: stages 1 and 2 never read a V2ST entry
    changed = dd.stage_keys(dataclasses.replace(base, v2st_repeats=base.v2st_repeats + 2), 0)
    assert {k for k in keys if keys[k] != changed[k]} == {"lm_stage3"}


@needs_espeak
def test_the_speech_corpus_is_the_worlds_speech_of_sentences_no_clip_says(tmp_path):
    import dataclasses

    from soundstage.synthworld import generate_clip
    from soundstage.synthworld.splits import clip_spec
    from soundstage.training.defaults import dualdub as dd
    from soundstage.training.dualdub.data import stage_entries

    sc = dataclasses.replace(dd.SCALES["smoke"], tts_clips=8)
    corpus = dd.speech_corpus(sc)
    clips = dd.talking_clips("train", sc.train_clips, sc)
    assert len(corpus) == 8
    assert not {t for _, t, _ in corpus} & {c.truth["transcript"] for c in clips}
    # the same stem the world's clip of that index says, without its frames
    whole = generate_clip(clip_spec("train", sc.train_clips + 1, task="full", seconds=sc.seconds, size=sc.size,
                                    speech_timing=sc.speech_timing))
    assert corpus[1][1] == whole.truth["transcript"] and np.array_equal(corpus[1][0], whole.stems["speech"])
    entries = json.loads((dd.write_manifest(clips, tmp_path, corpus) / "manifest.json").read_text())
    repeated = json.loads((dd.write_manifest(clips, tmp_path / "x3", corpus, v2st_repeats=3) / "manifest.json")
                          .read_text())
    v2st = [e for e in entries if e["task"] == "v2st"]
    assert len(v2st) == len(clips) and [e for e in repeated if e["task"] == "v2st"] == v2st * 3
    # every stage sees its V2A and TTS entries in the same order, so stages 1 and 2 train as without repeats
    assert [e for e in repeated if e["task"] != "v2st"] == [e for e in entries if e["task"] != "v2st"]
    for stage in (1, 2):
        assert stage_entries(repeated, stage) == stage_entries(entries, stage)
    tts = [e for e in entries if e.get("speech", "").startswith("tts")]
    assert len(tts) == 8 and all(e["task"] == "tts" and (tmp_path / e["speech"]).is_file() for e in tts)
    index = {e["speech"]: i for i, e in enumerate(tts)}
    # each reference is another sentence of the same speaker (speakers go round the index)
    assert all(index[e["reference"]] % 4 == i % 4 and e["reference"] != e["speech"] for i, e in enumerate(tts))


@needs_espeak
def test_eval_defaults_reports_every_condition_and_the_kv_cache_identity(smoke_run, tmp_path):
    from soundstage.cli import main

    out = tmp_path / "eval"
    assert main(["eval-defaults", "dualdub", "--weights", str(smoke_run / "a" / "weights"), "--scale", "smoke",
                 "--clips", "2", "--out", str(out)]) == 0
    result = json.loads((out / "dualdub" / "report.json").read_text())
    assert result["clips"] and all(c.startswith("heldout/") for c in result["clips"])
    assert result["speech_timing"] == "varied"  # held-out clips drawn in the world the default was trained on
    s = result["summary"]
    assert set(s) == {"default", "mismatched", "untrained", "codec_round_trip", "truth"}
    assert s["truth"]["impacts"]["median_ms"] <= 40  # the metric finds the truth's own contacts
    assert s["truth"]["speech"]["int_corr_mean"] == pytest.approx(1.0)
    assert result["kv_cache"]["identical"] is True and result["kv_cache"]["tokens_per_s_cached"] > 0
    if "skipped" not in s["truth"]["voice"]:
        assert s["truth"]["voice"]["own_highest_share"] == 1.0
    if "skipped" not in s["truth"]["words"]:  # Whisper reads the world's own speech better than the untrained LM's
        print(s["truth"]["words"], s["untrained"]["words"])
        assert s["truth"]["words"]["wer_median"] < s["untrained"]["words"]["wer_median"]
    md = (out / "dualdub" / "report.md").read_text()
    assert "mismatched" in md and "KV cache" in md
    assert (out / "dualdub" / "median_ms.png").is_file()


@needs_espeak
def test_kv_cache_gives_the_tokens_of_the_full_forward_on_the_trained_weights(smoke_run):
    from soundstage.pipelines import dualdub as pipeline
    from soundstage.training.defaults.dualdub import FILES, SCALES, talking_clips
    from soundstage.training.defaults.dualdub_eval import kv_cache_check, load_parts

    model, tokenizer, codec, clip = load_parts(smoke_run / "a" / "weights", FILES)
    c = talking_clips("heldout", 1, SCALES["smoke"], start=5)[0]
    video = pipeline.video_features(clip, torch.from_numpy(c.frames).float() / 255.0, c.spec.fps)
    audio = {"waveform": torch.from_numpy(c.stems["speech"]).view(1, 1, -1), "sample_rate": c.spec.sample_rate}
    speaker = pipeline.speaker_embedding(model, audio, 3.0)
    text = pipeline.text_ids(tokenizer, c.truth["transcript"], model.config.text_vocab_size)
    for seed, temperature, top_k in ((3, 1.0, 0), (4, 0.7, 5)):
        check = kv_cache_check(model, tokenizer, video, speaker, text, c.spec.seconds, seed, temperature, top_k)
        assert check["identical"] and check["steps"] == 40


@needs_espeak
def test_install_puts_each_part_where_the_load_dualdub_node_lists_and_loads_it(smoke_run, tmp_path, monkeypatch):
    from helpers import installed_smoke_default

    from soundstage.nodes.dualdub import LoadDualDub
    from soundstage.training.defaults.card import card_markdown
    from soundstage.training.defaults.dualdub import FILES, RECIPE

    with installed_smoke_default("dualdub", smoke_run / "a", tmp_path, monkeypatch, "soundstage/dualdub",
                                 "audio_encoders", "clip_vision") as report:
        inputs = {i.id: i for i in LoadDualDub.define_schema().inputs}
        names = [inputs[k].options[0] for k in ("ckpt_name", "codec_name", "clip_name")]
        assert names == [f"soundstage-tiny/dualdub/{FILES[k]}" for k in ("lm", "codec", "clip")]
        dualdub, codec, clip = LoadDualDub.execute(*names, "fp32").result
        assert dualdub.handle.module.config.codebook_size == codec.module.codebook_size
        assert dualdub.tokenizer.get_vocab_size() == dualdub.handle.module.config.text_vocab_size
    card = card_markdown(report, {"clips": ["heldout/1"], "table": ["| condition | x |", "|---|---|", "| default | 1 |"]},
                         can=RECIPE.can, cannot=RECIPE.cannot)
    assert "train-defaults dualdub --scale smoke" in card and "| default | 1 |" in card and "lm_stage3" in card
    assert "varied speech timing" in card  # how the clips speak is part of what the card names


@needs_espeak
def test_soundtrack_dualdub_workflow_runs_as_shipped_on_the_sample_input(tmp_path):
    # `synth --samples`, then the template with no model files of the user's own: the shipped default.
    from soundstage import defaults as pack_defaults
    from helpers import run_as_shipped
    from soundstage.synthworld.samples import dualdub_sample_transcript
    from soundstage.training.defaults.cli import _installed

    if _installed("dualdub") is None:
        pytest.skip("the DualDub tiny default is not shipped in defaults/ (train-defaults dualdub --install)")

    workflow = pack_defaults.DEFAULTS_DIR.parent / "workflows" / "soundtrack_dualdub.json"
    texts = [n["widgets_values"][0] for n in json.loads(workflow.read_text())["nodes"]
             if n["type"] == "SoundstageDualDubTextEncode"]
    assert texts == [dualdub_sample_transcript()]  # the workflow speaks the sample clip's own sentence
    seconds, loudest = run_as_shipped(workflow, tmp_path)
    assert abs(seconds - 4.0) < 0.1 and loudest > 1e-3  # the whole clip, and not silence


def test_codec_and_speaker_encoder_run_in_half_precision_on_the_cpu():
    # ComfyUI may hold these weights in fp16 on a CPU (found by running soundtrack_dualdub in its executor)
    from soundstage.models.dualdub.speaker import SpeakerEncoder
    from soundstage.training.defaults import wavtokenizer as wt

    codec = wt.new_codec(wt.tiny_config(bins=8, width=32), 0).eval()
    codes = torch.randint(0, 8, (1, 5))
    want = codec.decode_codes(codes)
    got = codec.half().decode_codes(codes)
    assert got.dtype == torch.float32 and got.shape == want.shape and torch.isfinite(got).all()
    speaker = SpeakerEncoder(n_mels=20, channels=16, out_dim=8, heads=2, sample_rate=24000).eval()
    wave = torch.randn(1, 24000) * 0.1
    with torch.no_grad():
        assert torch.allclose(speaker.half()(wave).float(), speaker.float()(wave), atol=5e-2)
