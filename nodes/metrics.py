"""Evaluation nodes: numbers plus a short text report, shown on the node."""
from __future__ import annotations

import numpy as np

from ..compat import io, ui

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
                    io.Int.Input("max_lag", default=15, min=1, max=50, tooltip="frames searched each way"),
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
        from ..media.audio_io import resample
        from ..metrics import timing
        import torch

        node = "SoundstageDubbingTimingMetrics"
        a, ra = _mono(dubbed, node, "dubbed")
        b, rb = _mono(source, node, "source")
        if ra != rb:
            a = resample(torch.from_numpy(a).float()[None], ra, rb)[0].numpy().astype(np.float64)
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
            inputs=[io.Audio.Input("speech"), io.String.Input("reference_text", multiline=True, default=""),
                    io.Combo.Input("language", options=["en", "other"], default="en")],
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
        try:
            m = intelligibility(wave, rate, reference_text, language)
        except MetricUnavailable as exc:
            raise ValueError(f"SoundstageIntelligibility: input 'language': {exc}") from exc
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
        from ..media.audio_io import resample
        from ..metrics.asr import MetricUnavailable
        from ..metrics.speaker import speaker_similarity
        import torch

        node = "SoundstageSpeakerSimilarity"
        wa, ra = _mono(a, node, "a")
        wb, rb = _mono(b, node, "b")
        if ra != rb:
            wb = resample(torch.from_numpy(wb).float()[None], rb, ra)[0].numpy().astype(np.float64)
        try:
            sim = speaker_similarity(wa, wb, ra)
        except MetricUnavailable as exc:
            raise ValueError(f"{node}: {exc}") from exc
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
        try:
            m = lip_metrics(_frames_u8(frames, node, "frames"), ref)
        except MetricUnavailable as exc:
            raise ValueError(f"{node}: {exc}") from exc
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
