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


NODES = [AVSyncMetrics, DubbingTimingMetrics, Intelligibility, SpeakerSimilarity]
