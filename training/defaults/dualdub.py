"""DualDub tiny default: a WavTokenizer, a CLIP frame encoder, the speaker encoder, then the dual-head LM
through the paper's three-stage curriculum (3.4: V2A, then + TTS, then + V2ST), by the code of
``train dualdub --stage 1..3`` on a manifest folder written from the world's clips.

Clips are the world's ``full`` task (the face speaks a grammar sentence while balls bounce and the lamp
beeps), in the world's speech timing named by ``Scale.speech_timing``: ``fixed`` (the shipped default: speech
starts at 0.3 s, espeak-ng's word timing) or ``varied`` (each clip draws its speech start and its pauses between
words, so the speech's timing is on the lips, not in the transcript; the 400-clip LM did not learn it,
benchmarks/tiny_defaults_feasibility.md). The background track
is the effects stem (impacts and beeps: the sounds the video shows; the world's music is left out, it would
be an off-screen track the video cannot predict) and the speech track the speech stem. Each training clip
gives one manifest entry per task; a TTS / V2ST entry's reference voice is another training clip of the same
speaker (speakers go round the clip index, synthworld.splits), so the speaker encoder learns the voice, not
the sentence. Stages resume by key (``stage_keys``): a rerun of the same work folder takes every stage whose
settings are unchanged, and an LM stage stopped midway resumes from its last trainer checkpoint.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ...synthworld import generate_clip
from ...synthworld.splits import clip_spec
from . import dualdub_encoders as enc
from . import wavtokenizer as wt
from .stages import curve_entry, finished, record, run_stage, write_train_report

SYSTEM = "dualdub"
PREFIX = "soundstage-tiny/dualdub"
FILES = {"lm": "dualdub.safetensors", "tokenizer": "dualdub.tokenizer.json",
         "codec": "wavtokenizer_40tps.safetensors", "clip": "clip_vision.safetensors"}
FOLDERS = {"lm": "soundstage_dualdub", "tokenizer": "soundstage_dualdub", "codec": "audio_encoders",
           "clip": "clip_vision"}


@dataclass(frozen=True)
class Scale:
    train_clips: int
    seconds: float
    size: int  # frame size (px); also the tiny CLIP's input size (a multiple of its 8 px patch)
    codec_steps: int
    clip_steps: int
    speaker_steps: int
    lm_steps: tuple[int, int, int]  # curriculum stages 1 (V2A), 2 (+TTS), 3 (+V2ST)
    batch: int = 8
    lr: float = 1e-3
    lm_lr: float = 1e-3
    bins: int = 512
    codec_width: int = 64
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    vocab: int = 400
    temperature: float = 1.0
    top_k: int = 0
    diagnostic_clips: int = 8  # held-out clips that measure the frame and speaker encoders (never trained on)
    # The world's speech timing for training and held-out clips alike (synthworld.splits): "varied" draws each
    # clip's speech start and word pauses, so the lips, not the transcript, say when the words come. A training
    # setting: every stage's key holds it, so a changed world retrains.
    speech_timing: str = "varied"
    # Speech-only sentences (the train split's indices after the clips', no frames rendered) added to the TTS task
    # of curriculum stages 2 and 3: paper 3.4's stage 2 learns TTS from a speech corpus, not from video clips.
    tts_clips: int = 0
    lm_schedule: str = "constant"  # each curriculum stage's learning-rate schedule (``train dualdub --schedule``)
    # Copies of each clip's V2ST entry in the manifest: curriculum stage 3 draws its one new task this much more
    # often than V2A and TTS. Paper 3.4 adds "minimal new corpora" per stage; with 1000 V2ST clips beside 4000 TTS
    # sentences, the speech head saw the video one batch row in six. Stage 3 only reads it (stage_keys).
    v2st_repeats: int = 1


# 5 s clips: the grammar's longest English sentence takes 4.1 s of words alone (median 2.9 s over the first 400
# training clips). In 4 s clips synthworld.speech.varied_timing had to scale the draws down on 92 % of those clips
# (to 0.44 on the median one; one clip in ten had no room for any: speech start 0.2-0.6 s, 10-90 %); in 5 s
# clips 62 % keep their draws whole, 90 % keep at least 0.64 of them, and the start spreads over 0.3-1.0 s.
TALKING_SECONDS = 5.0

SCALES = {
    "smoke": Scale(train_clips=4, seconds=1.0, size=32, codec_steps=2, clip_steps=2, speaker_steps=2,
                   lm_steps=(1, 1, 1), batch=2, bins=32, codec_width=32, hidden=32, heads=2, vocab=300,
                   diagnostic_clips=4),
    # minutes on a 2-core CPU: measured in benchmarks/tiny_defaults_feasibility.md (DualDub)
    "feasibility": Scale(train_clips=48, seconds=TALKING_SECONDS, size=64, codec_steps=600, clip_steps=300,
                         speaker_steps=200, lm_steps=(300, 300, 400)),
    # the shipped default (benchmarks/tiny_defaults_feasibility.md, DualDub): 1000 clips and 3000 speech-only
    # sentences; the LM's steps alone cost ~0.12 s each on one thread, ~50 min for the whole recipe on 2 cores.
    # Sampled at temperature 0.7: chosen among 1.0 / 0.7 / 0.5 / 0.3 on held-out clips 0-7 (the card's table is
    # on clips 0-15): 1.0 scatters onsets and words (Int-Corr 0.29), 0.3 loses the voice (own-highest 0.63).
    # The world's fixed speech timing in 4 s clips: the same recipe in the varied timing (5 s clips) timed its
    # speech worse than another clip's video does (Int-Corr 0.09 vs 0.12 mismatched, 16 held-out clips).
    # Stages 2 and 3 at 6000 + 5000 steps: chosen on held-out clips 100-115 (a validation range apart from the
    # card's clips 0-15) among 3000 + 3000 / 8000 + 3000 / 6000 + 5000: Int-Corr 0.38 / 0.39 / 0.48.
    "full": Scale(train_clips=1000, seconds=4.0, size=64, codec_steps=2500, clip_steps=4000, speaker_steps=600,
                  lm_steps=(3000, 6000, 5000), hidden=96, layers=3, temperature=0.7, speech_timing="fixed",
                  tts_clips=3000, lm_schedule="cosine"),
}


SAMPLING = ("temperature", "top_k", "diagnostic_clips")  # read at evaluation only: a change retrains nothing


def training_settings(sc: Scale) -> dict:
    return {k: v for k, v in asdict(sc).items() if k not in SAMPLING}


# What each encoder's weights depend on: its clips (how many, how long, how they speak), its own settings, the seed.
_CLIPS = ("train_clips", "seconds", "speech_timing", "batch", "lr")
_ENCODER_SETTINGS = {"codec": _CLIPS + ("codec_steps", "bins", "codec_width"),
                     "clip": _CLIPS + ("size", "clip_steps"),
                     "speaker": _CLIPS + ("speaker_steps", "hidden")}  # the speaker encoder's width is the LM's


_STAGE3_ONLY = ("v2st_repeats",)  # stages 1 and 2 never read V2ST entries (models/dualdub/config.STAGE_TASKS)


def stage_keys(sc: Scale, seed: int) -> dict[str, dict]:
    """What each stage's weights depend on. An encoder: its own settings only, so a wider LM or more TTS sentences
    retrain no codec. An LM stage: every training setting but the steps of later LM stages and the settings of
    stage 3 alone (``_STAGE3_ONLY``), so more steps or more V2ST repeats for curriculum stage 3 retrain stage 3 only,
    and anything else retrains every LM stage."""
    settings = training_settings(sc) | {"seed": seed}
    common = {k: v for k, v in settings.items() if k not in ("lm_steps",) + _STAGE3_ONLY}
    encoders = {name: {k: settings[k] for k in names + ("seed",)} for name, names in _ENCODER_SETTINGS.items()}
    lm = {f"lm_stage{n}": common | {"lm_steps": list(sc.lm_steps[:n])} for n in (1, 2, 3)}
    lm["lm_stage3"] |= {k: settings[k] for k in _STAGE3_ONLY}
    return encoders | lm


def talking_clips(split: str, count: int, sc: Scale, start: int = 0) -> list:
    """The world's ``full`` clips of ``split`` (synthworld.splits seed ranges) in the scale's speech timing, with
    every stem."""
    return [generate_clip(clip_spec(split, i, task="full", seconds=sc.seconds, size=sc.size,
                                    speech_timing=sc.speech_timing))
            for i in range(start, start + count)]


def lm_config(sc: Scale, codec, text_vocab: int) -> dict:
    """DualDubConfig fields of the tiny LM (a Qwen2 trunk, as the released configuration's)."""
    lm = {"model_type": "qwen2", "hidden_size": sc.hidden, "num_hidden_layers": sc.layers,
          "num_attention_heads": sc.heads, "num_key_value_heads": max(1, sc.heads // 2),
          "intermediate_size": 2 * sc.hidden, "max_position_embeddings": 4096, "rope_theta": 10000.0,
          "vocab_size": 1}
    return dict(codebook_size=codec.codebook_size, token_rate=codec.sample_rate / codec.hop_length,
                codec_sample_rate=codec.sample_rate, text_vocab_size=text_vocab, video_dim=enc.CLIP_WIDTH,
                aligner_heads=2, speaker_dim=32, speaker_channels=sc.hidden, speaker_heads=2, n_mels=40, lm=lm)


def speech_corpus(sc: Scale) -> list:
    """``sc.tts_clips`` speech-only sentences: the train split's clips after the scale's own (other sentences, the
    same four speakers in turn), their speech stem and transcript only."""
    from ...synthworld.clip import speech_track

    out = []
    for i in range(sc.train_clips, sc.train_clips + sc.tts_clips):
        spec = clip_spec("train", i, task="full", seconds=sc.seconds, size=sc.size, speech_timing=sc.speech_timing)
        wave, _, _, transcript = speech_track(spec)
        out.append((wave, transcript, spec.sample_rate))
    return out


def write_manifest(clips: list, folder: Path, speech: list = (), v2st_repeats: int = 1) -> Path:
    """The ``train dualdub`` data folder: media files and manifest.json (one entry per clip and task, a TTS entry
    per ``speech_corpus`` sentence, then ``v2st_repeats - 1`` more copies of the V2ST entries)."""
    from ...media.save_audio import save_audio
    from ...synthworld.clip import write_video

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, c in enumerate(clips):
        rate = c.spec.sample_rate
        write_video(folder / f"v{i}.mp4", c.frames, c.spec.fps, None, rate)
        for stem, name in (("effects", "bg"), ("speech", "sp")):
            save_audio(folder / f"{name}{i}.wav", torch.from_numpy(c.stems[stem])[None], rate, "wav_float")
    n = len(clips)
    for i, c in enumerate(clips):
        ref = f"sp{(i + 4) % n}.wav"  # the same speaker (speaker = index % 4), another sentence
        text = c.truth["transcript"]
        entries += [{"video": f"v{i}.mp4", "background": f"bg{i}.wav", "task": "v2a"},
                    {"speech": f"sp{i}.wav", "transcript": text, "reference": ref, "task": "tts"},
                    {"video": f"v{i}.mp4", "background": f"bg{i}.wav", "speech": f"sp{i}.wav", "transcript": text,
                     "reference": ref, "task": "v2st"}]
    m = len(speech)
    for j, (wave, text, rate) in enumerate(speech):
        save_audio(folder / f"tts{j}.wav", torch.from_numpy(wave)[None], rate, "wav_float")
        # the reference is 4 sentences on: the same speaker (speakers go round the index), another sentence
        entries.append({"speech": f"tts{j}.wav", "transcript": text, "reference": f"tts{(j + 4) % m}.wav",
                        "task": "tts"})
    # appended, so the V2A and TTS entries keep their order: stages 1 and 2 draw the batches they draw without repeats
    entries += [e for e in entries if e["task"] == "v2st"] * (v2st_repeats - 1)
    (folder / "manifest.json").write_text(json.dumps(entries, indent=1))
    return folder


def lm_stage(stage: int, data: Path, out: Path, steps: int, sc: Scale, codec, clip, init: Path, seed: int,
             log: list, key: dict) -> Path:
    """One curriculum stage by ``train dualdub --stage N``'s own function; -> its checkpoint. Taken from an
    earlier run that finished it with the same ``key``; continued from a trainer checkpoint of one that stopped."""
    from ..dualdub.train import train

    name = f"lm_stage{stage}"
    folder = out / name
    ckpt = folder / f"dualdub_stage{stage}.safetensors"
    if ckpt.is_file() and finished(out, name, log, True, key):
        return ckpt
    # A stage stopped before its first trainer checkpoint restarts from the previous stage, not from the
    # config (``train`` rebuilds a fresh model when its folder has a config but no checkpoint to resume).
    started = folder / "key.json"
    same = started.is_file() and json.loads(started.read_text()) == json.loads(json.dumps(key))
    if not same or not any(folder.glob("checkpoint-*")):
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    started.write_text(json.dumps(key))
    start, cpu = time.time(), time.process_time()
    result = train(stage, data, folder, steps, codec=codec, clip=clip, init_from=init, batch_size=sc.batch,
                   lr=sc.lm_lr, seed=seed, save_every=max(50, steps // 4), schedule=sc.lm_schedule,
                   feature_cache=out / "lm_features")  # one cache for the three stages: each clip encoded once
    record(out, name, log, curve_entry(name, steps, time.time() - start, time.process_time() - cpu,
                                       result["history"]) | {"resumed_from_step": steps - len(result["history"]),
                                                             "key": key})
    return ckpt


def trained_world(weights: Path, sc: Scale) -> Scale:
    """``sc`` with the clips the weights were trained on (length and speech timing), read from their train report: a
    work folder's ``train_report.json`` beside ``weights/``, or the installed default's card. A report from before
    ``speech_timing`` existed was trained on the fixed timing."""
    from ... import defaults as pack_defaults

    lm = (weights / FILES["lm"]).resolve()
    report = lm.parent.parent / "train_report.json"
    settings = json.loads(report.read_text())["scale_settings"] if report.is_file() else None
    card = pack_defaults.card_path(SYSTEM).with_suffix(".json")
    installed = pack_defaults.file_path(FOLDERS["lm"], SYSTEM, FILES["lm"]).resolve()
    if settings is None and card.is_file() and lm == installed:
        settings = json.loads(card.read_text())["train"]["scale_settings"]
    if settings is None:
        return sc
    return replace(sc, seconds=settings["seconds"], speech_timing=settings.get("speech_timing", "fixed"))


class DualDubRecipe:
    system = SYSTEM
    card_clips = 16
    files = FILES
    folders = FOLDERS
    # what it is trained for; the card's held-out table says how well it does it
    can = ["trained to soundtrack a talking clip of the synthetic world in one pass: the background head's impacts "
           "and beeps, the speech head's sentence in the reference speaker's voice (24 kHz)",
           "background only (V2A) or speech only (TTS), the curriculum's first two tasks"]
    cannot = ["anything outside the cartoon world: real videos, real voices and free text give noise-like output",
              "music, or languages other than the world's English sentences",
              "audio above 8 kHz (the world is drawn at 16 kHz)"]

    def train(self, out_dir: str, *, scale: str = "feasibility", seed: int = 0) -> dict:
        from safetensors.torch import save_file

        from ...models.common.codecs.wavtokenizer import load_wavtokenizer
        from ...models.dualdub.config import V2A_PROMPT, DualDubConfig
        from ...models.dualdub.io import load_dualdub, save_dualdub
        from ...models.dualdub.model import DualDub
        from ...models.dualdub.text import train_bpe
        from ...models.dualdub.vision import load_clip_vision

        sc = SCALES[scale]
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        keys = stage_keys(sc, seed)
        weights = out / "weights"
        weights.mkdir(exist_ok=True)
        stages: list[dict] = []
        t0, cpu0 = time.time(), time.process_time()
        clips = talking_clips("train", sc.train_clips, sc)
        data = write_manifest(clips, out / "data", speech_corpus(sc), sc.v2st_repeats)
        data_s = time.time() - t0

        # 1. the codec, on both tracks' stems at 24 kHz
        waves = [wt.to_codec_rate(c.stems[s], c.spec.sample_rate) for c in clips for s in ("effects", "speech")]
        cfg = wt.tiny_config(sc.bins, sc.codec_width)
        codec = run_stage(wt.new_codec(cfg, seed, waves),
                          wt.CodecLoss(seed, autoencoder_steps=min(wt.AUTOENCODER_STEPS, sc.codec_steps // 5)),
                          wt.wave_batches(waves, sc.batch, seed, cfg.hop_length), sc.codec_steps, sc.lr, out, seed,
                          stages, "codec", resume=True, key=keys["codec"])
        save_file(wt.codec_state_dict(codec), str(weights / FILES["codec"]))
        codec = load_wavtokenizer(weights / FILES["codec"], dtype=torch.float32)  # what inference reads

        # 2. the frame encoder, on every frame of the training clips
        targets = [enc.frame_targets(c.truth, len(c.frames), c.spec.fps) for c in clips]
        batches = enc.clip_batches([c.frames for c in clips], targets, 4 * sc.batch, seed, sc.size)
        probe = run_stage(enc.ClipProbe(enc.tiny_clip(seed, sc.size)), enc.clip_loss, batches, sc.clip_steps, sc.lr,
                          out, seed, stages, "clip", resume=True, key=keys["clip"])
        save_file(enc.clip_state_dict(probe.tower), str(weights / FILES["clip"]))
        # measured, never trained on: how much of the frame targets the encoder carries on held-out clips
        held = talking_clips("heldout", sc.diagnostic_clips, sc)
        clip_r2 = enc.clip_r2(probe.eval(), [enc.clip_pixels(c.frames, sc.size) for c in held],
                              [enc.frame_targets(c.truth, len(c.frames), c.spec.fps) for c in held])
        clip = load_clip_vision(weights / FILES["clip"])
        mouth_r = enc.mouth_probe_r(clip, clips, held)  # the lips in the features the LM reads (what it times by)

        # 3. the LM's speaker encoder, alone, on the four speakers
        tokenizer = train_bpe([c.truth["transcript"] for c in clips] + [V2A_PROMPT], sc.vocab)
        torch.manual_seed(seed + 3)
        model = DualDub(DualDubConfig(**lm_config(sc, codec, tokenizer.get_vocab_size())))
        speech = [wt.to_codec_rate(c.stems["speech"], c.spec.sample_rate) for c in clips]
        labels = [enc.SPEAKER_NAMES.index(c.spec.speaker) for c in clips]
        run_stage(enc.SpeakerProbe(model.speaker_encoder, model.config.speaker_dim), enc.speaker_loss,
                  enc.speaker_batches(speech, labels, sc.batch, seed, codec.sample_rate), sc.speaker_steps, sc.lr,
                  out, seed, stages, "speaker", resume=True, key=keys["speaker"])
        speaker_acc = enc.speaker_accuracy(model.speaker_encoder, [wt.to_codec_rate(c.stems["speech"], c.spec.sample_rate)
                                                                   for c in held],
                                           [enc.SPEAKER_NAMES.index(c.spec.speaker) for c in held], codec.sample_rate)
        init = save_dualdub(out / "lm_init" / "dualdub_init.safetensors", model, tokenizer)

        # 4. the curriculum, stage by stage from the previous stage's checkpoint
        for stage, steps in zip((1, 2, 3), sc.lm_steps):
            init = lm_stage(stage, data, out, steps, sc, codec, clip, init, seed, stages, keys[f"lm_stage{stage}"])
        model, tokenizer = load_dualdub(init)
        save_dualdub(weights / FILES["lm"], model.half(), tokenizer)

        return write_train_report(
            out, SYSTEM, FILES, scale=scale, settings=asdict(sc), seed=seed, stages=stages, started=(t0, cpu0),
            train_seeds=[0, len(clips) - 1], data_s=round(data_s, 1),
            heldout_diagnostics={"clips": len(held), "speaker_accuracy": round(speaker_acc, 3),
                                 "clip_r2": dict(zip(("lamp", "mouth", "since_contact", "to_contact", "contact"),
                                                     clip_r2)),
                                 "mouth_probe_r": mouth_r})

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str = "feasibility", clips: int = 16,
                 seed: int = 0) -> dict:
        from .dualdub_eval import evaluate_dualdub

        weights = Path(weights_dir)  # held-out clips of the world the weights were trained on
        return evaluate_dualdub(self, weights, Path(out_dir), trained_world(weights, SCALES[scale]), clips=clips,
                                seed=seed)


RECIPE = DualDubRecipe()


__all__ = ["FILES", "RECIPE", "SCALES", "Scale", "lm_config", "talking_clips", "write_manifest"]
