"""Held-out evaluation of the AudioGen-Omni speech default (``video_to_speech``): silent talking clips and their
transcripts in, speech out, for (a) the default, (b) the default given another clip's video and transcript,
(c) and (d) the default without the video or without the transcript (each left at its learned empty feature:
where the timing comes from), (e) the untrained network, (f) ground truth and its codec round trip.

Metrics (issue targets): Int-Corr and duration error against the clip's own speech stem; Whisper tiny.en's WER
against the transcript. The Synchformer alone: how well its mouth channel follows the drawn mouth's openness.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...metrics.signals import pearson
from ...metrics.timing import dur_err, int_corr
from ...models.common.codecs.mel import MEL_16K, LogMel
from ...models.common.codecs.mel_refine import refine_to_mel
from .dualdub_eval import _mean, _median, _word_error
from .evaluate import load_v2a, untrained_like
from .report import write_report
from .sync_proxy import MOUTH, mouth_track, probe_grid, probe_report

CONDITIONS = ("default", "mismatched", "no_video", "no_text", "untrained", "codec_round_trip", "truth")
SCORED_WORDS = ("default", "no_video", "codec_round_trip", "truth")  # WER against the clip's own transcript


@torch.no_grad()
def vocode(voc, mel: torch.Tensor, refine_steps: int) -> np.ndarray:
    """The vocoder's wave for one mel [1, 80, F], refined onto it as the Vocoder node's ``refine_steps`` does."""
    return refine_to_mel(voc(mel), mel, MEL_16K, refine_steps)[0, 0].numpy()


def render_speech(net, vae, voc, *, sync: torch.Tensor | None, ids: torch.Tensor | None, seconds: float,
                  steps: int, seed: int, cfg: float = 1.0, refine_steps: int = 0, text=None) -> np.ndarray:
    """One sample's wave; a condition given as None stays at its learned empty feature (``text``: the prompt's
    TextFeatures, as the song default reads them)."""
    from ...models.audiogen_omni.sampler import generate

    lyrics_f = lyrics_mask = None
    if ids is not None:
        lyrics_f, lyrics_mask = net.encode_lyrics(ids[None])
    res = generate(net, duration_s=seconds, seed=seed, num_steps=steps, cfg_scale=cfg,
                   sync_f=None if sync is None else sync[None], lyrics_f=lyrics_f, lyrics_mask=lyrics_mask,
                   text_f=None if text is None else text.features, text_mask=None if text is None else text.mask)
    return vocode(voc, vae.decode(res.latent.transpose(1, 2)), refine_steps)


def lip_probe(streams: list[torch.Tensor], clips) -> dict:
    """Pearson r of the Synchformer's mouth channel (read back through the oracle's projection, averaged over the
    segments that see each tubelet) against the drawn mouth's openness, per clip; its mean and median."""
    rs = []
    for tokens, c in zip(streams, clips):
        grid, env = probe_grid(tokens, 3)
        rs.append(pearson(env[:, 2], mouth_track(grid, c.truth["mouth_openness"], c.fps)))
    return {"channel": MOUTH, "clips": len(rs), "r_mean": _mean(rs), "r_median": _median(rs)}


@torch.no_grad()
def evaluate_v2s(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from . import audiogen_omni_speech as sp
    from .audiogen_omni import sync_features
    from .world import event_times

    out.mkdir(parents=True, exist_ok=True)
    vae, voc, sf, net = load_v2a(weights, sp.FILES)
    untrained = untrained_like(net, seed)  # the same initialisation the recipe starts from
    held = sp.talking_clips("heldout", clips, scale)
    syncs = [sync_features(sf, c.frames, c.fps, scale.seconds) for c in held]
    frames = net.latent_len_for(scale.seconds)
    ids = [sp.lyrics_ids(c.truth["transcript"], frames) for c in held]
    mel = LogMel(MEL_16K)
    rate = MEL_16K.sample_rate
    rows = []
    for i, c in enumerate(held):
        j = (i + 1) % len(held)
        kw = {"seconds": scale.seconds, "steps": scale.sample_steps, "seed": seed + i,
              "refine_steps": scale.vocoder_refine_steps}
        (_, m), = sp.codecs.waves_and_mels([c.audio], mel)
        waves = {
            "default": render_speech(net, vae, voc, sync=syncs[i], ids=ids[i], **kw),
            "mismatched": render_speech(net, vae, voc, sync=syncs[j], ids=ids[j], **kw),
            "no_video": render_speech(net, vae, voc, sync=None, ids=ids[i], **kw),
            "no_text": render_speech(net, vae, voc, sync=syncs[i], ids=None, **kw),
            "untrained": render_speech(untrained, vae, voc, sync=syncs[i], ids=ids[i], **kw),
            "codec_round_trip": vocode(voc, vae.decode(vae.encode(m[None])[0]), scale.vocoder_refine_steps),
            "truth": c.audio,
        }
        row = {"clip": f"heldout/{c.index}", "transcript": c.truth["transcript"]}
        for name, wave in waves.items():
            wave = np.nan_to_num(np.asarray(wave, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            r = {"int_corr": int_corr(wave, c.audio, rate), "dur_err": dur_err(wave, c.audio, rate)}
            if name in SCORED_WORDS and (words := _word_error(wave, rate, c.truth["transcript"], "en")) is not None:
                r["wer"] = words
            row[name] = r
        rows.append(row)
    summary = {}
    for cond in CONDITIONS:
        ic = [r[cond]["int_corr"] for r in rows if np.isfinite(r[cond]["int_corr"])]
        de = [r[cond]["dur_err"] for r in rows if np.isfinite(r[cond]["dur_err"])]
        scored = [r[cond]["wer"] for r in rows if "wer" in r[cond]]
        summary[cond] = {"speech": {"int_corr_mean": _mean(ic), "int_corr_median": _median(ic),
                                    "dur_err_median": _median(de), "dur_err_mean": _mean(de),
                                    "wer_median": _median(scored) if scored else None}}
    result = {"system": recipe.system, "task": "video + transcript to speech", "clips": [r["clip"] for r in rows],
              "conditions": list(CONDITIONS), "summary": summary, "per_clip": rows,
              "decode": {"vocoder_refine_steps": scale.vocoder_refine_steps},
              "lip_probe": lip_probe(syncs, held),
              "synchformer_probe": probe_report(syncs, [event_times(c.truth) for c in held], channels=3)}
    result["table"] = table(result)
    write_report(out, result, text=markdown(result), metrics=("int_corr_mean", "dur_err_median"))
    return result


def markdown(result: dict) -> str:
    return "\n".join([f"# {result['system']}: {result['task']} on {len(result['clips'])} held-out clips", ""]
                     + table(result)) + "\n"


def table(result: dict) -> list[str]:
    """The metric table (report.md and the model card), as Markdown lines."""
    lines = ["Int-Corr: Pearson correlation of the 50 Hz RMS envelopes of the output and the clip's own speech stem "
             "(mean over clips); Dur-Err: relative error of the active speech span (median); WER: Whisper tiny.en "
             "against the transcript (median; 'n/a' where not scored). mismatched = another clip's video and "
             "transcript; no_video / no_text = that condition left at its learned empty feature. Every wave but truth "
             f"is the vocoder's with refine_steps {result['decode']['vocoder_refine_steps']}, as the video_to_speech "
             "workflow's Vocoder node decodes.", "",
             "| condition | Int-Corr mean | Int-Corr median | Dur-Err median | WER median |", "|---|---|---|---|---|"]
    for cond, kinds in result["summary"].items():
        m = kinds["speech"]
        wer = "n/a" if m["wer_median"] is None else m["wer_median"]
        lines.append(f"| {cond} | {m['int_corr_mean']} | {m['int_corr_median']} | {m['dur_err_median']} | {wer} |")
    lp, ev = result["lip_probe"], result["synchformer_probe"]
    lines += ["", f"Synchformer alone: its mouth channel against the drawn mouth's openness, Pearson r mean "
                  f"{lp['r_mean']} (median {lp['r_median']}) over {lp['clips']} clips; contacts and blinks read back "
                  f"from its tokens: median {ev['median_ms']} ms, miss rate {ev['miss_rate']} over {ev['events']} events."]
    return lines


__all__ = ["CONDITIONS", "evaluate_v2s", "lip_probe", "markdown", "render_speech", "table", "vocode"]
