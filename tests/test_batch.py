"""`soundstage batch`: one run per input file, a manifest that is the single record, resume, hostile inputs, Ray.

The batch runs the cheapest workflow that loads a file (audio_reconstruct_mmaudio.json: Load Audio -> mel-VAE
-> vocoder -> Save Audio) with tiny random codecs on clips made here."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import write_codec_files
from media_factory import make_audio

from soundstage.headless import batch as batch_mod

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "audio_reconstruct_mmaudio.json"
LOADERS = {"2", "3"}  # the workflow's mel-VAE and vocoder loaders


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    folder = root / "soundstage" / "mmaudio"
    folder.mkdir(parents=True)
    write_codec_files(folder)
    return root


def _clips(folder: Path, n: int, seconds: float = 0.5) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_audio(folder / f"clip_{i:02d}.wav", seconds=seconds, sample_rate=16000, kind="speechlike", seed=i)
    return [f"clip_{i:02d}.wav" for i in range(n)]


def _records(out: Path) -> list[dict]:
    path = out / batch_mod.MANIFEST
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _files(out: Path) -> list[str]:
    """Every file under out except the manifest and item records: the workflow's outputs."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_file() and p.name not in (batch_mod.MANIFEST, batch_mod.ITEM_RECORD))


def _assert_consistent(out: Path, inputs: list[str]) -> None:
    """One 'ok' record per input, each output listed once and present, nothing on disk that is not listed."""
    latest = batch_mod.Manifest(str(out)).latest()
    assert sorted(latest) == sorted(inputs)
    assert all(r["status"] == "ok" for r in latest.values()), [r for r in latest.values() if r["status"] != "ok"]
    listed = sorted(o for r in latest.values() for o in r["outputs"])
    assert len(listed) == len(set(listed)) == len(inputs)  # this workflow saves one file per item
    assert _files(out) == listed
    assert not (out / batch_mod.WORK_FOLDER).exists()
    assert not [p for p in out.rglob("*") if ".partial." in p.name]


def _cli(*args: str) -> int:
    from soundstage import cli

    return cli.main(["batch", str(WORKFLOW), *args])


# ----------------------------------------------------------------------------- choosing the load node
def _prompt(*classes: str, linked_video: bool = False) -> dict:
    prompt = {str(i + 1): {"class_type": c, "inputs": {}} for i, c in enumerate(classes)}
    if linked_video:
        prompt["1"]["inputs"]["video"] = ["2", 0]
    return prompt


def test_the_load_node_is_the_single_loader_or_the_one_named():
    assert batch_mod.find_load_node(_prompt("LoadAudio", "SoundstageVocoder")) == ("1", "audio")
    assert batch_mod.find_load_node(_prompt("SoundstageLoadVideo", "LoadAudio"), "2") == ("2", "audio")
    with pytest.raises(batch_mod.BatchError, match=r"2 file loaders: 1 \(LoadVideo\), 2 \(LoadAudio\).*--input-node"):
        batch_mod.find_load_node(_prompt("LoadVideo", "LoadAudio"))
    with pytest.raises(batch_mod.BatchError, match="no file loader"):
        batch_mod.find_load_node(_prompt("SoundstageVocoder"))
    with pytest.raises(batch_mod.BatchError, match="node 2 .SoundstageVocoder. is not a file loader"):
        batch_mod.find_load_node(_prompt("LoadAudio", "SoundstageVocoder"), "2")
    with pytest.raises(batch_mod.BatchError, match="has no node 9"):
        batch_mod.find_load_node(_prompt("LoadAudio"), "9")
    with pytest.raises(batch_mod.BatchError, match="connected 'video' input"):
        batch_mod.find_load_node(_prompt("SoundstageLoadVideo", "LoadVideo", linked_video=True), "1")


def test_catalogue_refuses_links_out_and_odd_files_per_item(tmp_path):
    inputs = tmp_path / "in"
    _clips(inputs, 1)
    (inputs / "sub").mkdir()
    (inputs / "sub" / "b.wav").write_bytes((inputs / "clip_00.wav").read_bytes())
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not yours")
    (inputs / "escape.wav").symlink_to(secret)
    (inputs / "inside.wav").symlink_to(inputs / "clip_00.wav")  # a link that stays inside is fine
    (inputs / "outside_dir").symlink_to(tmp_path)
    os.mkfifo(inputs / "pipe.wav")
    (inputs / ".hidden.wav").write_bytes(b"")
    (inputs / "notes.txt").write_text("not media")
    (inputs / "out").mkdir()  # the out folder inside the inputs is never read back
    (inputs / "out" / "old.wav").write_bytes(b"")
    items = {i.input: i for i in batch_mod.catalogue(str(inputs), {".wav"}, str(inputs / "out"))}
    assert sorted(items) == ["clip_00.wav", "escape.wav", "inside.wav", "outside_dir", "pipe.wav", "sub/b.wav"]
    assert items["clip_00.wav"].error is None and items["inside.wav"].error is None
    assert "outside the input folder" in items["escape.wav"].error
    assert "link to a folder" in items["outside_dir"].error
    assert "not a regular file" in items["pipe.wav"].error
    assert items["sub/b.wav"].folder == "sub/b_wav" and items["clip_00.wav"].folder == "clip_00_wav"


# ----------------------------------------------------------------------------- local batches
def test_local_batch_reuses_models_records_hostile_items_and_resumes(models, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    good = _clips(inputs, 3)
    (inputs / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (inputs / "escape.wav").symlink_to(tmp_path / "nowhere.wav")
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models)) == 2  # items failed
    latest = batch_mod.Manifest(str(out)).latest()
    assert sorted(latest) == ["clip_00.wav", "clip_01.wav", "clip_02.wav", "corrupt.wav", "escape.wav"]
    assert latest["corrupt.wav"]["status"] == "error" and "node 1 (LoadAudio)" in latest["corrupt.wav"]["error"]
    assert latest["escape.wav"]["status"] == "error" and "outside the input folder" in latest["escape.wav"]["error"]
    assert not (out / "corrupt_wav").exists() and not (out / "escape_wav").exists()
    ok = [latest[name] for name in good]
    # Models load once: the loaders run for the first item and come from the runner's cache afterwards.
    assert not LOADERS & set(ok[0]["reused"]) and all(LOADERS <= set(r["reused"]) for r in ok[1:])
    for record in ok:
        (output,) = record["outputs"]
        assert output.startswith(record["folder"] + "/audio/") and (out / output).stat().st_size > 0
    table = capsys.readouterr().out
    assert "corrupt.wav  error" in table and "3 ok, 2 failed" in table

    # Resume: the good items are skipped; the failed ones are tried again (and fail again).
    stamps = {o: (out / o).stat().st_mtime_ns for r in ok for o in r["outputs"]}
    lines = len(_records(out))
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models)) == 2
    again = _records(out)[lines:]
    assert sorted(r["input"] for r in again) == ["corrupt.wav", "escape.wav"]
    assert stamps == {o: (out / o).stat().st_mtime_ns for o in stamps}
    assert "3 done earlier" in capsys.readouterr().out


def test_a_published_item_whose_manifest_line_was_lost_is_recovered_not_rerun(models, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    names = _clips(inputs, 2)
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models)) == 0
    first, second = _records(out)
    (out / batch_mod.MANIFEST).write_text(json.dumps(first) + "\n" + '{"input": "clip_01.wav", "sta')  # cut line
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models)) == 0
    latest = batch_mod.Manifest(str(out)).latest()
    assert latest["clip_01.wav"].get("recovered") and latest["clip_01.wav"]["outputs"] == second["outputs"]
    _assert_consistent(out, names)

    # A folder that is not the batch's own is never replaced: that item fails, the rest go on.
    (out / batch_mod.MANIFEST).unlink()
    (out / "clip_00_wav" / batch_mod.ITEM_RECORD).unlink()
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models)) == 2
    latest = batch_mod.Manifest(str(out)).latest()
    assert "exists already" in latest["clip_00.wav"]["error"] and latest["clip_01.wav"]["recovered"]


def test_a_graph_that_fails_whatever_the_file_stops_before_the_first_item(models, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _clips(inputs, 2)
    assert _cli("--inputs", str(inputs), "--out", str(out), "--models-dir", str(models),
                "--set", "3.vocoder_name=missing.pt") == 1
    assert '"node_errors"' in capsys.readouterr().out and not _records(out)


# ----------------------------------------------------------------------------- interruption and Ray
def _batch_process(inputs: Path, out: Path, models: Path, *extra: str, pkg: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")]),
               RAY_AUTH_MODE="disabled")
    return subprocess.Popen([sys.executable, "-m", "soundstage", "batch", str(WORKFLOW), "--inputs", str(inputs),
                             "--out", str(out), "--models-dir", str(models), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def pkg(tmp_path) -> Path:
    """A folder where this checkout imports as `soundstage` (Ray's workers import the pack by name)."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "soundstage").symlink_to(REPO)
    return folder


def _wait_for(out: Path, proc: subprocess.Popen, ok: int, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        records = [r for r in _records_tolerant(out) if r["status"] == "ok"]
        if len(records) >= ok:
            return records
        time.sleep(0.05)
    raise AssertionError(f"batch gave {proc.poll()} before {ok} items: {proc.communicate()[1][-3000:]}")


def _records_tolerant(out: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (out / batch_mod.MANIFEST).read_text().splitlines() if line.endswith("}")]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


@pytest.mark.slow
def test_interrupted_batch_leaves_no_partial_item_and_resume_finishes_the_rest_only(models, tmp_path, pkg):
    inputs, out = tmp_path / "in", tmp_path / "out"
    names = _clips(inputs, 24)
    proc = _batch_process(inputs, out, models, pkg=pkg)
    _wait_for(out, proc, 3)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the item in progress stops at its next step
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    before = _records(out)
    assert 3 <= len(before) < 24 and all(r["status"] == "ok" for r in before)
    done = {r["input"] for r in before}
    assert len(done) == len(before)
    # Nothing of the interrupted item: only the finished items' folders, no staging, no partial file.
    assert _files(out) == sorted(o for r in before for o in r["outputs"])
    assert not (out / batch_mod.WORK_FOLDER).exists()

    proc = _batch_process(inputs, out, models, pkg=pkg)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    records = _records(out)
    assert records[: len(before)] == before
    assert sorted(r["input"] for r in records[len(before):]) == sorted(set(names) - done)
    _assert_consistent(out, names)


@pytest.mark.slow
def test_ray_batch_survives_a_killed_worker(models, tmp_path, pkg):
    pytest.importorskip("ray")
    inputs, out = tmp_path / "in", tmp_path / "out"
    names = _clips(inputs, 24)
    proc = _batch_process(inputs, out, models, "--ray", "--workers", "2", "--num-cpus", "1", pkg=pkg)
    try:
        first = _wait_for(out, proc, 2)
        victim = int(first[-1]["worker"].rpartition(":")[2])  # a worker busy with its next item
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    records = _records(out)
    assert len(records) == 24  # one line per item: nothing recorded twice
    _assert_consistent(out, names)
    assert any(r["attempts"] > 1 for r in records)  # the item the killed worker held ran again
    workers = {r["worker"] for r in records}
    assert len(workers) >= 2
    for worker in workers:  # each worker process loaded the models once and reused them
        mine = [r for r in records if r["worker"] == worker]
        assert sum(not LOADERS & set(r["reused"]) for r in mine) == 1
