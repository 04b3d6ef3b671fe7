"""Command line: run, batch and validate workflows headless, describe the nodes, train, synthesise, evaluate.

Exit codes: 0 ok, 1 validation error (printed in ComfyUI's error shape), 2 runtime error (a node failed),
3 internal error (a bug: please report it), 130 interrupted by SIGINT (Ctrl-C), 143 interrupted by SIGTERM.
An interrupted run stops at the next step boundary and leaves no partial file.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_INVALID, EXIT_RUNTIME, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_SIGNAL_BASE = 128  # + the signal number, as shells report it: 130 SIGINT, 143 SIGTERM

# `train <name>` entries: each module exposes add_arguments(parser) and main(args) -> int.
TRAINERS = {
    "dualdub": ".training.dualdub.train",
    "audiogen": ".training.audiogen_omni.train",
    "dubbing-lora": ".training.just_dub_it.train",
    "ovi": ".training.ovi.train",
    "mtv": ".training.mtv.train",
}


def _package() -> str:
    return __package__ or "soundstage"


def _parse_value(text: str):
    """`--set` values are JSON when they parse as JSON (numbers, booleans, lists), else strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict[str, object]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set expects NODE_ID.INPUT=VALUE, got {pair!r}")
        out[key] = _parse_value(value)
    return out


def _apply_dirs(args) -> None:
    # Environment first, so the headless folder_paths picks them up when it is imported.
    for flag, env in (("input_dir", "SOUNDSTAGE_INPUT_DIR"), ("output_dir", "SOUNDSTAGE_OUTPUT_DIR"),
                      ("models_dir", "SOUNDSTAGE_MODELS_DIR"), ("device", "SOUNDSTAGE_DEVICE")):
        value = getattr(args, flag, None)
        if value:
            os.environ[env] = str(value)


def _runner(args):
    runner_mod = importlib.import_module(".headless.runner", _package())
    return runner_mod, runner_mod.Runner(
        input_dir=args.input_dir, output_dir=args.output_dir, models_dir=args.models_dir, device=args.device
    )


class InvalidWorkflowFile(Exception):
    """A workflow file that cannot be read at all; reported in ComfyUI's error shape, exit code 1."""

    def __init__(self, message: str):
        super().__init__(message)
        self.response = {"error": {"type": "invalid_prompt", "message": message, "details": message, "extra_info": {}},
                         "node_errors": {}}


def _load_workflow(path: str):
    p = Path(path)
    if not p.is_file():
        raise InvalidWorkflowFile(f"workflow file not found: {path}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise InvalidWorkflowFile(f"{p.name} is not valid JSON: {problem}") from None
    if not isinstance(data, dict):  # e.g. a JSON string: content, never a path to another file
        from .headless.document import MalformedWorkflow

        kind = {str: "a string", list: "a list"}.get(type(data), "a " + type(data).__name__)
        problem = MalformedWorkflow("", f"expected a JSON object (a UI workflow or an API prompt), got {kind}")
        raise InvalidWorkflowFile(f"{p.name}: {problem}")
    return data


class _Signals:
    """SIGINT/SIGTERM during a run: the first asks the runner to stop at its next step boundary (writers
    then drop their temporary files); a second one stops at once. Either way the exit code is 128 + signal."""

    def __init__(self):
        self.runner = None
        self.received: int | None = None
        self._previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        first = self.received is None
        self.received = signum
        if first and self.runner is not None:
            self.runner.interrupt()
            print(f"soundstage: {signal.Signals(signum).name}: stopping at the next step (again to stop now)",
                  file=sys.stderr)
            return
        raise KeyboardInterrupt

    def exit_code(self) -> int:
        return EXIT_SIGNAL_BASE + int(self.received or signal.SIGINT)

    def message(self, command: str, where: str = "") -> str:
        name = signal.Signals(self.received or signal.SIGINT).name
        return f"soundstage {command}: interrupted by {name}{where}; no partial output was left"


SIGNALS = _Signals()


def cmd_run(args) -> int:
    _apply_dirs(args)
    runner_mod, runner = _runner(args)
    workflow = _load_workflow(args.workflow)
    SIGNALS.runner = runner
    try:
        result = runner.run(workflow, overrides=_overrides(args.set))
    except runner_mod.ValidationFailed as exc:
        print(json.dumps(exc.response, indent=2))
        return EXIT_INVALID
    except runner_mod.ExecutionInterrupted as exc:
        print(SIGNALS.message("run", f" at node {exc.node_id} ({exc.class_type})"), file=sys.stderr)
        return SIGNALS.exit_code()
    except runner_mod.NodeExecutionError as exc:
        print(str(exc), file=sys.stderr)
        if getattr(exc, "traceback_text", None) and args.verbose:
            print(exc.traceback_text, file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        SIGNALS.runner = None
    print(json.dumps({"outputs": result.outputs}, indent=2, default=str))
    for node_id, ui in result.outputs.items():  # text reports (metrics nodes) readable too; stdout stays JSON
        for text in (ui or {}).get("text", []) if isinstance(ui, dict) else []:
            print(f"[node {node_id}] {text}", file=sys.stderr)
    if SIGNALS.received is not None:  # the signal came after the last step: every output is complete
        print(SIGNALS.message("run", " after the last step (outputs are complete)"), file=sys.stderr)
        return SIGNALS.exit_code()
    return EXIT_OK


def cmd_batch(args) -> int:
    """`run` once per file of --inputs (see headless/batch.py for the folder layout and guarantees)."""
    _apply_dirs(args)
    batch_mod = importlib.import_module(".headless.batch", _package())
    runner_mod = importlib.import_module(".headless.runner", _package())
    workflow = _load_workflow(args.workflow)
    out = os.path.abspath(args.out)
    runner_kwargs = dict(input_dir=os.path.abspath(args.inputs), models_dir=args.models_dir, device=args.device,
                         output_dir=os.path.join(out, batch_mod.WORK_FOLDER, "runner"))  # its temp/ lives there
    runner = runner_mod.Runner(**runner_kwargs)
    try:
        prompt, _ = runner.prompt_for(workflow, _overrides(args.set))
    except runner_mod.ValidationFailed as exc:
        print(json.dumps(exc.response, indent=2))
        return EXIT_INVALID
    node_id, input_name = batch_mod.find_load_node(prompt, args.input_node)
    load_key = f"{node_id}.{input_name}"
    extensions = batch_mod.input_extensions(prompt[node_id]["class_type"])
    items = batch_mod.catalogue(args.inputs, extensions, out)
    if not items:
        raise ValueError(f"--inputs {args.inputs}: no files with a {prompt[node_id]['class_type']} extension "
                         f"({' '.join(sorted(extensions))})")
    with batch_mod.Batch(items, out) as batch:
        todo = batch.pending()
        first = next((i for i in todo if i.error is None), None)
        if first is not None:  # a graph that fails whatever the file stops here, not once per item
            try:
                runner.validate(prompt, {load_key: first.input})
            except runner_mod.ValidationFailed as exc:
                if set(exc.response.get("node_errors") or {}) != {node_id}:
                    print(json.dumps(exc.response, indent=2))
                    return EXIT_INVALID
        bars = batch_mod.ProgressBars(len(todo), per_item=args.ray is None)
        start = time.perf_counter()
        try:
            if args.ray is None:
                SIGNALS.runner = stop = batch_mod.LocalInterrupt(runner)
                batch_mod.run_local(runner, prompt, load_key, batch, todo, bars, stop=stop)
            else:
                ray_mod = importlib.import_module(".headless.batch_ray", _package())
                executor = ray_mod.RayExecutor(None if args.ray == "local" else args.ray, args.num_cpus,
                                               args.num_gpus, args.workers, args.retries, runner_kwargs)
                SIGNALS.runner = executor
                executor.run(prompt, load_key, batch, todo, bars)
        finally:
            SIGNALS.runner = None
            bars.close()
        batch.summary.seconds = time.perf_counter() - start
    print(batch_mod.summary_table(batch.summary))
    if batch.summary.interrupted or SIGNALS.received is not None:
        print(SIGNALS.message("batch", "; finished items are in the manifest, run again to resume"), file=sys.stderr)
        return SIGNALS.exit_code()
    return EXIT_RUNTIME if batch.summary.failed else EXIT_OK


def cmd_validate(args) -> int:
    _apply_dirs(args)
    runner_mod, runner = _runner(args)
    workflow = _load_workflow(args.workflow)
    try:
        runner.validate(workflow, overrides=_overrides(args.set))
    except runner_mod.ValidationFailed as exc:
        print(json.dumps(exc.response, indent=2))
        return EXIT_INVALID
    print(f"{args.workflow}: valid")
    return EXIT_OK


def _node_classes() -> dict[str, type]:
    from .object_info import pack_node_classes

    return pack_node_classes()


def cmd_list_nodes(args) -> int:
    from .object_info import node_info

    for node_id, cls in sorted(_node_classes().items()):
        info = node_info(node_id, cls)
        print(f"{node_id:40s} {info['category']:32s} {info['display_name']}")
    return EXIT_OK


def cmd_object_info(args) -> int:
    from .object_info import node_info

    print(json.dumps({k: node_info(k, c) for k, c in sorted(_node_classes().items())}, indent=2, default=str))
    return EXIT_OK


def cmd_export_ui(args) -> int:
    from .headless.registry import build_registry
    from .headless.ui_export import api_to_ui
    from .headless.workflow import to_prompt

    registry = build_registry()
    prompt, _ = to_prompt(_load_workflow(args.workflow), registry)
    text = json.dumps(api_to_ui(prompt, registry, title=args.title), indent=1)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return EXIT_OK


def cmd_train(args) -> int:
    module = importlib.import_module(TRAINERS[args.system], _package())
    return int(module.main(args) or 0)


def cmd_synth(args) -> int:
    module = importlib.import_module(".synthworld.cli", _package())
    return int(module.main(args) or 0)


def cmd_dubbing_data(args) -> int:
    module = importlib.import_module(".training.just_dub_it.datagen_folder", _package())
    return int(module.main(args) or 0)


def cmd_dubbing_clips(args) -> int:
    module = importlib.import_module(".training.just_dub_it.datagen_generate", _package())
    return int(module.main(args) or 0)


def cmd_train_defaults(args) -> int:
    module = importlib.import_module(".training.defaults.cli", _package())
    return int(module.main_train(args) or 0)


def cmd_eval_defaults(args) -> int:
    module = importlib.import_module(".training.defaults.cli", _package())
    return int(module.main_eval(args) or 0)


def cmd_eval(args) -> int:
    module = importlib.import_module(".metrics.cli", _package())
    return int(module.main(args) or 0)


def cmd_thumbnails(args) -> int:
    module = importlib.import_module(".headless.thumbnails", _package())
    module.make_thumbnails(args.names or None)
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundstage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def graph_command(name, func, help_):
        p = sub.add_parser(name, help=help_)
        p.add_argument("workflow", help="UI-format or API-format workflow JSON")
        p.add_argument("--set", action="append", metavar="NODE_ID.INPUT=VALUE", help="override a node input")
        p.add_argument("--input-dir")
        p.add_argument("--output-dir")
        p.add_argument("--models-dir")
        p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
        p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of node errors")
        p.set_defaults(func=func)

    graph_command("run", cmd_run, "execute a workflow headless")
    graph_command("validate", cmd_validate, "validate a workflow without running it")

    batch = sub.add_parser("batch", help="run a workflow once per file of a folder (resumable; --ray for a cluster)")
    batch.add_argument("workflow", help="UI-format or API-format workflow JSON with a Load Video / Load Audio node")
    batch.add_argument("--inputs", required=True, help="folder of input files (searched recursively)")
    batch.add_argument("--out", required=True, help="folder for one output folder per input and manifest.jsonl")
    batch.add_argument("--input-node", help="id of the load node that gets each file (when the graph has several)")
    batch.add_argument("--set", action="append", metavar="NODE_ID.INPUT=VALUE", help="override a node input")
    batch.add_argument("--models-dir")
    batch.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    batch.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run the items on Ray: a local cluster, or the cluster at ADDRESS (ray://host:10001, auto)")
    batch.add_argument("--num-cpus", type=float, default=1.0, help="CPUs each Ray worker reserves (default 1)")
    batch.add_argument("--num-gpus", type=float, default=0.0, help="GPUs each Ray worker reserves (e.g. 1, 0.5)")
    batch.add_argument("--workers", type=int, default=None, help="Ray workers (default: as many as the shares fit)")
    batch.add_argument("--retries", type=int, default=3, help="times an item is sent again when its worker dies")
    batch.set_defaults(func=cmd_batch)
    sub.add_parser("list-nodes", help="list Soundstage nodes").set_defaults(func=cmd_list_nodes)
    sub.add_parser("object-info", help="print /object_info JSON for Soundstage nodes").set_defaults(
        func=cmd_object_info
    )

    export = sub.add_parser("export-ui", help="write an API prompt as a UI workflow the editor opens")
    export.add_argument("workflow")
    export.add_argument("--out", help="file to write (default: stdout)")
    export.add_argument("--title", default=None)
    export.set_defaults(func=cmd_export_ui)

    train = sub.add_parser("train", help="train or fine-tune a model")
    train_sub = train.add_subparsers(dest="system", required=True)
    wants_training = bool(argv) and argv[0] == "train"  # trainer imports are heavy: only when asked
    for name, module_name in TRAINERS.items():
        p = train_sub.add_parser(name)
        if wants_training:
            importlib.import_module(module_name, _package()).add_arguments(p)
        p.set_defaults(func=cmd_train)

    synth = sub.add_parser("synth", help="generate synthetic audio-visual clips with ground truth")
    synth.add_argument("--out", required=True)
    synth.add_argument("--n", type=int, default=4)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--seconds", type=float, default=3.0)
    synth.add_argument("--size", type=int, default=128)
    synth.add_argument("--fps", type=int, default=25)
    synth.add_argument("--split", choices=["train", "heldout", "ci"], default=None,
                       help="take clips from this fixed seed range of the synthetic world (the tiny defaults' data)")
    synth.add_argument("--task", choices=["full", "speech", "v2a"], default="full",
                       help="with --split: v2a = balls and beeps only, no speech")
    synth.add_argument("--languages", nargs="+", default=None, help="dubbing-pair languages (default: en fr)")
    synth.add_argument("--switch", type=int, default=None, metavar="HALF_FRAMES",
                       help="language-switch clips (the line in one language, a pause, then in another) with the "
                            ".switch.json sidecars dubbing-data --clips reads: two halves of HALF_FRAMES frames "
                            "(8k+1), or 0: each clip as long as its whole lines; clips of --split (default train)")
    synth.add_argument("--samples", action="store_true",
                       help="write the named sample inputs the example workflows load (e.g. into ComfyUI's input/)")
    synth.set_defaults(func=cmd_synth)

    dub_data = sub.add_parser("dubbing-data", help="build JUST-DUB-IT training pairs from language-switching clips")
    if bool(argv) and argv[0] == "dubbing-data":  # heavy imports only when asked, as for `train`
        importlib.import_module(".training.just_dub_it.datagen_folder", _package()).add_arguments(dub_data)
    dub_data.set_defaults(func=cmd_dubbing_data)

    dub_clips = sub.add_parser("dubbing-clips", help="generate language-switching clips with the base LTX-2 model")
    if bool(argv) and argv[0] == "dubbing-clips":
        importlib.import_module(".training.just_dub_it.datagen_generate", _package()).add_arguments(dub_clips)
    dub_clips.set_defaults(func=cmd_dubbing_clips)

    for name, func, adder, help_ in (
            ("train-defaults", cmd_train_defaults, "add_train_arguments", "train a system's tiny default on the synthetic world"),
            ("eval-defaults", cmd_eval_defaults, "add_eval_arguments", "evaluate tiny defaults on held-out clips")):
        p = sub.add_parser(name, help=help_)
        if bool(argv) and argv[0] == name:  # heavy imports only when asked, as for `train`
            getattr(importlib.import_module(".training.defaults.cli", _package()), adder)(p)
        p.set_defaults(func=func)

    ev = sub.add_parser("eval", help="score predicted clips against references")
    ev.add_argument("--pred", required=True)
    ev.add_argument("--ref", required=True)
    ev.add_argument("--out", default=None, help="folder for report.json, report.md and plots")
    ev.add_argument("--clip", default=None, help="CLIP vision weights (file or HF folder) for Temp-C and CLIP FD")
    ev.set_defaults(func=cmd_eval)

    thumbs = sub.add_parser("thumbnails", help="redraw workflows/<name>.jpg, the Templates dialog's pictures "
                                                "(workflows that run as shipped show their real output)")
    thumbs.add_argument("names", nargs="*", help="workflow names (default: all)")
    thumbs.set_defaults(func=cmd_thumbnails)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    SIGNALS.received = None
    SIGNALS.install()
    try:
        args = build_parser(argv).parse_args(argv)
        return args.func(args)
    except InvalidWorkflowFile as exc:
        print(json.dumps(exc.response, indent=2))
        return EXIT_INVALID
    except KeyboardInterrupt:
        print(SIGNALS.message(command), file=sys.stderr)
        return SIGNALS.exit_code()
    except (FileNotFoundError, ValueError) as exc:  # bad files or settings given to the command
        if os.environ.get("SOUNDSTAGE_DEBUG"):
            raise
        print(f"soundstage {command}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # a bug, not bad input: its own exit code, the traceback on request
        if os.environ.get("SOUNDSTAGE_DEBUG"):
            raise
        print(f"soundstage {command}: internal error ({type(exc).__name__}: {exc}); please report it "
              "(SOUNDSTAGE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        SIGNALS.restore()
