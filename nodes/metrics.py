"""Evaluation nodes: numbers plus a short text report, shown on the node."""
from __future__ import annotations

import numpy as np

from ..compat import io, ui
from .errors import node_errors

CATEGORY = "Soundstage/Evaluation"


def _report(title: str, values: dict) -> str:
    lines = [title] + [f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}" for k, v in values.items()]
    return "\n".join(lines)


def _mono(audio: dict, node: str, name: str) -> tuple[np.ndarray, int]:
    from ..metrics.signals import to_mono

    if not isinstance(audio, dict) or "waveform" not in audio:
        raise ValueError(f"{node}: input '{name}' is not an AUDIO")
    wave = to_mono(audio["waveform"])
    if wave.size == 0:
        raise ValueError(f"{node}: input '{name}' is empty")
    return wave, int(audio["sample_rate"])


def av_sync_metrics(video, max_lag: int, speech: dict | None = None) -> dict:
    from ..metrics import sync

    node = "SoundstageAVSyncMetrics"
    comp = video.get_components()
    if comp.audio is None:
        raise ValueError(f"{node}: input 'video' has no audio track")
    frames = (comp.images.cpu().numpy() * 255).astype(np.uint8)
    fps = float(comp.frame_rate)
    wave, rate = _mono(comp.audio, node, "video")
    out = sync.av_align(frames, wave, rate, fps)
    if speech is not None:  # lip sync is judged on dialogue alone when it is given
        wave, rate = _mono(speech, node, "speech")
    out.update(sync.lip_sync(sync.synthworld_mouth_openness(frames), wave, rate, fps, max_lag=max_lag).as_dict(fps))
    return out


class AVSyncMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageAVSyncMetrics",
            display_name="AV Sync Metrics",
            category=CATEGORY,
            description="AV-Align (audio onsets vs motion peaks within 3 frames, MTV 7.3) and a lip-speech offset/"
                        "confidence from cross-correlating mouth opening with the speech envelope.",
            inputs=[io.Video.Input("video"),
                    io.Int.Input("max_lag", default=15, min=1, max=50, step=1, tooltip="frames searched each way"),
                    io.Audio.Input("speech", optional=True,
                                   tooltip="the dialogue stem; without it lip sync is measured on the video's audio")],
            outputs=[io.Float.Output(display_name="av_align"), io.Float.Output(display_name="sync_offset_ms"),
                     io.Float.Output(display_name="sync_confidence"), io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, max_lag, speech=None) -> io.NodeOutput:
        m = av_sync_metrics(video, max_lag, speech)
        text = _report("AV sync", m)
        return io.NodeOutput(m["av_align"], m["sync_offset_ms"], m["sync_confidence"], text, ui=ui.PreviewText(text))


class DubbingTimingMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageDubbingTimingMetrics",
            display_name="Dubbing Timing Metrics",
            category=CATEGORY,
            description="Int-Corr (Pearson of RMS envelopes) and Dur-Err (relative speech-duration error), JUST-DUB-IT 4.",
            inputs=[io.Audio.Input("dubbed"), io.Audio.Input("source")],
            outputs=[io.Float.Output(display_name="int_corr"), io.Float.Output(display_name="dur_err"),
                     io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, dubbed, source) -> io.NodeOutput:
        from ..metrics import timing

        node = "SoundstageDubbingTimingMetrics"
        from ..media.mono import mono_at_rate

        _mono(dubbed, node, "dubbed")  # checks the input
        b, rb = _mono(source, node, "source")
        a = mono_at_rate(dubbed, rb).numpy().astype(np.float64)
        m = {"int_corr": timing.int_corr(a, b, rb), "dur_err": timing.dur_err(a, b, rb)}
        text = _report("Dubbing timing", m)
        return io.NodeOutput(m["int_corr"], m["dur_err"], text, ui=ui.PreviewText(text))


class Intelligibility(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageIntelligibility",
            display_name="Intelligibility (WER)",
            category=CATEGORY,
            description="WER/CER of speech against a reference text with the bundled Whisper tiny.en (English only).",
            inputs=[io.Audio.Input("speech"), io.String.Input("reference_text", multiline=True, default="",
                                                        tooltip="what should have been said (the transcript)"),
                    io.Combo.Input("language", options=["en", "other"], default="en",
                                   tooltip="the bundled Whisper tiny.en is English only: 'other' is refused")],
            outputs=[io.Float.Output(display_name="wer"), io.Float.Output(display_name="cer"),
                     io.String.Output(display_name="transcript")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, reference_text, **kwargs):
        return True if reference_text.strip() else "reference_text is empty"

    @classmethod
    def execute(cls, speech, reference_text, language) -> io.NodeOutput:
        from ..metrics.asr import MetricUnavailable, intelligibility

        wave, rate = _mono(speech, "SoundstageIntelligibility", "speech")
        with node_errors("SoundstageIntelligibility", "language", MetricUnavailable):
            m = intelligibility(wave, rate, reference_text, language)
        text = _report("Intelligibility", m)
        return io.NodeOutput(m["wer"], m["cer"], m["transcript"], ui=ui.PreviewText(text))


class SpeakerSimilarity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageSpeakerSimilarity",
            display_name="Speaker Similarity",
            category=CATEGORY,
            description="Cosine similarity of resemblyzer voice embeddings (1 = same voice).",
            inputs=[io.Audio.Input("a"), io.Audio.Input("b")],
            outputs=[io.Float.Output(display_name="similarity")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, a, b) -> io.NodeOutput:
        from ..metrics.asr import MetricUnavailable
        from ..metrics.speaker import speaker_similarity

        node = "SoundstageSpeakerSimilarity"
        from ..media.mono import mono_at_rate

        wa, ra = _mono(a, node, "a")
        _mono(b, node, "b")  # checks the input
        wb = mono_at_rate(b, ra).numpy().astype(np.float64)
        with node_errors(node, None, MetricUnavailable):
            sim = speaker_similarity(wa, wb, ra)
        return io.NodeOutput(sim, ui=ui.PreviewText(f"speaker similarity: {sim:.4f}"))


def _frames_u8(images, node: str, name: str) -> np.ndarray:
    if images is None or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"{node}: input '{name}' must be IMAGE frames [N, H, W, 3]")
    import torch

    return (images[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


class LipMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLipMetrics",
            display_name="Lip Metrics (MAR / LMD)",
            category=CATEGORY,
            description="Mouth aspect ratio, its diversity, and landmark distance to a reference from mediapipe "
                        "face-mesh lip landmarks (JUST-DUB-IT A.1). Needs mediapipe==0.10.21 (optional).",
            inputs=[io.Image.Input("frames"), io.Image.Input("reference_frames", optional=True)],
            outputs=[io.Float.Output(display_name="mar"), io.Float.Output(display_name="mar_diversity"),
                     io.Float.Output(display_name="lmd"), io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, frames, reference_frames=None) -> io.NodeOutput:
        from ..metrics.asr import MetricUnavailable
        from ..metrics.lips import lip_metrics

        node = "SoundstageLipMetrics"
        ref = None if reference_frames is None else _frames_u8(reference_frames, node, "reference_frames")
        frames_u8 = _frames_u8(frames, node, "frames")
        with node_errors(node, None, MetricUnavailable):
            m = lip_metrics(frames_u8, ref)
        m.pop("mar_series")
        text = _report("Lip metrics", m)
        return io.NodeOutput(m["mar"], m["mar_diversity"], m.get("lmd", float("nan")), text, ui=ui.PreviewText(text))


class AudioEventMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageAudioEventMetrics",
            display_name="Audio Event & Quality Metrics",
            category=CATEGORY,
            description="Onset error against known event times (the Synthetic Clip's ground truth), spectral "
                        "flatness, and SI-SNR against a reference stem when one is connected.",
            inputs=[
                io.Audio.Input("audio"),
                io.String.Input("ground_truth", default="", multiline=True, optional=True,
                                tooltip="JSON with 'impacts'/'beeps' [{time}] or a list of event times in seconds"),
                io.Audio.Input("reference", optional=True, tooltip="ground-truth stem for SI-SNR"),
            ],
            outputs=[io.Float.Output(display_name="onset_error_ms"), io.Float.Output(display_name="spectral_flatness"),
                     io.Float.Output(display_name="si_snr_db"), io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, audio, ground_truth="", reference=None) -> io.NodeOutput:
        m = audio_event_metrics(audio, ground_truth, reference)
        text = _report("Audio events and quality", m)
        return io.NodeOutput(m["onset_error_ms"], m["spectral_flatness"], m["si_snr_db"], text, ui=ui.PreviewText(text))


def event_times(ground_truth: str, node: str) -> list[float]:
    import json

    if not ground_truth.strip():
        return []
    try:
        data = json.loads(ground_truth)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{node}: input 'ground_truth' is not JSON ({exc})") from exc
    if isinstance(data, list):
        return [float(t) for t in data]
    return [float(e["time"]) for key in ("impacts", "beeps") for e in data.get(key, [])]


def audio_event_metrics(audio: dict, ground_truth: str, reference: dict | None) -> dict:
    from ..metrics import quality, sync

    node = "SoundstageAudioEventMetrics"
    wave, rate = _mono(audio, node, "audio")
    times = event_times(ground_truth, node)
    out = {"onset_error_ms": sync.onset_error(wave, rate, times)["onset_error_ms"] if times else float("nan"),
           "events": len(times), "spectral_flatness": quality.spectral_flatness(wave), "si_snr_db": float("nan")}
    if reference is not None:
        ref, rr = _mono(reference, node, "reference")
        if rr != rate:
            raise ValueError(f"{node}: input 'reference' is at {rr} Hz but 'audio' is at {rate} Hz")
        out["si_snr_db"] = quality.snr_db(wave, ref)
    return out


NODES = [AVSyncMetrics, DubbingTimingMetrics, Intelligibility, SpeakerSimilarity, LipMetrics, AudioEventMetrics]


def _video_or_images(value, node: str, name: str) -> np.ndarray:
    """VIDEO or IMAGE input -> uint8 frames [N, H, W, 3]."""
    import torch

    if isinstance(value, torch.Tensor):
        return _frames_u8(value, node, name)
    if hasattr(value, "get_components"):
        return _frames_u8(value.get_components().images, node, name)
    raise ValueError(f"{node}: input '{name}' must be a VIDEO or IMAGE frames")


def clip_video_metrics(pred, clip_name: str, reference=None, stride: int = 1) -> dict:
    from ..metrics.asr import MetricUnavailable
    from ..metrics.clip_metrics import clip_video_metrics as score, load_encoder
    from .model_folders import resolve_model

    node = "SoundstageCLIPVideoMetrics"
    frames = _video_or_images(pred, node, "pred")
    ref = None if reference is None else _video_or_images(reference, node, "reference")
    if frames[::stride].shape[0] < 2:
        raise ValueError(f"{node}: input 'pred' has {frames.shape[0]} frame(s); Temp-C needs 2 at stride {stride}")
    if ref is not None and ref[::stride].shape[0] < 2:
        raise ValueError(f"{node}: input 'reference' needs at least 2 frames at stride {stride} for FD")
    if not clip_name or clip_name == "none":
        raise ValueError(f"{node}: input 'clip_name': choose CLIP vision weights in models/clip_vision")
    path = resolve_model("clip_vision", clip_name, node, "clip_name")
    with node_errors(node, "clip_name", MetricUnavailable):
        encoder = load_encoder(path)
    return score(encoder, frames, ref, stride=stride)


class CLIPVideoMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from .model_folders import model_choices

        return io.Schema(
            node_id="SoundstageCLIPVideoMetrics",
            display_name="CLIP Video Metrics (Temp-C / FD)",
            category=CATEGORY,
            description="Temp-C: mean CLIP cosine similarity of consecutive frames (MTV 7.3). FD: Fréchet distance "
                        "between the CLIP frame-embedding distributions of the prediction and a reference. Needs "
                        "CLIP vision weights in models/clip_vision (none are downloaded).",
            inputs=[
                io.MultiType.Input("pred", types=[io.Video, io.Image], tooltip="the video (or frames) to score"),
                io.Combo.Input("clip_name", options=model_choices("clip_vision"),
                               tooltip="CLIP vision tower (HF or ComfyUI clip_vision layout, or open_clip)"),
                io.Int.Input("stride", default=1, min=1, max=30, step=1,
                             tooltip="embed every n-th frame (Temp-C then compares frames n apart)"),
                io.MultiType.Input("reference", types=[io.Video, io.Image], optional=True,
                                   tooltip="reference video or frames; FD is NaN without one"),
            ],
            outputs=[io.Float.Output(display_name="temp_c"), io.Float.Output(display_name="fd"),
                     io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, pred, clip_name, stride, reference=None) -> io.NodeOutput:
        m = clip_video_metrics(pred, clip_name, reference, stride)
        text = _report("CLIP video metrics", m)
        return io.NodeOutput(m["temp_c"], m["fd"], text, ui=ui.PreviewText(text))


NODES.append(CLIPVideoMetrics)
