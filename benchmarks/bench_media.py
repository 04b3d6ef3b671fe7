"""Media throughput on CPU: video encode/decode in frames/s, audio decode/encode/processing in x realtime.

    python -m benchmarks.bench_media
    python -m benchmarks.bench_media --width 1280 --height 720 --seconds 10 --audio-seconds 60

Run from the repository root (the script registers the pack as ``soundstage``). Sources are made
on the fly: noisy moving frames (so the encoder has real work) and tone/noise/speech-like audio.
"""
from __future__ import annotations

import argparse
import runpy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Benchmarks run as scripts, as modules and through runpy: load the helper by path in every case.
ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]


def _import_pack():
    ensure_pack()
    import soundstage.media as media

    return media


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _frames(count: int, width: int, height: int, seed: int = 0):
    """uint8 frames: a moving gradient plus noise, roughly what a generated clip costs to encode."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    for i in range(count):
        base = (x + y * 0.5 + i * 4) % 256
        noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
        yield np.clip(base + noise, 0, 255).astype(np.uint8)


def _speechlike(seconds: float, rate: int, channels: int) -> torch.Tensor:
    t = np.arange(int(seconds * rate)) / rate
    gate = (t % 1.0) < 0.5
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    return torch.from_numpy(np.stack([0.3 * gate * voice] * channels).astype(np.float32))


def run(width: int, height: int, fps: float, seconds: float, audio_seconds: float, preset: str) -> dict:
    _import_pack()
    from soundstage.media.audio_io import load_audio
    from soundstage.media.decode import decode_video, iter_frames
    from soundstage.media.fit import fit_audio
    from soundstage.media.loudness import limit_true_peak
    from soundstage.media.mix import Track, mix_tracks
    from soundstage.media.mux import AudioTrack, mux, remux
    from soundstage.media.save_audio import save_audio

    count = int(round(seconds * fps))
    rate = 48000
    results: dict = {"video": f"{width}x{height} @ {fps:g} fps, {seconds:g} s ({count} frames)",
                     "audio": f"{audio_seconds:g} s stereo at {rate} Hz", "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tracks = [AudioTrack(_speechlike(seconds, rate, 2), rate, name) for name in ("mix", "dialogue", "music")]
        frames = list(_frames(count, width, height))  # made up front: only the encoder is timed
        _, t = _timed(lambda: mux(tmp / "v.mp4", frames, fps, [], "mp4", "h264", "aac",
                                  crf=18, preset=preset))
        results["encode_h264_fps"] = count / t
        _, t = _timed(lambda: mux(tmp / "v3.mp4", frames, fps, tracks, "mp4", "h264", "aac",
                                  crf=18, preset=preset))
        results["encode_h264_3xaac_fps"] = count / t
        _, t = _timed(lambda: mux(tmp / "v.mkv", frames, fps, tracks, "mkv", "h265", "opus",
                                  crf=24, preset=preset))
        results["encode_h265_3xopus_fps"] = count / t
        _, t = _timed(lambda: remux(tmp / "copy.mkv", tmp / "v3.mp4", tracks, "mkv", "flac"))
        results["remux_copy_video_3xflac_x_realtime"] = seconds / t
        decoded, t = _timed(lambda: sum(1 for _ in iter_frames(tmp / "v3.mp4")))
        results["decode_h264_fps"] = decoded / t
        window, t = _timed(lambda: decode_video(tmp / "v3.mp4", start=seconds * 0.8, duration=min(1.0, seconds * 0.2)))
        results["decode_window_last_20pct_s"] = t
        results["decode_window_frames"] = int(window.frames.shape[0])
        resampled, t = _timed(lambda: decode_video(tmp / "v3.mp4", fps=8.0, resize={"mode": "fit", "width": 224,
                                                                                 "height": 224, "multiple_of": 8}))
        results["decode_8fps_224_output_fps"] = resampled.frames.shape[0] / t
        results["decode_8fps_224_x_realtime"] = seconds / t

        wave = _speechlike(audio_seconds, rate, 2)
        for fmt, ext in (("flac", "flac"), ("mp3", "mp3"), ("opus", "opus"), ("wav", "wav")):
            _, t = _timed(lambda: save_audio(tmp / f"a.{ext}", wave, rate, fmt))
            results[f"audio_encode_{fmt}_x_realtime"] = audio_seconds / t
            _, t = _timed(lambda: load_audio(tmp / f"a.{ext}"))
            results[f"audio_decode_{fmt}_x_realtime"] = audio_seconds / t
        _, t = _timed(lambda: load_audio(tmp / "a.flac", sample_rate=16000, channels=1))
        results["audio_decode_flac_to_16k_mono_x_realtime"] = audio_seconds / t
        music = torch.from_numpy(np.random.default_rng(0).uniform(-0.2, 0.2, (2, wave.shape[-1])).astype(np.float32))
        _, t = _timed(lambda: mix_tracks([Track(wave, rate, 0, "dialogue"), Track(music, rate, -6, "music")],
                                         target_lufs=-23.0, true_peak_db=-1.0, ducking={"depth_db": 10.0}))
        results["mix_duck_r128_truepeak_x_realtime"] = audio_seconds / t
        hot = music * 6.0  # about 4 dB over full scale: the limiter works on every block
        _, t = _timed(lambda: limit_true_peak(hot, rate, -1.0))
        results["true_peak_limiter_x_realtime"] = audio_seconds / t
        _, t = _timed(lambda: fit_audio(wave, rate, int(wave.shape[-1] * 1.25), "stretch"))
        results["fit_stretch_wsola_x_realtime"] = audio_seconds / t
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=4.0, help="video length")
    parser.add_argument("--audio-seconds", type=float, default=30.0, help="audio length")
    parser.add_argument("--preset", default="veryfast", help="x264/x265 preset")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.width, args.height, args.fps, args.seconds, args.audio_seconds, args.preset)
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in results.items()}))
    return results


if __name__ == "__main__":
    main()
