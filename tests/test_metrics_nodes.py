"""Evaluation nodes in a graph: a synthetic clip scored against its own ground truth."""
import shutil

import pytest

from soundstage.headless.runner import Runner

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_synth_clip_scored_by_metric_nodes(tmp_path):
    prompt = {
        "1": {"class_type": "SoundstageSynthClip", "inputs": {"seed": 4, "seconds": 2.0, "size": 96, "fps": 25,
              "language": "en", "speaker": "spk2", "line": 1, "balls": 2, "speech": True, "sample_rate": 16000}},
        "2": {"class_type": "SoundstageAudioEventMetrics", "inputs": {"audio": ["1", 4], "ground_truth": ["1", 7],
              "reference": ["1", 4]}},
        "3": {"class_type": "SoundstageDubbingTimingMetrics", "inputs": {"dubbed": ["1", 3], "source": ["1", 3]}},
        "4": {"class_type": "SoundstageAVSyncMetrics", "inputs": {"video": ["1", 0], "max_lag": 15, "speech": ["1", 3]}},
    }
    result = Runner(output_dir=tmp_path).run(prompt)
    onset, flatness, snr, _ = result.values["2"]
    assert onset < 15 and snr > 60  # the effects stem against itself: exact onsets, near-infinite SNR
    int_corr, dur_err, _ = result.values["3"]
    assert int_corr > 0.999 and dur_err == 0.0
    assert abs(result.values["4"][1]) <= 40.0  # lip-sync offset within one frame
    assert "Audio events" in result.outputs["2"]["text"][0]


def test_bad_ground_truth_names_node_and_input(tmp_path):
    from soundstage.nodes.metrics import audio_event_metrics
    import torch

    audio = {"waveform": torch.zeros(1, 1, 1600), "sample_rate": 16000}
    with pytest.raises(ValueError, match="SoundstageAudioEventMetrics: input 'ground_truth'"):
        audio_event_metrics(audio, "{oops", None)
    with pytest.raises(ValueError, match="input 'audio' is empty"):
        audio_event_metrics({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "", None)
