"""Held-out evaluation of the DualDub default: talking clips (silent video + transcript + a reference recording of
the same speaker) soundtracked in one V2ST pass, for (a) the default, (b) the default given another clip's video,
(c) the untrained LM, (d) ground truth, and the truth through the codec (what the codec alone allows).

Metrics (issue targets): the background head's onsets against the ball contacts (and all events);
the speech head's Int-Corr and duration error against the clip's own speech (its energy follows the word
times); voice: resemblyzer similarity to the reference speaker against each of the other three; words: Whisper
tiny.en's WER against the transcript (English clips; the stretch target); the sampler's tokens with and without the
KV cache, and its speed.

Held-out clips are drawn in the scale's speech timing (``Scale.speech_timing``), the world the default was
trained on: with "varied" timing each clip's speech start and word pauses are its own, so the mismatched
condition (another clip's video) shows how much of the speech's timing the model reads from the lips.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ...metrics.asr import MetricUnavailable, transcribe, wer
from ...metrics.events import event_sync
from ...metrics.timing import dur_err, int_corr
from .evaluate import summarise
from .report import write_report
from .world import event_times

CONDITIONS = ("default", "mismatched", "untrained", "codec_round_trip", "truth")
BACKGROUND_KINDS = ("impacts", "all")


def load_parts(weights: Path, files: dict):
    from ...models.common.codecs.wavtokenizer import load_wavtokenizer
    from ...models.dualdub.io import load_dualdub
    from ...models.dualdub.vision import load_clip_vision

    model, tokenizer = load_dualdub(weights / files["lm"], dtype=torch.float32)
    codec = load_wavtokenizer(weights / files["codec"], dtype=torch.float32)
    clip = load_clip_vision(weights / files["clip"])
    return model, tokenizer, codec, clip


def _audio(wave: np.ndarray, rate: int) -> dict:
    return {"waveform": torch.as_tensor(np.asarray(wave, np.float32)).view(1, 1, -1), "sample_rate": rate}


def _word_error(wave: np.ndarray, rate: int, transcript: str, language: str) -> float | None:
    """Whisper tiny.en's WER of ``wave`` against ``transcript``; None when Whisper is absent or cannot score it."""
    try:
        return round(wer(transcribe(wave, rate, language), transcript), 3)
    except MetricUnavailable:
        return None


def _voice_similarities(wave: np.ndarray, rate: int, references: list[np.ndarray], ref_rate: int) -> list[float] | None:
    """Resemblyzer cosine similarity of ``wave`` to each speaker's reference; None when resemblyzer is absent."""
    from ...metrics import speaker

    try:
        e = speaker.embed(wave, rate)
        refs = [speaker.embed(r, ref_rate) for r in references]
    except MetricUnavailable:
        return None
    return [float(np.dot(e, r) / (np.linalg.norm(e) * np.linalg.norm(r) + 1e-12)) for r in refs]


@torch.no_grad()
def kv_cache_check(model, tokenizer, video: dict, speaker: dict, text: dict, seconds: float, seed: int,
                   temperature: float, top_k: int) -> dict:
    """The same seed with and without the KV cache: identical tokens? And steps per second of each path."""
    from ...models.dualdub.sampler import SamplingOptions, generate, steps_for_duration

    steps = steps_for_duration(seconds, model.config.token_rate)
    cond = model.conditions(text_ids=text["ids"], speaker=speaker["embedding"], video=video["features"],
                            video_times=video["times"])
    opts = SamplingOptions(temperature=temperature, top_k=top_k, seed=seed, min_steps=steps)
    out, secs = {}, {}
    for cached in (True, False):
        start = time.perf_counter()
        out[cached] = generate(model, cond, steps, task="v2st", options=opts, use_cache=cached)
        secs[cached] = time.perf_counter() - start
    same = torch.equal(out[True].audio, out[False].audio) and torch.equal(out[True].speech, out[False].speech)
    return {"identical": bool(same), "steps": steps, "tokens_per_step": 2,
            "tokens_per_s_cached": round(2 * steps / secs[True], 1),
            "tokens_per_s_uncached": round(2 * steps / secs[False], 1), "threads": torch.get_num_threads()}


@torch.no_grad()
def evaluate_dualdub(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from ...models.dualdub.model import DualDub
    from ...models.dualdub.sampler import SamplingOptions
    from ...pipelines import dualdub as pipeline
    from . import dualdub as dd
    from . import wavtokenizer as wt

    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, codec, clip = load_parts(weights, dd.FILES)
    torch.manual_seed(seed + 3)
    untrained = DualDub(model.config).eval()  # the initialisation the recipe's curriculum starts from
    # held-out clips, then one more clip per speaker: the reference voices (speaker = index % 4)
    held = dd.talking_clips("heldout", clips + 4, scale)
    held, refs = held[:clips], held[clips:]
    ref_of = {r.spec.speaker: r for r in refs}
    names = [r.spec.speaker for r in refs]
    rate = codec.sample_rate
    videos = [pipeline.video_features(clip, torch.from_numpy(c.frames).float() / 255.0, c.spec.fps) for c in held]
    opts = SamplingOptions(temperature=scale.temperature, top_k=scale.top_k)
    rows, kv = [], None
    for i, c in enumerate(held):
        ref = ref_of[c.spec.speaker]
        speaker = pipeline.speaker_embedding(model, _audio(ref.stems["speech"], ref.spec.sample_rate), 3.0)
        speaker_u = pipeline.speaker_embedding(untrained, _audio(ref.stems["speech"], ref.spec.sample_rate), 3.0)
        text = pipeline.text_ids(tokenizer, c.truth["transcript"], model.config.text_vocab_size)
        truth_bg = wt.to_codec_rate(c.stems["effects"], c.spec.sample_rate)
        truth_sp = wt.to_codec_rate(c.stems["speech"], c.spec.sample_rate)

        def sample(net, video, spk):
            tokens = pipeline.generate_tokens(net, tokenizer, text, task="v2st",
                                              options=replace(opts, seed=seed + i),
                                              video=video, speaker=spk)
            bg, sp = pipeline.decode_tokens(codec, tokens)
            return bg["waveform"][0, 0].numpy(), sp["waveform"][0, 0].numpy()

        def round_trip(wave):
            return codec.decode_codes(codec.encode(wave[None])[1][0])[0, : len(wave)].numpy()

        rendered = {"default": sample(model, videos[i], speaker),
                    "mismatched": sample(model, videos[(i + 1) % len(held)], speaker),
                    "untrained": sample(untrained, videos[i], speaker_u),
                    "codec_round_trip": (round_trip(truth_bg), round_trip(truth_sp)),
                    "truth": (truth_bg.numpy(), truth_sp.numpy())}
        if kv is None:
            kv = kv_cache_check(model, tokenizer, videos[i], speaker, text, c.spec.seconds, seed + i,
                                scale.temperature, scale.top_k)
        events = event_times(c.truth)
        kinds = {"impacts": events["impacts"], "all": sorted(events["impacts"] + events["beeps"])}
        row = {"clip": f"heldout/{c.spec.seed}", "speaker": c.spec.speaker, "transcript": c.truth["transcript"]}
        for name, (bg, sp) in rendered.items():
            # a diverged model's NaN/inf samples are scored as silence, and counted
            bad = int((~np.isfinite(bg)).sum() + (~np.isfinite(sp)).sum())
            bg, sp = np.nan_to_num(bg, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(sp, nan=0.0, posinf=0.0, neginf=0.0)
            r = {kind: event_sync(bg, rate, ev) for kind, ev in kinds.items() if ev}
            r["non_finite_samples"] = bad
            r["int_corr"] = int_corr(sp, truth_sp.numpy(), rate)
            r["dur_err"] = dur_err(sp, truth_sp.numpy(), rate)
            sims = _voice_similarities(sp, rate, [ref_of[n].stems["speech"] for n in names], ref.spec.sample_rate)
            if sims is not None:
                own = names.index(c.spec.speaker)
                r["voice"] = {"similarities": dict(zip(names, sims)),
                              "own_highest": bool(all(sims[own] > s for k, s in enumerate(sims) if k != own))}
            words = _word_error(sp, rate, c.truth["transcript"], c.spec.language)
            if words is not None:
                r["wer"] = words
            row[name] = r
        rows.append(row)
    summary = summarise(rows, CONDITIONS, BACKGROUND_KINDS)
    for cond in CONDITIONS:
        ic = [r[cond]["int_corr"] for r in rows if np.isfinite(r[cond]["int_corr"])]
        de = [r[cond]["dur_err"] for r in rows if np.isfinite(r[cond]["dur_err"])]
        summary[cond]["speech"] = {"int_corr_mean": _mean(ic), "int_corr_median": _median(ic),
                                   "dur_err_median": _median(de), "dur_err_mean": _mean(de)}
        scored = [r[cond]["wer"] for r in rows if "wer" in r[cond]]
        summary[cond]["words"] = ({"wer_median": _median(scored), "wer_mean": _mean(scored), "clips": len(scored)}
                                  if scored else {"skipped": "Whisper tiny.en is not installed or the clips are not English"})
        voiced = [r[cond]["voice"] for r in rows if "voice" in r[cond]]
        summary[cond]["voice"] = ({"own_highest_share": round(float(np.mean([v["own_highest"] for v in voiced])), 3),
                                   "clips": len(voiced)} if voiced else
                                  {"skipped": "resemblyzer is not installed: no voice similarity"})
    # the speaker encoder alone: nearest-centroid (leave-one-out) speaker of each held-out clip's speech
    from .dualdub_encoders import SPEAKER_NAMES, speaker_accuracy

    everyone = held + refs
    accuracy = speaker_accuracy(model.speaker_encoder, [wt.to_codec_rate(c.stems["speech"], c.spec.sample_rate)
                                                        for c in everyone],
                                [SPEAKER_NAMES.index(c.spec.speaker) for c in everyone], rate)
    result = {"system": recipe.system, "task": "v2st (speech + background)", "clips": [r["clip"] for r in rows],
              "speech_timing": scale.speech_timing,
              "conditions": list(CONDITIONS), "summary": summary, "kv_cache": kv,
              "speaker_encoder_accuracy": round(accuracy, 3), "per_clip": rows}
    result["table"] = table(result)
    write_report(out, result, text=markdown(result), metrics=("median_ms", "int_corr_mean", "own_highest_share"))
    return result


def _mean(x) -> float | None:
    return round(float(np.mean(x)), 3) if len(x) else None


def _median(x) -> float | None:
    return round(float(np.median(x)), 3) if len(x) else None


def markdown(result: dict) -> str:
    return "\n".join([f"# {result['system']}: {result['task']} on {len(result['clips'])} held-out clips "
                      f"({result.get('speech_timing', 'fixed')} speech timing)", ""]
                     + table(result)) + "\n"


def table(result: dict) -> list[str]:
    """The metric table (report.md and the model card) and the sampler's line, as Markdown lines."""
    s = result["summary"]
    lines = ["Background: each ground-truth event matched to the nearest onset of the background head's audio "
             "(median ms, a miss = 200 ms; precision = share of onsets within 100 ms of an event). Speech: Int-Corr "
             "and duration error against the clip's own speech. Voice: share of clips whose speech is closer "
             "(resemblyzer) to the reference speaker than to each of the other three. Words: Whisper tiny.en's WER "
             "against the transcript (median).", "",
             "| condition | impacts median ms | impacts miss rate | all events median ms | onset precision | "
             "Int-Corr mean | Dur-Err median | voice own-highest | WER median |", "|---|---|---|---|---|---|---|---|---|"]
    for cond, m in s.items():
        imp, al = m.get("impacts", {}), m.get("all", {})
        voice = m["voice"].get("own_highest_share", "skipped")
        words = m.get("words", {}).get("wer_median", "skipped")
        lines.append(f"| {cond} | {imp.get('median_ms')} | {imp.get('miss_rate')} | {al.get('median_ms')} | "
                     f"{al.get('onset_precision')} | {m['speech']['int_corr_mean']} | {m['speech']['dur_err_median']} | "
                     f"{voice} | {words} |")
    kv = result.get("kv_cache") or {}
    lines += ["", f"Sampler: tokens with and without the KV cache identical: **{kv.get('identical')}**; "
              f"{kv.get('tokens_per_s_cached')} tokens/s with the cache, {kv.get('tokens_per_s_uncached')} without "
              f"({kv.get('steps')} steps of 2 tokens, {kv.get('threads')} CPU threads).",
              "", f"Speaker encoder alone (nearest speaker centroid, leave-one-out, held-out speech): accuracy "
              f"{result.get('speaker_encoder_accuracy')} (chance 0.25)."]
    return lines


__all__ = ["CONDITIONS", "evaluate_dualdub", "kv_cache_check", "load_parts", "markdown", "table"]
