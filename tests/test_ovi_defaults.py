"""Ovi: ``train ovi`` (shared timestep, Ovi's key layout in and out) and the tiny default's recipe: its parts in
their real layouts read back by the loaders, a smoke-scale train + evaluate through the CLI, stage resumption,
and the evaluation's tracker on the world's own clips."""
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import video_and_audio

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                  reason="espeak-ng not installed (the world's talking clips need it)")


def tiny_config():
    from soundstage.models.ovi.fusion import FusionConfig
    from soundstage.models.ovi.tower import audio_config, video_config

    common = dict(dim=32, ffn_dim=64, freq_dim=32, num_heads=1, num_layers=2, text_dim=8, text_len=16)
    return FusionConfig(video=video_config(in_dim=4, out_dim=4, **common), audio=audio_config(in_dim=6, out_dim=6, **common))


class Recorder(torch.nn.Module):
    """Stands in for the fusion model: records what the loss gives it and predicts zeros."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, vid, aud, t, vc, ac, first_frame_clean=False):
        self.calls.append((vid.clone(), aud.clone(), t.clone(), vc.clone(), first_frame_clean))
        return vid * self.w, aud * self.w


def test_loss_gives_both_towers_one_timestep_per_clip_and_wan_interpolation():
    from soundstage.training.ovi.train import LossConfig, OviBatch, make_loss_fn

    big = 1e4  # clean latents this large make (1 - sigma) readable from the noisy input's mean
    batch = OviBatch(torch.full((3, 4, 2, 2, 2), big), torch.full((3, 5, 6), big), torch.ones(3, 3, 8))
    model = Recorder()
    loss, logs = make_loss_fn(LossConfig(), seed=1)(model, batch)
    xv, xa, t, text, i2v = model.calls[0]
    sigma = t / 1000
    assert t.shape == (3,) and not i2v and bool((sigma > 0).all() and (sigma < 1).all())
    assert len(set(sigma.tolist())) == 3  # one t per clip ...
    read_v = 1 - xv.flatten(1).mean(1) / big
    read_a = 1 - xa.flatten(1).mean(1) / big
    torch.testing.assert_close(read_v, sigma, atol=2e-3, rtol=0)  # ... shared by both towers (paper 4.2.2)
    torch.testing.assert_close(read_a, sigma, atol=2e-3, rtol=0)
    assert torch.equal(text, batch.text)
    # zero prediction: the loss is 0.85 E|n - x|^2 + 0.15 E|n - x|^2 of the two towers
    assert float(loss.detach()) == pytest.approx(0.85 * logs["video"] + 0.15 * logs["audio"], rel=1e-5)
    assert logs["video"] == pytest.approx(big ** 2, rel=0.01) and logs["audio"] == pytest.approx(big ** 2, rel=0.01)


def test_i2v_steps_give_the_clean_first_frame_and_leave_it_out_of_the_loss():
    from soundstage.training.ovi.train import LossConfig, OviBatch, make_loss_fn

    vid = torch.randn(2, 4, 3, 2, 2)
    batch = OviBatch(vid, torch.randn(2, 5, 6), torch.ones(2, 3, 8))
    model = Recorder()
    _, logs = make_loss_fn(LossConfig(i2v_share=1.0, text_dropout=1.0), seed=0)(model, batch)
    xv, _, _, text, i2v = model.calls[0]
    assert i2v and logs["i2v"] == 1.0
    assert torch.equal(xv[:, :, :1], vid[:, :, :1]) and not torch.equal(xv[:, :, 1:], vid[:, :, 1:])
    assert torch.count_nonzero(text) == 0  # dropped text: the empty prompt


def test_train_ovi_cli_writes_ovi_layout_and_fine_tunes_from_it(tmp_path, capsys):
    from dataclasses import asdict

    from soundstage.cli import main
    from soundstage.models.ovi.loader import load_ovi_fusion
    from soundstage.training.ovi.train import write_features

    g = torch.Generator().manual_seed(0)
    clips = [{"video": torch.randn(4, 2, 2, 2, generator=g), "audio": torch.randn(5, 6, generator=g),
              "text": torch.randn(n, 8, generator=g)} for n in (2, 3, 4)]
    data = write_features(tmp_path / "data", clips)
    cfg = tiny_config()
    (tmp_path / "config.json").write_text(json.dumps({"video": asdict(cfg.video), "audio": asdict(cfg.audio)}))
    assert main(["train", "ovi", "--data", str(data), "--out", str(tmp_path / "a"), "--config",
                 str(tmp_path / "config.json"), "--steps", "2", "--batch-size", "2", "--lr", "1e-3"]) == 0
    ckpt = tmp_path / "a" / "ovi_fusion_ema.safetensors"
    net = load_ovi_fusion(ckpt, text_len=16)  # strict: every key and shape of Ovi's layout
    assert net.config.video.in_dim == 4 and net.config.audio.in_dim == 6 and net.num_blocks == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert main(["train", "ovi", "--data", str(data), "--out", str(tmp_path / "b"), "--init", str(ckpt),
                 "--steps", "1", "--batch-size", "3", "--ema", "0"]) == 0
    tuned = load_ovi_fusion(tmp_path / "b" / "ovi_fusion_ema.safetensors")
    before, after = net.state_dict(), tuned.state_dict()
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_train_ovi_names_a_missing_manifest(tmp_path):
    from soundstage.training.ovi.train import manifest_items

    with pytest.raises(FileNotFoundError, match="manifest.jsonl"):
        manifest_items(tmp_path)


def test_prompt_is_the_caption_in_ovi_format_without_the_music():
    from soundstage.training.defaults.ovi import prompt
    from soundstage.training.defaults.ovi_eval import caption_colours

    p = prompt('a red ball and a green ball bounce, a lamp blinks with a beep, while a man says: "lena sees it" '
               'over calm music')
    assert p == "a red ball and a green ball bounce, a lamp blinks with a beep, while a man says: <S>lena sees it<E>"
    assert caption_colours(p) == {"red", "green"}
    assert prompt("a red ball bounces over cheerful music") == "a red ball bounces"
    assert caption_colours("a red ball bounces, while a woman says: <S>the green ball<E>") == {"red"}


class FixedReconstruction(torch.nn.Module):
    """Stands in for the video VAE: decodes every latent to a given reconstruction."""

    def __init__(self, rec):
        super().__init__()
        self.rec = rec

    def encode(self, x):
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        return type("Out", (), {"latent_dist": DiagonalGaussianDistribution(torch.zeros(x.shape[0], 2, 1, 1, 1))})()

    def decode(self, z):
        return type("Out", (), {"sample": self.rec})()


def test_vae_loss_weights_what_moves_off_the_clips_background_not_the_still_face():
    from soundstage.training.defaults import ovi_parts as parts

    # a clip: a grey room, a still "face" square, and a 2 x 2 "ball" that moves one pixel per frame
    clip = np.full((9, 16, 16, 3), 120, np.uint8)
    clip[:, 2:8, 2:8] = (240, 200, 170)
    for t in range(9):
        clip[t, 10:12, 2 + t: 4 + t] = (220, 50, 50)
    bg = parts.background(clip)
    assert (bg[0, 2:8, 2:8] == (240, 200, 170)).all() and (bg[0, 10:12] == 120).all()  # face kept, ball gone
    batch = next(parts.frame_batches([clip], 1, seed=0, frames=1))
    x = batch.pixels
    mask = parts.off_background(x, batch.background)[0, 0, 0]
    ball = torch.from_numpy((clip == (220, 50, 50)).all(-1)).float()
    assert any(torch.equal(mask, ball[t]) for t in range(9))  # exactly the ball's pixels of that frame

    def loss_with_error_at(where):
        rec = x.clone()
        rec[..., where[0], where[1]] += 0.5
        return float(parts.vae_loss(FixedReconstruction(rec), batch)[1]["l1"])

    ys, xs = torch.nonzero(mask, as_tuple=True)
    on_ball, on_face = loss_with_error_at((ys[0], xs[0])), loss_with_error_at((4, 4))
    assert on_ball == pytest.approx(on_face * (1 + parts.BALL_WEIGHT), rel=1e-5)


def test_vae_squared_error_shares_the_l1_weights_and_is_keyed_only_when_used(tmp_path):
    from soundstage.training.defaults import ovi_parts as parts
    from soundstage.training.defaults.ovi import SCALES

    clip = np.full((9, 32, 32, 3), 120, np.uint8)
    for t in range(9):
        clip[t, 20:24, 2 + t: 6 + t] = (60, 200, 90)
    batch = next(parts.frame_batches([clip], 1, seed=0, frames=1))
    x = batch.pixels
    ys, xs = torch.nonzero(parts.off_background(x, batch.background)[0, 0, 0], as_tuple=True)

    def loss_with_error_at(where, **kw):
        rec = x.clone()
        rec[..., where[0], where[1]] += 0.5
        return parts.vae_loss(FixedReconstruction(rec), batch, **kw)

    on_ball, on_room = loss_with_error_at((ys[0], xs[0]), mse_weight=2.0), loss_with_error_at((1, 1), mse_weight=2.0)
    assert on_ball[1]["mse"] == pytest.approx(on_room[1]["mse"] * (1 + parts.BALL_WEIGHT), rel=1e-5)
    plain = loss_with_error_at((ys[0], xs[0]))
    assert "mse" not in plain[1]
    assert float(on_ball[0] - plain[0]) == pytest.approx(2.0 * on_ball[1]["mse"], rel=1e-4)
    # the full recipe uses it; a run without it keeps its stage keys as they were (earlier runs stay valid)
    assert SCALES["full"].vae_mse > 0 and SCALES["full"].vae_decoder_frames == 13
    keys = {}
    for w in (0.0, 1.0):
        stages = []
        parts.train_frame_vae(parts.new_video_vae(parts.tiny_vae_config(4, 4), 0), {"t": 1}, [clip], tmp_path / str(w),
                              0, stages, frame_steps=1, frame_batch=1, crop_steps=1, crop_batch=1, crop_frames=5,
                              lr=1e-3, mse_weight=w)
        keys[w] = [s["key"] for s in stages]
        assert [s["stage"] for s in stages] == ["video_vae_frames", "video_vae"]
    assert all("mse" not in k for k in keys[0.0]) and all(k["mse"] == 1.0 for k in keys[1.0])


@needs_espeak
def test_tracker_and_speech_detector_read_the_worlds_own_clips():
    from soundstage.metrics.events import event_errors
    from soundstage.training.defaults import ovi, ovi_eval

    sc = ovi.SCALES["feasibility"]
    held = ovi.ovi_clips("heldout", 4, sc)  # indices 0, 1 silent (one / two balls), 2, 3 speaking
    errors = []
    for c in held:
        want = ovi_eval.caption_colours(c.prompt)
        assert ovi_eval.seen_colours(c.frames) == want and len(want) == 1 + c.index % 2
        contacts = ovi_eval.video_contacts(c.frames, want, ovi.FPS)
        errors += event_errors(np.asarray(contacts), [e["time"] for e in c.truth["impacts"]])
        assert (ovi_eval.voiced_seconds(c.audio, 16000) >= ovi_eval.SPEECH_MIN_S) == ("<S>" in c.prompt)
    assert np.median(errors) < 0.02


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from soundstage.cli import main
    from soundstage.training.defaults import ovi

    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.skip("espeak-ng not installed (the world's talking clips need it)")
    try:
        ovi.audio_codec()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("ovi")
    assert main(["train-defaults", "ovi", "--scale", "smoke", "--out", str(out / "a")]) == 0
    return out


def test_smoke_default_writes_every_part_in_the_layout_its_loader_reads(smoke_run):
    from safetensors import safe_open

    from soundstage.models.ovi.loader import load_ovi_fusion
    from soundstage.models.ovi.video_vae import decode_video, encode_image, load_wan_vae
    from soundstage.training.defaults.ovi import FILES, SCALES, text_encoder

    sc = SCALES["smoke"]
    weights = smoke_run / "a" / "weights"
    report = json.loads((smoke_run / "a" / "train_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["video_vae_frames", "video_vae", "video_vae_decoder", "fusion"]
    check = report["video_vae_heldout"]  # the VAE's held-out round trip, measured before the fusion stage
    assert check["clips"] == 4 and np.isfinite(check["psnr_db"]) and 0 <= check["balls_seen"] <= 1
    assert np.isfinite(check["first_frame_psnr_db"])
    assert sum(report["files"][k]["bytes"] for k in FILES) < 40e6
    with safe_open(str(weights / FILES["model"]), "pt") as f:
        keys = list(f.keys())
        assert all(k.startswith(("video_model.", "audio_model.")) for k in keys)
        assert f.get_tensor(keys[0]).dtype == torch.float16
    net = load_ovi_fusion(weights / FILES["model"])
    assert net.config.video.in_dim == sc.z_dim and net.config.audio.in_dim == 20 and net.config.video.num_heads == 1
    vae = load_wan_vae(weights / FILES["vae"], dtype=torch.float32)
    assert vae.config.z_dim == sc.z_dim and len(vae.config.latents_mean) == sc.z_dim
    assert not np.allclose(vae.config.latents_std, 1.0)  # measured on the training clips, carried in metadata
    z = encode_image(vae, torch.rand(1, sc.size, sc.size, 3))
    assert z.shape == (1, sc.z_dim, 1, sc.size // 16, sc.size // 16)
    assert decode_video(vae, z).shape == (1, 1, sc.size, sc.size, 3)
    enc = text_encoder(weights, net.config.video.text_len)
    a, b = enc.encode(["a red ball bounces", "a red ball and a green ball bounce, while a man says: <S>hi<E>"])
    assert a.shape[1] == net.config.video.text_dim and a.shape[0] == 5  # four words and </s>
    ids = enc.tokenizer("<S>hi<E>")["input_ids"]
    assert len(ids) == 4 and enc.tokenizer.unk_token_id not in ids[:1] + ids[2:]  # the tags stay whole tokens
    features = smoke_run / "a" / "features"
    assert len((features / "manifest.jsonl").read_text().splitlines()) == sc.train_clips  # train ovi's data folder


def test_rerun_takes_finished_stages_and_retrains_a_missing_one_to_the_same_weights(smoke_run):
    from safetensors.torch import load_file

    from soundstage.cli import main
    from soundstage.training.defaults.ovi import FILES

    work = smoke_run / "resumed"
    shutil.copytree(smoke_run / "a", work)
    shutil.rmtree(work / "fusion")
    (work / "weights" / FILES["model"]).unlink()
    assert main(["train-defaults", "ovi", "--scale", "smoke", "--out", str(work)]) == 0
    report = json.loads((work / "train_report.json").read_text())
    assert [(s["stage"], bool(s.get("resumed"))) for s in report["stages"]] == [
        ("video_vae_frames", True), ("video_vae", True), ("video_vae_decoder", True), ("fusion", False)]
    for name in FILES.values():
        if name.endswith(".safetensors"):
            a, b = load_file(str(smoke_run / "a" / "weights" / name)), load_file(str(work / "weights" / name))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_decoder_stage_changes_the_decoder_and_keeps_the_encoder_the_features_came_from(smoke_run):
    # the fusion model was trained on the encoder's latents: the decoder fine-tune must not move one of them
    from safetensors.torch import load_file

    from soundstage.training.defaults.ovi import FILES

    before = load_file(str(smoke_run / "a" / "video_vae" / "final.safetensors"))  # the VAE stage's own weights
    shipped = load_file(str(smoke_run / "a" / "weights" / FILES["vae"]))
    encoder = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    decoder = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    assert encoder and decoder and set(encoder + decoder) == set(before) == set(shipped)
    assert all(torch.equal(before[k].half(), shipped[k]) for k in encoder)
    assert any(not torch.equal(before[k].half(), shipped[k]) for k in decoder)


def test_eval_defaults_reports_every_condition_and_i2av(smoke_run, tmp_path):
    from soundstage.cli import main

    out = tmp_path / "eval"
    assert main(["eval-defaults", "ovi", "--weights", str(smoke_run / "a" / "weights"), "--scale", "smoke",
                 "--clips", "2", "--out", str(out)]) == 0
    result = json.loads((out / "ovi" / "report.json").read_text())
    assert result["clips"] == ["heldout/0", "heldout/1"]
    s = result["summary"]
    assert set(s) == {"default", "mismatched", "untrained", "truth", "codec_round_trip"}
    assert s["truth"]["balls"]["share"] == 1.0  # the world's own frames show the caption's balls
    assert s["truth"]["speech"]["share"] == 1.0  # and its silent clips are heard as silent
    row = result["per_clip"][0]
    assert row["mismatched"]["colours"] == row["default"]["colours"]  # the mismatched pair keeps the video
    assert result["i2av"]["clips"] == 2 and np.isfinite(result["i2av"]["first_frame_psnr_median"])
    assert result["long_clip"]["seams"] == 2 * (result["long_clip"]["chunks"] - 1)
    assert "mismatched" in (out / "ovi" / "report.md").read_text()
    from soundstage.training.defaults.ovi import SCALES

    smoke = SCALES["smoke"]  # the report names the sampling its numbers hold for
    assert result["sampling"] == {"steps": smoke.sample_steps, "shift": smoke.shift, "video_cfg": smoke.video_cfg,
                                  "audio_cfg": smoke.audio_cfg}
    assert f"guidance {smoke.video_cfg} / {smoke.audio_cfg}" in (out / "ovi" / "report.md").read_text()


def test_install_puts_each_part_where_the_ovi_loader_nodes_list_and_load_it(smoke_run, tmp_path, monkeypatch):
    from helpers import installed_smoke_default

    from soundstage.nodes.ovi import LoadOviModel, LoadOviTextEncoder, LoadWanVAE, encode_ovi_text
    from soundstage.training.defaults.ovi import FILES

    with installed_smoke_default("ovi", smoke_run / "a", tmp_path, monkeypatch, "soundstage/ovi", "text_encoders", "vae"):
        def options(node, key):
            return {i.id: i for i in node.define_schema().inputs}[key].options

        names = [f"soundstage-tiny/ovi/{FILES[k]}" for k in ("model", "text_encoder", "tokenizer", "vae")]
        listed = [options(LoadOviModel, "ckpt_name"), options(LoadOviTextEncoder, "text_encoder"),
                  options(LoadOviTextEncoder, "tokenizer"), options(LoadWanVAE, "vae_name")]
        assert all(name in opts for name, opts in zip(names, listed)), listed
        ovi = LoadOviModel.execute(names[0], "fp32", "none", 0, 0, 512).result[0]
        enc = LoadOviTextEncoder.execute(names[1], names[2], 512).result[0]
        vae = LoadWanVAE.execute(names[3], "fp32").result[0]
        cond = encode_ovi_text(enc, "a red ball bounces", "", "")
        assert cond["positive"].shape[1] == ovi.handle.module.config.video.text_dim
        assert vae.module.config.z_dim == ovi.handle.module.config.video.in_dim


def test_ovi_templates_sample_as_the_default_card_was_measured():
    # the card's numbers hold for the sampling eval-defaults used: the templates must sample the same way
    from soundstage import defaults as pack_defaults
    from soundstage.headless.workflow import widget_values
    from soundstage.nodes.ovi import OviSampler
    from soundstage.training.defaults.ovi import SCALES

    full = SCALES["full"]
    assert (full.video_cfg, full.audio_cfg) != (1.0, 1.0)  # the recipe names guidance of its own
    for name in ("t2av_ovi", "i2av_ovi"):
        workflow = json.loads((pack_defaults.DEFAULTS_DIR.parent / "workflows" / f"{name}.json").read_text())
        node = next(n for n in workflow["nodes"] if n["type"] == "SoundstageOviSampler")
        w = widget_values(node, OviSampler)
        assert (w["steps"], w["shift"], w["video_cfg"], w["audio_cfg"], w["slg_layer"]) == (
            full.sample_steps, full.shift, full.video_cfg, full.audio_cfg, 0), name
        assert (w["width"], w["height"], w["latent_frames"]) == (full.size, full.size, full.latent_frames), name


@needs_espeak
def test_ovi_workflows_run_as_shipped_on_the_sample_input(tmp_path):
    # `synth --samples`, then both templates with no model files of the user's own: the shipped default.
    from soundstage import defaults as pack_defaults
    from soundstage.headless.runner import Runner
    from soundstage.synthworld.samples import OVI_FPS, OVI_SECONDS, OVI_SIZE, ovi_sample_clip, write_workflow_samples
    from soundstage.training.defaults import ovi_eval
    from soundstage.training.defaults.cli import _installed
    from soundstage.training.defaults.ovi import FPS, SCALES, prompt

    if _installed("ovi") is None:
        pytest.skip("the Ovi tiny default is not shipped in defaults/ (train-defaults ovi --install)")
    full = SCALES["full"]
    assert (OVI_SECONDS, OVI_SIZE, OVI_FPS) == (full.seconds, full.size, FPS)  # the sample is what it was trained on
    clip = ovi_sample_clip()
    inp, out, models = tmp_path / "input", tmp_path / "output", tmp_path / "models"
    write_workflow_samples(inp)
    models.mkdir()
    for name in ("t2av_ovi", "i2av_ovi"):
        workflow = pack_defaults.DEFAULTS_DIR.parent / "workflows" / f"{name}.json"
        builder = next(n["widgets_values"] for n in json.loads(workflow.read_text())["nodes"]
                       if n["type"] == "SoundstageOviPromptBuilder")
        # the prompt is the sample clip's caption in the format the default was trained on
        assert f"{builder[0]} <S>{builder[1]}<E>" == prompt(clip.truth["caption"])
        Runner(input_dir=inp, output_dir=out, models_dir=models).run(workflow)
    (t2av,), (i2av,) = sorted(out.rglob("t2av_*.mp4")), sorted(out.rglob("i2av_*.mp4"))
    for path in (t2av, i2av):
        frames, wave, rate = video_and_audio(path)
        assert frames.shape == clip.frames.shape  # 2 s, 64 px, 24 fps
        assert abs(len(wave) / rate - OVI_SECONDS) < 0.05 and ovi_eval.voiced_seconds(wave, rate) > 0.1  # it speaks
        assert "red" in ovi_eval.seen_colours(frames)  # the caption's ball (loose: the card has the held-out share)
    # i2av starts from the sample's first frame: its red ball where the image has it (t2av's was 13 px away)
    ball = [np.argwhere(ovi_eval.colour_masks(f[None])["red"][0]).mean(0)
            for f in (clip.frames[0], video_and_audio(i2av)[0][0])]
    assert np.isfinite(ball[1]).all() and np.abs(ball[0] - ball[1]).max() < 4
