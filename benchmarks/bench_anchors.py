"""The media path and MMDiT attention against their anchors, as ratios measured side by side in one run.

    python benchmarks/bench_anchors.py                       # 360p, 4 s at 25 fps, small_16k fused block
    python benchmarks/bench_anchors.py --only decode attention --repeats 11
    python benchmarks/bench_anchors.py --width 1280 --height 720 --preset large_44k --repeats 5

- encode: ``media.mux`` (H.264, crf 18, preset medium, yuv420p) of in-memory frames vs the ffmpeg CLI encoding
  the same raw rgb24 frames from a file with the same settings;
- decode: ``media.decode.decode_video`` into a float32 IMAGE tensor vs the ffmpeg CLI decoding the same file
  to raw rgb24 on a pipe read into memory (both decoders on FFmpeg's automatic thread count, the same
  swscale conversion: the CLI's bytes equal our IMAGE times 255, the same frame count);
- attention: an MMDiT fused block's forward (its SDPA gets ``v`` as a unit-stride slice of the [q|k|v]
  projection, no copy) vs the same block with SDPA on q/k/v made dense beforehand; ``copy_ratio`` is the
  block before (MMAudio's interleaved ``v`` copied dense), ``strided_ratio`` the block before that (stride-3
  ``v`` straight into SDPA, the math path), ``attention_call_ratio`` / ``attention_call_copy_ratio`` the SDPA
  call alone, as the block now makes it / with the copy, against dense.

Each pair alternates ``--repeats`` times; ``ratio`` is the ratio of the median wall times (the target,
<= 1.05), ``ratio_fastest`` that of the fastest runs and ``cpu_ratio`` that of the median CPU seconds
(this process and the CLI child, all threads), which other load on a shared machine moves less. The
ffmpeg CLI is taken from PATH, else from the imageio-ffmpeg wheel (``pip install imageio-ffmpeg``);
without either, the media ratios are skipped. One JSON line.

Measured on the 2-core CPU of the development machine while training runs held both cores (load 4-6), 360p:
decode 1.067 median wall (0.857 fastest, 0.977 CPU seconds; before this change 1.14-1.16 wall and 1.13-1.15
CPU in the same alternation, bit-identical IMAGE); the fused block 0.86 median wall (0.99 CPU), its SDPA call
0.91 (1.02-1.05 with one thread on a quieter machine), the old copy 1.14 and the stride-3 v 2-13x. Under
such load the wall ratios swing by +-15 %; rerun on a quiet machine for the target itself.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]
TARGET = 1.05
PARTS = ("encode", "decode", "attention")


def ffmpeg_cli() -> str | None:
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """A moving gradient plus noise: real work for the encoder (as bench_media)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return [np.clip((x + y * 0.5 + i * 4) % 256 + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
            for i in range(count)]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the ffmpeg CLI), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _paired(ours, anchor, repeats: int) -> tuple[dict, dict]:
    """Alternate the two ``repeats`` times, so load from other processes falls on both sides alike; wall and CPU
    seconds of every run."""
    ours_s, anchor_s = {"wall": [], "cpu": []}, {"wall": [], "cpu": []}
    for _ in range(repeats):
        for fn, times in ((ours, ours_s), (anchor, anchor_s)):
            cpu, start = _cpu_seconds(), time.perf_counter()
            fn()
            times["wall"].append(time.perf_counter() - start)
            times["cpu"].append(_cpu_seconds() - cpu)
    return ours_s, anchor_s


def _median_ratio(ours_s: dict, anchor_s: dict, kind: str = "wall") -> float:
    return round(statistics.median(ours_s[kind]) / statistics.median(anchor_s[kind]), 3)


def _entry(ours_s: dict, anchor_s: dict, **extra) -> dict:
    """Ratio of the median wall times (the target), with the fastest runs' ratio and the CPU-time ratio beside
    it: on a shared machine CPU seconds move less with other load than wall seconds."""
    ratio = _median_ratio(ours_s, anchor_s)
    return {"ours_s": round(statistics.median(ours_s["wall"]), 4),
            "anchor_s": round(statistics.median(anchor_s["wall"]), 4), "ratio": ratio,
            "ratio_fastest": round(min(ours_s["wall"]) / min(anchor_s["wall"]), 3),
            "cpu_ratio": _median_ratio(ours_s, anchor_s, "cpu"), "within_target": ratio <= TARGET, **extra}


def media_ratios(width: int, height: int, fps: int, seconds: float, repeats: int,
                 parts: tuple[str, ...] = ("encode", "decode")) -> dict:
    ensure_pack()
    from soundstage.media.decode import decode_video
    from soundstage.media.mux import mux

    ffmpeg = ffmpeg_cli()
    if ffmpeg is None:
        return {"skipped": "no ffmpeg CLI (PATH or imageio-ffmpeg)"}
    frames = _frames(int(round(seconds * fps)), width, height)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tmp / "frames.rgb"
        raw.write_bytes(b"".join(f.tobytes() for f in frames))
        counter = iter(range(10 ** 6))

        def ours_encode():
            mux(tmp / f"ours_{next(counter)}.mp4", frames, fps, [], "mp4", "h264", "aac", crf=18, preset="medium")

        def cli_encode():
            subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                            "-r", str(fps), "-i", str(raw), "-c:v", "libx264", "-crf", "18", "-preset", "medium",
                            "-pix_fmt", "yuv420p", str(tmp / "cli.mp4")], check=True)

        result = {"ffmpeg": ffmpeg.rsplit(os.sep, 1)[-1]}
        if "encode" in parts:
            result["encode_h264"] = _entry(*_paired(ours_encode, cli_encode, repeats), anchor="ffmpeg CLI libx264")
        else:
            ours_encode()  # the clip the decode reads
        clip = tmp / "ours_0.mp4"

        def ours_decode():
            decoded = decode_video(clip)
            assert decoded.frames.shape[0] == len(frames)

        def cli_decode():
            out = subprocess.run([ffmpeg, "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                 check=True, stdout=subprocess.PIPE).stdout
            assert len(out) == len(frames) * width * height * 3

        if "decode" in parts:
            result["decode_to_image"] = _entry(*_paired(ours_decode, cli_decode, repeats),
                                               anchor="ffmpeg CLI to raw rgb24")
    return result


def attention_ratio(preset: str, batch: int, repeats: int, calls: int = 10) -> dict:
    """The fused block as it runs vs the same block with its attention on dense q/k/v made beforehand."""
    ensure_pack()
    from soundstage.models.audiogen_omni.blocks import StreamBlock
    from soundstage.models.audiogen_omni.presets import PRESETS
    from soundstage.models.common.attention import attention, merge_heads

    cfg = PRESETS[preset]
    torch.manual_seed(0)
    block = StreamBlock(cfg.hidden_dim, cfg.num_heads).eval()
    x = torch.randn(batch, cfg.latent_seq_len, cfg.hidden_dim)
    c = torch.randn(batch, 1, cfg.hidden_dim)
    with torch.inference_mode():
        (q, k, v), mod = block.pre_attention(x, c, None)
        dense = [t.contiguous() for t in (q, k, v)]
        interleaved_v = torch.stack((q, k, v), dim=-1)[..., 2]  # v as MMAudio's '(h d j)' split leaves it

        def repeat(fn):
            return lambda: [fn() for _ in range(calls)]

        def anchor_block():  # the block's own work, with attention at the fast kernel on dense q/k/v
            block.pre_attention(x, c, None)
            return block.post_attention(x, merge_heads(attention(*dense)), mod)

        def old_block(make_v):  # the block before q/k/v were held in thirds: the interleaved v, copied or not
            def run():
                (q_, k_, _v), mod_ = block.pre_attention(x, c, None)
                return block.post_attention(x, merge_heads(attention(q_, k_, make_v())), mod_)
            return run

        assert v.stride(-1) == 1 and torch.allclose(block(x, c), anchor_block(), atol=1e-5)
        ours, base = _paired(repeat(lambda: block(x, c)), repeat(anchor_block), repeats)
        copied, base_copied = _paired(repeat(old_block(interleaved_v.contiguous)), repeat(anchor_block), repeats)
        strided, base_strided = _paired(repeat(old_block(lambda: interleaved_v)), repeat(anchor_block), repeats)
        call, call_base = _paired(repeat(lambda: attention(q, k, v)), repeat(lambda: attention(*dense)), repeats)
        call_copy, call_copy_base = _paired(repeat(lambda: attention(q, k, interleaved_v.contiguous())),
                                            repeat(lambda: attention(*dense)), repeats)
    return _entry(ours, base, anchor="fused block with SDPA on dense q/k/v",
                  copy_ratio=_median_ratio(copied, base_copied),  # the block before: v copied dense
                  strided_ratio=_median_ratio(strided, base_strided),  # before that: the stride-3 v into SDPA
                  attention_call_ratio=_median_ratio(call, call_base),  # the call alone, as the block makes it
                  attention_call_copy_ratio=_median_ratio(call_copy, call_copy_base),  # the call with the copy
                  shape=[batch, cfg.num_heads, cfg.latent_seq_len, cfg.hidden_dim // cfg.num_heads], calls=calls)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--preset", default="small_16k", help="MMDiT size whose fused block is measured")
    parser.add_argument("--batch", type=int, default=2, help="2 = conditional and unconditional rows (CFG)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="measure only these pairs")
    args = parser.parse_args(argv)
    result = {"video": f"{args.width}x{args.height} @ {args.fps} fps, {args.seconds:g} s",
              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    media = tuple(part for part in args.only if part != "attention")
    if media:
        result.update(media_ratios(args.width, args.height, args.fps, args.seconds, args.repeats, media))
    if "attention" in args.only:
        result["mmdit_fused_attention"] = attention_ratio(args.preset, args.batch, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
