"""``eval-defaults audiogen_omni_song``: does the sung line follow the tune the prompt names?

Per held-out song clip (the world sings its sentence to a named tune; synthworld/song.py): the melody accuracy of the
output (YIN f0 every 10 ms; the share of voiced frames inside the clip's notes within a semitone, metrics/pitch.py),
and the timing of its envelope against the sung stem (Int-Corr, Dur-Err). Conditions: the default; mismatched (the
prompt names another tune: the melody must move away); no_text (the prompt left at its learned empty feature);
speech_base (the speech MMDiT it was fine-tuned from); untrained; the codec's round trip; the truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...metrics.pitch import Note, melody_accuracy, track_f0
from ...metrics.timing import dur_err, int_corr
from ...models.common.codecs.mel import MEL_16K, LogMel
from .dualdub_eval import _mean, _median
from .evaluate import load_mel_vae_and_vocoder, untrained_like
from .report import write_report
from .speech_eval import render_speech, vocode

CONDITIONS = ("default", "mismatched", "no_text", "speech_base", "untrained", "codec_round_trip", "truth")


def other_tune(tune: str) -> str:
    from ...synthworld.song import TUNES

    names = sorted(TUNES)
    return names[(names.index(tune) + 1) % len(names)]


def render_song(net, vae, voc, encoder, *, prompt: str | None, ids: torch.Tensor, seconds: float, steps: int,
                seed: int, refine_steps: int, cfg: float = 1.0) -> np.ndarray:
    """The speech default's sampling and decoding, with the prompt through the text stream and no video."""
    text = None if prompt is None else encoder.encode([prompt])
    return render_speech(net, vae, voc, sync=None, ids=ids, seconds=seconds, steps=steps, seed=seed, cfg=cfg,
                         refine_steps=refine_steps, text=text)


@torch.no_grad()
def evaluate_song(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from ...models.audiogen_omni.loader import load_mmdit
    from . import audiogen_omni_song as song
    from . import codecs
    from .audiogen_omni_speech import lyrics_ids

    out.mkdir(parents=True, exist_ok=True)
    speech_vae, speech_voc, base, _ = song.speech_parts()
    vae, voc = load_mel_vae_and_vocoder(weights, song.FILES)
    net, _ = load_mmdit(weights / song.FILES["mmdit"], dtype=torch.float32)
    encoder = song.text_encoder(weights, net.config.text_seq_len)
    untrained = untrained_like(net, seed)
    held = song.song_clips("heldout", clips, scale)
    frames = net.latent_len_for(scale.seconds)
    mel = LogMel(MEL_16K)
    rate = MEL_16K.sample_rate
    rows = []
    for i, c in enumerate(held):
        ids = lyrics_ids(c.truth["transcript"], frames)
        kw = {"ids": ids, "seconds": scale.seconds, "steps": scale.sample_steps, "seed": seed + i,
              "refine_steps": scale.vocoder_refine_steps, "cfg": scale.sample_cfg}
        prompt = song.song_prompt(c.truth)
        (_, m), = codecs.waves_and_mels([c.audio], mel)
        waves = {
            "default": render_song(net, vae, voc, encoder, prompt=prompt, **kw),
            "mismatched": render_song(net, vae, voc, encoder, prompt=song.song_prompt(c.truth, other_tune(c.truth["tune"])), **kw),
            "no_text": render_song(net, vae, voc, encoder, prompt=None, **kw),
            "speech_base": render_song(base, speech_vae, speech_voc, None, prompt=None, **kw),
            "untrained": render_song(untrained, vae, voc, encoder, prompt=prompt, **kw),
            "codec_round_trip": vocode(voc, vae.decode(vae.encode(m[None])[0]), scale.vocoder_refine_steps),
            "truth": c.audio,
        }
        notes = [Note(n["start"], n["end"], n["hz"]) for n in c.truth["notes"]]
        row = {"clip": f"heldout/{c.index}", "prompt": prompt, "transcript": c.truth["transcript"]}
        for name, wave in waves.items():
            wave = np.nan_to_num(np.asarray(wave, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            acc = melody_accuracy(*track_f0(wave, rate), notes)
            row[name] = {"within_share": acc["within_share"], "median_abs_semitones": acc["median_abs_semitones"],
                         "voiced_share": acc["voiced_share"], "int_corr": int_corr(wave, c.audio, rate),
                         "dur_err": dur_err(wave, c.audio, rate)}
        rows.append(row)
    summary = {}
    for cond in CONDITIONS:
        r = [row[cond] for row in rows]
        dev = [x["median_abs_semitones"] for x in r if x["median_abs_semitones"] is not None]
        summary[cond] = {"song": {
            "melody_within_mean": _mean([x["within_share"] for x in r]),
            "melody_within_median": _median([x["within_share"] for x in r]),
            "semitones_median": _median(dev), "voiced_mean": _mean([x["voiced_share"] for x in r]),
            "int_corr_mean": _mean([x["int_corr"] for x in r if np.isfinite(x["int_corr"])]),
            "dur_err_median": _median([x["dur_err"] for x in r if np.isfinite(x["dur_err"])])}}
    result = {"system": recipe.system, "task": "song from lyrics and a named tune", "clips": [r["clip"] for r in rows],
              "conditions": list(CONDITIONS), "summary": summary, "per_clip": rows,
              "decode": {"vocoder_refine_steps": scale.vocoder_refine_steps, "cfg": scale.sample_cfg,
                         "steps": scale.sample_steps}}
    result["table"] = table(result)
    write_report(out, result, text="\n".join([f"# {recipe.system}: {result['task']} on {len(rows)} held-out clips",
                                               ""] + result["table"]) + "\n",
                 metrics=("melody_within_mean", "int_corr_mean"))
    return result


def table(result: dict) -> list[str]:
    lines = ["Melody: YIN f0 of the output every 10 ms; the share of voiced frames inside the clip's notes within a "
             "semitone of the note (mean over clips), and the median distance in semitones. Int-Corr / Dur-Err: the "
             "envelope against the clip's sung stem. mismatched = the prompt names another tune; no_text = the prompt "
             "at its learned empty feature; speech_base = the speech default's MMDiT, VAE and vocoder, which this one's were fine-tuned from. Every wave "
             f"but truth is the vocoder's with refine_steps {result['decode']['vocoder_refine_steps']}; the MMDiT "
             f"samples {result['decode']['steps']} Euler steps at guidance {result['decode']['cfg']}.", "",
             "| condition | melody within 1 st (mean) | semitones off (median) | voiced | Int-Corr mean | Dur-Err median |",
             "|---|---|---|---|---|---|"]
    for cond, kinds in result["summary"].items():
        m = kinds["song"]
        lines.append(f"| {cond} | {m['melody_within_mean']} | {m['semitones_median']} | {m['voiced_mean']} | "
                     f"{m['int_corr_mean']} | {m['dur_err_median']} |")
    return lines


__all__ = ["CONDITIONS", "evaluate_song", "render_song", "table"]
