"""Static rules the whole pack keeps: layer boundaries, safe loading, no network, no swallowed cancellation,
no machine-specific paths. Each reads the shipped source, so a new file is checked without a test change."""
from __future__ import annotations

import ast
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A fresh interpreter's lines that import the repository as the package `soundstage` (as conftest does).
IMPORT_PACK = (f"spec = importlib.util.spec_from_file_location('soundstage', {str(REPO / '__init__.py')!r}, "
               f"submodule_search_locations=[{str(REPO)!r}])\n"
               "m = importlib.util.module_from_spec(spec); sys.modules['soundstage'] = m; spec.loader.exec_module(m)\n")
SKIP_DIRS = {"tests", ".git", "build", "dist", "__pycache__", "node_modules"}


def _shipped(*top: str, suffix: str = ".py") -> list[Path]:
    roots = [REPO / t for t in top] if top else [REPO]
    files = []
    for root in roots:
        for p in ([root] if root.is_file() else root.rglob(f"*{suffix}")):
            if not SKIP_DIRS & set(p.relative_to(REPO).parts):
                files.append(p)
    return sorted(files)


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text())


def _calls(tree: ast.AST, attr: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name == attr:
                yield node


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_library_layers_never_import_comfyui_or_the_node_layer():
    # models/, media/, metrics/, the pipelines and the training layer are pure PyTorch/NumPy: usable without ComfyUI.
    bad = []
    for path in _shipped("models", "media", "metrics", "synthworld", "pipelines", "training", "testing"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                top = mod.split(".")[0]
                if top in ("comfy", "comfy_api", "folder_paths") or (
                        node.level >= 2 and top in ("nodes", "headless", "compat")):
                    bad.append(_where(path, node))
            elif isinstance(node, ast.Import):
                if any(a.name.split(".")[0] in ("comfy", "comfy_api", "folder_paths") for a in node.names):
                    bad.append(_where(path, node))
    assert not bad, bad


# The layers, bottom up: media/ is a leaf; models/ (networks, samplers, loaders, codecs) is a leaf too;
# metrics/ may use both; one pipeline per system stands on them; nodes/ (ComfyUI adapters) and the
# training layer stand on the pipelines. Every arrow points down; a package absent here is not checked.
ALLOWED_IMPORTS = {
    "defaults": set(),
    "media": set(),
    "models": set(),
    "metrics": {"media", "models"},
    "synthworld": {"media", "metrics"},  # metrics.pitch calibrates the world's singing voices
    "pipelines": {"media", "models", "metrics"},
    "training": {"pipelines", "media", "models", "metrics", "synthworld", "defaults"},
    "testing": {"pipelines", "models"},
    "nodes": {"pipelines", "media", "models", "metrics", "synthworld", "compat", "defaults"},
}
SYSTEMS = ("dualdub", "audiogen_omni", "ovi", "just_dub_it", "mtv")


def _pack_imports(path: Path):
    """(top-level pack package, line) of every import of the pack in ``path``, function-level ones included."""
    parts = path.relative_to(REPO).parts
    package = list(parts[:-1])
    for node in ast.walk(_tree(path)):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue
                base = package[: len(package) - node.level + 1]
                dotted = base + (node.module.split(".") if node.module else [])
                targets.append(dotted or [a.name for a in node.names][:1])
            elif (node.module or "").startswith("soundstage."):
                targets.append(node.module.split(".")[1:])
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".")[1:] for a in node.names if a.name.startswith("soundstage.")]
        for dotted in targets:
            if dotted and dotted[0] != parts[0]:
                yield dotted[0], node


def test_every_layer_arrow_points_down():
    bad = []
    for layer, allowed in ALLOWED_IMPORTS.items():
        for path in _shipped(layer):
            bad += [f"{_where(path, node)} imports {top}" for top, node in _pack_imports(path) if top not in allowed]
    assert not bad, bad


def test_each_system_has_its_pipeline_and_models_hold_no_entry_points():
    missing = [s for s in SYSTEMS if not (REPO / "pipelines" / f"{s}.py").is_file()]
    assert not missing, f"systems without a pipeline module: {missing}"
    bad = []
    for path in _shipped("models", "pipelines"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef) and node.name in ("main", "add_arguments"):
                bad.append(_where(path, node))
            elif isinstance(node, ast.Compare) and "__main__" in ast.unparse(node):
                bad.append(_where(path, node))
            elif isinstance(node, ast.Call) and (ast.unparse(node.func) == "Trainer" or
                                                 ast.unparse(node.func).endswith(".backward") or
                                                 ast.unparse(node.func).startswith("torch.optim.")):
                bad.append(_where(path, node))
    assert not bad, f"training loops or command-line entry points outside training/: {bad}"


def test_node_modules_hold_no_sampling_loop():
    # nodes/ adapt (types, handles, progress, UI); the sampling itself is a pipeline call.
    samplers = {"generate", "sample_ovi", "sample_ovi_long", "sample_mtv", "dub_stage1", "dub_stage2", "euler_sample"}
    bad = []
    for path in _shipped("nodes"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in samplers:
                bad.append(_where(path, node))
    assert not bad, bad


def test_torch_load_is_always_weights_only():
    bad = []
    for path in _shipped():
        for call in _calls(_tree(path), "load"):
            f = call.func
            if isinstance(f, ast.Attribute) and getattr(f.value, "id", None) == "torch":
                flag = _keyword(call, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    bad.append(_where(path, call))
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_hugging_face_loaders_never_reach_the_hub():
    # Model files come from ComfyUI's model folders; a name that is not a folder must fail, not download.
    bad = []
    for path in _shipped():
        tree = _tree(path)
        for call in _calls(tree, "from_pretrained"):
            flag = _keyword(call, "local_files_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                bad.append(_where(path, call))
        for name in ("hf_hub_download", "snapshot_download", "urlopen"):
            bad += [_where(path, c) for c in _calls(tree, name)]
    assert not bad, f"possible network access: {bad}"


def _catches_everything(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = [t] if not isinstance(t, ast.Tuple) else list(t.elts)
    return t is None or any(getattr(n, "id", getattr(n, "attr", None)) in ("Exception", "BaseException")
                            for n in names)


def _reraises(handler: ast.ExceptHandler) -> bool:
    return bool(handler.body) and isinstance(handler.body[-1], ast.Raise) and handler.body[-1].exc is None


# Load-time only (module import and schema checks), never around a node's execution.
LOAD_TIME = {"nodes/extension.py"}


def test_node_code_never_swallows_cancellation():
    # ComfyUI's InterruptProcessingException is an Exception: a broad `except` in a node would turn a
    # cancel into an error (or into nothing) unless the interruption is let through first.
    bad = []
    for path in _shipped("nodes"):
        if str(path.relative_to(REPO)) in LOAD_TIME:
            continue
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.Try):
                continue
            for i, handler in enumerate(node.handlers):
                if not _catches_everything(handler) or _reraises(handler):
                    continue
                earlier = node.handlers[:i]
                lets_through = any("InterruptProcessingException" in ast.unparse(h.type or ast.Constant(None))
                                   and _reraises(h) for h in earlier)
                if not lets_through:
                    bad.append(_where(path, handler))
    assert not bad, f"broad except without letting InterruptProcessingException through: {bad}"


def test_no_machine_specific_paths():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    pattern = re.compile(r"(?<![\w.])(/work/|/home/[a-z]|/Users/[A-Za-z]|/mnt/[a-z]|[A-Z]:\\\\Users)")
    bad = []
    for name in tracked.splitlines():
        path = REPO / name
        if path.suffix not in (".py", ".md", ".json", ".toml", ".txt", ".js", ".cfg", ".yml", ".yaml") or \
                not path.is_file() or name.startswith("tests/test_pack_hygiene"):
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                bad.append(f"{name}:{i}: {line.strip()[:80]}")
    assert not bad, bad


def test_every_node_input_documents_itself():
    # The node rule: every widget has a tooltip; numbers also carry default, min, max and step.
    from soundstage.nodes.extension import IMPORT_ERRORS, load_node_classes

    classes = load_node_classes()
    assert classes and not IMPORT_ERRORS, IMPORT_ERRORS
    bad = []
    for cls in classes:
        schema = cls.GET_SCHEMA()
        if not (schema.display_name and (schema.category or "").startswith("Soundstage/")):
            bad.append((schema.node_id, "display_name/category"))
        for inp in schema.inputs:
            kind = inp.get_io_type()
            needed = ("default", "min", "max", "step", "tooltip") if kind in ("INT", "FLOAT") else \
                ("tooltip",) if kind in ("COMBO", "STRING", "BOOLEAN") else ()
            missing = [a for a in needed if getattr(inp, a, None) is None or (a == "tooltip" and not inp.tooltip)]
            if missing:
                bad.append((schema.node_id, inp.id, missing))
    assert not bad, bad


def test_model_layer_and_stubs_import_without_the_media_and_metric_extras():
    """A GPU box running benchmarks/gpu_suite.sh may lack PyAV, open_clip and the metric packages:
    the stubs, ModelHandle and every model family must still import (those load where used)."""
    import sys

    boot = ("import importlib.util, sys\n"
            "for name in ('av', 'open_clip', 'resemblyzer', 'mediapipe', 'faster_whisper', 'demucs', 'soundfile'):\n"
            "    sys.modules[name] = None\n"
            + IMPORT_PACK +
            "import soundstage.nodes.model_patch, soundstage.models.common.cuda_graph\n"
            "import soundstage.models.audiogen_omni.sampler, soundstage.models.ovi.fusion, soundstage.models.mtv.sampler\n"
            "import soundstage.models.just_dub_it.transformer\n")
    done = subprocess.run([sys.executable, "-c", boot], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_loading_the_nodes_leaves_the_heavy_libraries_for_later():
    """ComfyUI imports every node module at start-up: diffusers, transformers and peft load where a model
    is built, not then (benchmarks/bench_import.py times it)."""
    import sys

    boot = ("import importlib.util, sys\n"
            + IMPORT_PACK +
            "from soundstage.nodes.extension import IMPORT_ERRORS, load_node_classes\n"
            "assert load_node_classes() and not IMPORT_ERRORS, IMPORT_ERRORS\n"
            "print(' '.join(x for x in ('diffusers', 'transformers', 'peft', 'accelerate') if x in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", boot], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"imported at load: {done.stdout.strip()}"
