"""Held-out evaluation of a video-to-audio default: (a) the default, (b) the default given another clip's
video, (c) the untrained network, (d) ground truth and its codec round trip, with the onset metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...metrics.events import envelope_event_sync, event_sync, log10_mel_envelope
from ...models.common.checkpoint import load_file
from ...models.common.codecs.bigvgan import load_bigvgan
from ...models.common.codecs.mel import MEL_16K, LogMel
from ...models.common.codecs.mmaudio_vae import load_mel_vae
from .report import write_report
from .sync_proxy import probe_report
from .world import event_times, world_clips

CONDITIONS = ("default", "mismatched", "untrained", "codec_round_trip", "truth")


def load_mel_vae_and_vocoder(weights: Path, files: dict):
    return (load_mel_vae(load_file(weights / files["vae"]), dtype=torch.float32),
            load_bigvgan(load_file(weights / files["vocoder"]), dtype=torch.float32))


def load_v2a(weights: Path, files: dict):
    from ...models.audiogen_omni.loader import load_mmdit
    from ...models.audiogen_omni.synchformer import load_synchformer

    vae, voc = load_mel_vae_and_vocoder(weights, files)
    sf = load_synchformer(load_file(weights / files["synchformer"]), dtype=torch.float32)
    net, _ = load_mmdit(weights / files["mmdit"], dtype=torch.float32)
    return vae, voc, sf, net


@torch.no_grad()
def _render(net, vae, voc, sync: torch.Tensor, seconds: float, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(wave, decoded log-mel [80, F]) of one sample."""
    from ...models.audiogen_omni.sampler import generate

    res = generate(net, duration_s=seconds, seed=seed, num_steps=steps, cfg_scale=1.0, sync_f=sync[None])
    mel = vae.decode(res.latent.transpose(1, 2))
    return voc(mel)[0, 0].numpy(), mel[0].numpy()


def untrained_like(net, seed: int):
    """The MMDiT the recipe starts from (its seed), with the trained one's latent normalisation: baseline (c)."""
    from ...models.audiogen_omni.mmdit import MMDiT

    torch.manual_seed(seed + 2)
    untrained = MMDiT(net.config).eval()
    untrained.latent_mean.data.copy_(net.latent_mean.data)
    untrained.latent_std.data.copy_(net.latent_std.data)
    return untrained


@torch.no_grad()
def evaluate_v2a(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from . import audiogen_omni as ag

    out.mkdir(parents=True, exist_ok=True)
    vae, voc, sf, net = load_v2a(weights, ag.FILES)
    untrained = untrained_like(net, seed)
    held = world_clips("heldout", clips, task="v2a", stems=("effects",), seconds=scale.seconds, size=scale.size)
    syncs = [ag.sync_features(sf, c.frames, c.fps, scale.seconds) for c in held]
    mel = LogMel(MEL_16K)
    rate = MEL_16K.sample_rate
    rows = []
    for i, c in enumerate(held):
        events = event_times(c.truth)
        all_events = sorted(events["impacts"] + events["beeps"])
        _, m = ag.codecs.waves_and_mels([c.audio], mel)[0]
        round_mel = vae.decode(vae.encode(m[None])[0])
        rendered = {
            "default": _render(net, vae, voc, syncs[i], scale.seconds, scale.sample_steps, seed + i),
            "mismatched": _render(net, vae, voc, syncs[(i + 1) % len(held)], scale.seconds, scale.sample_steps, seed + i),
            "untrained": _render(untrained, vae, voc, syncs[i], scale.seconds, scale.sample_steps, seed + i),
            "codec_round_trip": (voc(round_mel)[0, 0].numpy(), round_mel[0].numpy()),
            "truth": (c.audio, m.numpy()),
        }
        row = {"clip": f"heldout/{c.index}", "events": len(all_events)}
        kinds = [(k, ev) for k, ev in (("all", all_events), ("impacts", events["impacts"]), ("beeps", events["beeps"])) if ev]
        for name, (wave, mel_out) in rendered.items():
            # the wave (after the vocoder) and the decoded mel (before it): a weak vocoder shows as the difference
            row[name] = {kind: event_sync(wave, rate, ev) for kind, ev in kinds}
            env = log10_mel_envelope(mel_out)
            row[name] |= {f"mel_{kind}": envelope_event_sync(env, MEL_16K.frame_rate, ev) for kind, ev in kinds}
        rows.append(row)
    summary = summarise(rows)
    result = {"system": recipe.system, "task": "video_to_audio", "clips": [r["clip"] for r in rows],
              "conditions": list(CONDITIONS), "summary": summary, "per_clip": rows,
              # the Synchformer alone: events read back from its tokens (its stage's target, sync_proxy.py)
              "synchformer_probe": probe_report(syncs, [event_times(c.truth) for c in held])}
    write_report(out, result)
    return result


def summarise(rows: list[dict], conditions=CONDITIONS,
              kinds=("all", "impacts", "beeps", "mel_all", "mel_impacts", "mel_beeps")) -> dict:
    """Per condition and event kind: the median over all events of all clips (misses count as 200 ms)."""
    out = {}
    for cond in conditions:
        out[cond] = {}
        for kind in kinds:
            errs = [e for r in rows if kind in r[cond] for e in r[cond][kind]["errors_s"]]
            prec = [p for r in rows if kind in r[cond] if not np.isnan(p := r[cond][kind]["precision"])]
            if errs:
                out[cond][kind] = {"median_ms": round(float(np.median(errs)) * 1000, 1),
                                   "mean_ms": round(float(np.mean(errs)) * 1000, 1),
                                   "miss_rate": round(float(np.mean([e >= 0.2 for e in errs])), 3),
                                   "onset_precision": round(float(np.mean(prec)), 3) if prec else None,
                                   "events": len(errs)}
    return out


__all__ = ["CONDITIONS", "evaluate_v2a", "load_mel_vae_and_vocoder", "load_v2a", "summarise", "untrained_like"]
