"""Run inside a real ComfyUI checkout (cwd): load the pack with ComfyUI's own loader, then validate
and execute an API prompt with ComfyUI's executor. Prints one JSON line. Used by test_in_comfyui.py."""
import asyncio
import json
import os
import sys

pack, prompt_path, output_dir = sys.argv[1:4]
input_dir = sys.argv[4] if len(sys.argv) > 4 else None
models_dir = sys.argv[5] if len(sys.argv) > 5 else None
sys.path.insert(0, os.getcwd())
from comfy.cli_args import args  # noqa: E402

args.cpu = True
import execution  # noqa: E402
import folder_paths  # noqa: E402
import nodes  # noqa: E402

folder_paths.set_output_directory(output_dir)
if input_dir:
    folder_paths.set_input_directory(input_dir)
if models_dir:  # before the pack registers its model folders under it; standard folders look there first
    folder_paths.models_dir = models_dir
    for name in list(folder_paths.folder_names_and_paths):
        folder_paths.add_model_folder_path(name, os.path.join(models_dir, name), is_default=True)
# ComfyUI's own audio/video nodes (LoadAudio, LoadVideo, SaveVideo ...) that the examples use.
for extra in ("nodes_audio.py", "nodes_video.py"):
    asyncio.run(nodes.load_custom_node(os.path.join(os.getcwd(), "comfy_extras", extra), module_parent="comfy_extras"))
loaded = asyncio.run(nodes.load_custom_node(pack))
ours = sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("Soundstage"))


class Server:
    client_id = last_node_id = last_prompt_id = None
    errors: list = []

    def send_sync(self, event, data, sid=None):
        if event in ("execution_error", "execution_interrupted"):
            Server.errors.append({"event": event, "data": {k: str(v) for k, v in data.items()}})

    def queue_updated(self):
        pass


prompt = json.load(open(prompt_path))
valid = asyncio.run(execution.validate_prompt("probe", prompt, None))
result = {"loaded": loaded, "nodes": ours, "valid": valid[0], "validation": valid[1] if not valid[0] else None}
if valid[0]:
    # as main.py makes it (0.33 reads cache_args["ram"] on every run), with the classic cache
    cache_type = getattr(getattr(execution, "CacheType", None), "CLASSIC", False)
    executor = execution.PromptExecutor(Server(), cache_type=cache_type,
                                        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    executor.execute(prompt, "probe", {}, valid[2])
    failures = [{"event": e, "data": {k: str(v)[:2000] for k, v in d.items()}} for e, d in executor.status_messages
                if e in ("execution_error", "execution_interrupted")]
    result.update(success=executor.success, outputs=executor.history_result["outputs"], errors=Server.errors + failures)
print(json.dumps(result, default=str))
