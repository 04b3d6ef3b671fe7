"""AudioGen-Omni's speech default (video + transcript to speech): the Synchformer's mouth channel, the recipe's
stages, its evaluation, and the video_to_speech workflow as shipped."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file


from helpers import run_as_shipped, shipped_workflow

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed: no talking clips")


def test_mouth_channel_leaves_the_event_channels_as_they_were_and_reads_back():
    from soundstage.training.defaults import sync_proxy

    assert torch.equal(sync_proxy.projection(16, 3)[:2], sync_proxy.projection(16))
    events = {"impacts": [0.53, 1.21], "beeps": [0.9]}
    openness = list(np.clip(np.sin(np.arange(50) / 3.0), 0, 1).round(3))  # 2 s of a mouth at 25 fps
    plain = sync_proxy.oracle_stream(events, 50, 16)
    with_mouth = sync_proxy.oracle_stream(events, 50, 16, mouth=(openness, 25))
    times = sync_proxy.token_times(50)
    want = sync_proxy.mouth_track(times, openness, 25)
    read = sync_proxy.probe_channels(with_mouth, 3)
    assert np.allclose(read[:, 2], want, atol=1e-4)  # the oracle's mouth channel is the openness at each tubelet
    assert np.allclose(read[:, :2], sync_proxy.probe_channels(plain), atol=1e-4)
    assert not torch.allclose(plain, with_mouth)
    # the events are still found through the third channel
    found = sync_proxy.probe_events(with_mouth, channels=3)
    assert np.allclose(found["impacts"], events["impacts"], atol=0.005) and np.allclose(found["beeps"], [0.9], atol=0.005)
    # openness of frame k is taken at its centre: a tubelet between frames 4 and 5 reads their mean
    assert sync_proxy.mouth_track(np.array([5 / 25]), [0.0] * 4 + [0.2, 0.6] + [0.0] * 4, 25)[0] == pytest.approx(0.4)


@pytest.mark.parametrize("kernels, rates", [((11,), (8, 8, 4)), ((3, 7), (8, 16, 2))])
def test_speech_vocoder_kernels_and_rates_reach_the_file_and_load_back(kernels, rates):
    # the loader reads resblock kernels from the weights, assumes dilations (1, 3, 5) and infers each upsampling
    # rate from its kernel (2 x rate): a recipe setting must write a file that loads back as the same generator
    import dataclasses

    from soundstage.models.common.codecs.bigvgan import load_bigvgan
    from soundstage.training.defaults import audiogen_omni_speech as sp, codecs

    sc = dataclasses.replace(sp.SCALES["smoke"], vocoder_width=32, vocoder_kernels=kernels, vocoder_rates=rates)
    config = sp.speech_vocoder(sc)
    assert config.resblock_kernel_sizes == kernels and config.resblock_dilation_sizes == ((1, 3, 5),) * len(kernels)
    assert config.upsample_rates == rates and config.hop_length == 256
    voc = codecs.new_vocoder(0, config)
    sd = {k.removeprefix("generator."): v for k, v in codecs.vocoder_state_dict(voc).items()}
    loaded = load_bigvgan(sd, dtype=torch.float32)
    assert loaded.config.resblock_kernel_sizes == kernels and loaded.config.upsample_rates == rates
    assert loaded.config.sample_rate == 16_000
    mel = torch.randn(1, 80, 6)
    with torch.no_grad():
        out = loaded(mel)
        assert out.shape == (1, 1, 6 * 256) and torch.allclose(out, voc.half().float()(mel), atol=1e-4)
    with pytest.raises(ValueError, match="multiply to 128"):  # rates that miss the mel hop are refused
        sp.speech_vocoder(dataclasses.replace(sc, vocoder_rates=(8, 8, 2)))


def test_lyrics_ids_are_the_lyrics_node_ids_padded_to_the_latent_length():
    from soundstage.nodes.audiogen import encode_lyrics
    from soundstage.training.defaults.audiogen_omni_speech import lyrics_ids

    ids = lyrics_ids("anna carries the lamp", 40)
    node = encode_lyrics("anna carries the lamp", "auto", "none (UTF-8 symbols)")["ids"]
    assert ids.shape == (40,) and torch.equal(ids[: len(node)], node) and not ids[len(node):].any()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from soundstage.cli import main

    out = tmp_path_factory.mktemp("speech")
    assert main(["train-defaults", "audiogen_omni_speech", "--scale", "smoke", "--out", str(out / "a")]) == 0
    return out


@needs_espeak
def test_speech_recipe_writes_loadable_layouts_and_retrains_only_what_reads_a_change(smoke_run, monkeypatch):
    import dataclasses
    import shutil

    from soundstage.training.defaults import audiogen_omni_speech as sp
    from soundstage.training.defaults.evaluate import load_v2a

    vae, voc, sf, net = load_v2a(smoke_run / "a" / "weights", sp.FILES)
    assert net.config.lyrics_vocab == 257 and net.config.sync_dim == sf.config.embed_dim
    assert vae.config.latent_channels == net.config.latent_dim
    report = json.loads((smoke_run / "a" / "train_report.json").read_text())
    # the vocoder's stages ran in the second process, beside the three that never read it
    assert [(s["stage"], s.get("beside")) for s in report["stages"]] == [
        ("synchformer", None), ("vae", None), ("mmdit", None), ("vocoder", ["synchformer", "vae", "mmdit", "features"]),
        ("vocoder_gan", ["synchformer", "vae", "mmdit", "features"])]
    shipped = load_file(str(smoke_run / "a" / "vocoder_gan" / "final.safetensors"))
    assert all(torch.equal(v, shipped["g." + k].half().float()) for k, v in voc.state_dict().items())  # fp16 file
    assert report["train_seeds"][1] < 100_000
    work = smoke_run / "changed"
    shutil.copytree(smoke_run / "a", work)
    smoke = sp.SCALES["smoke"]

    def resumed(**change):
        monkeypatch.setitem(sp.SCALES, "smoke", dataclasses.replace(smoke, **change))
        return {s["stage"]: bool(s.get("resumed")) for s in sp.RECIPE.train(str(work), scale="smoke", seed=0)["stages"]}

    # the MMDiT reads the VAE's latents and the Synchformer's tokens, not the vocoder; the adversarial stage
    # starts from the regression vocoder
    assert resumed(vocoder_steps=smoke.vocoder_steps + 1) == {"synchformer": True, "vae": True, "vocoder": False,
                                                              "vocoder_gan": False, "mmdit": True}
    assert resumed(vocoder_steps=smoke.vocoder_steps + 1, vocoder_adversarial=0.05) == {
        "synchformer": True, "vae": True, "vocoder": True, "vocoder_gan": False, "mmdit": True}
    assert resumed(vocoder_steps=smoke.vocoder_steps + 1, vocoder_adversarial=0.05, lyrics_dropout=0.2) == {
        "synchformer": True, "vae": True, "vocoder": True, "vocoder_gan": True, "mmdit": False}
    # the discriminators are the adversarial stage's alone
    other = ("mpd", "mrd") if smoke.vocoder_gan_kinds == ("mpd",) else ("mpd",)
    assert resumed(vocoder_steps=smoke.vocoder_steps + 1, vocoder_adversarial=0.05, lyrics_dropout=0.2,
                   vocoder_gan_kinds=other) == {
        "synchformer": True, "vae": True, "vocoder": True, "vocoder_gan": False, "mmdit": True}
    # the speech stems are the vocoder's alone, rendered in its branch: a step of its own there
    assert resumed(vocoder_steps=smoke.vocoder_steps + 1, vocoder_adversarial=0.05, lyrics_dropout=0.2,
                   vocoder_gan_kinds=other, vocoder_data="speech") == {
        "synchformer": True, "vae": True, "vocoder_data": False, "vocoder": False, "vocoder_gan": False, "mmdit": True}
    report = json.loads((work / "train_report.json").read_text())
    assert [s["stage"] for s in report["stages"] if s.get("beside")] == ["vocoder_data", "vocoder", "vocoder_gan"]
    with pytest.raises(ValueError, match="vocoder_data 'mix'"):
        dataclasses.replace(smoke, vocoder_data="mix")


@needs_espeak
def test_speech_eval_writes_every_condition(smoke_run, tmp_path):
    from soundstage.cli import main

    out = tmp_path / "eval"
    assert main(["eval-defaults", "audiogen_omni_speech", "--weights", str(smoke_run / "a" / "weights"), "--scale",
                 "smoke", "--clips", "2", "--out", str(out)]) == 0
    result = json.loads((out / "audiogen_omni_speech" / "report.json").read_text())
    assert result["clips"] == ["heldout/0", "heldout/1"]
    s = result["summary"]
    assert set(s) == {"default", "mismatched", "no_video", "no_text", "untrained", "codec_round_trip", "truth"}
    assert s["truth"]["speech"]["int_corr_mean"] == pytest.approx(1.0) and s["truth"]["speech"]["dur_err_median"] == 0
    assert result["lip_probe"]["clips"] == 2 and "| no_video |" in (out / "audiogen_omni_speech" / "report.md").read_text()


@needs_espeak
def test_video_to_speech_workflow_runs_as_shipped_on_the_sample_input(tmp_path):
    from soundstage.synthworld.samples import speech_sample_clip

    workflow, widgets, card = shipped_workflow("audiogen_omni_speech", "video_to_speech")
    # the workflow speaks the sample clip's own sentence, and decodes as the card's numbers were measured
    assert widgets["SoundstageMMDiTLyricsEncode"][0] == speech_sample_clip().truth["transcript"]
    refine = widgets["SoundstageVocoder"]
    assert refine == [card["decode"]["vocoder_refine_steps"]] and refine[0] > 0
    seconds, loudest = run_as_shipped(workflow, tmp_path)
    assert abs(seconds - 4.0) < 0.1 and loudest > 1e-3  # the whole clip, and not silence
