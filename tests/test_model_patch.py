"""ModelHandle: where a module computes, when it is released, and which dtypes it keeps."""
from __future__ import annotations

import types

import torch

from soundstage.models.common.device import Placement
from soundstage.nodes import model_patch
from soundstage.nodes.model_patch import ModelHandle

CPU = torch.device("cpu")
META = torch.device("meta")  # an "offload device" that visibly differs from the compute device


def _module() -> torch.nn.Module:
    return torch.nn.Linear(3, 2)


def test_default_headless_goes_back_to_the_offload_device_after_use():
    handle = ModelHandle(_module(), Placement(CPU, torch.float32, offload=META))
    with handle.use() as live:
        assert live.weight.device == CPU and not live.training and not live.weight.requires_grad
    assert handle.module.weight.device == META


def test_offload_after_use_false_keeps_the_module_resident():
    handle = ModelHandle(_module(), Placement(CPU, torch.float32, offload=META), offload_after_use=False)
    with handle.use():
        pass
    assert handle.module.weight.device == CPU


def test_cast_dtype_false_moves_without_casting():
    half = _module().to(torch.float16)
    ModelHandle(half, Placement(CPU, torch.float32, cast_dtype=False)).use().__enter__()
    assert half.weight.dtype == torch.float16
    cast = _module().to(torch.float16)
    with ModelHandle(cast, Placement(CPU, torch.float32)).use():
        assert cast.weight.dtype == torch.float32


def test_offload_after_use_unloads_only_its_own_patcher_in_comfyui(monkeypatch):
    handle = ModelHandle(_module(), Placement(CPU, torch.float32), offload_after_use=True)
    handle._patcher = types.SimpleNamespace(model=model_patch._Container(handle.module))  # as built inside ComfyUI
    unloaded = []

    class Loaded:
        def __init__(self, model):
            self.model = model

        def model_unload(self):
            unloaded.append(self.model)

    other = Loaded(object())
    loaded = [other, Loaded(handle._patcher)]
    mm = model_patch.model_management
    monkeypatch.setattr(mm, "current_loaded_models", loaded, raising=False)
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: loaded.append(Loaded(models[0])), raising=False)
    with handle.use() as live:
        assert live is handle.module and len(loaded) == 3
    assert unloaded == [handle._patcher, handle._patcher] and loaded == [other]


def test_comfyui_default_leaves_the_model_to_the_manager(monkeypatch):
    handle = ModelHandle(_module(), Placement(CPU, torch.float32))
    handle._patcher = types.SimpleNamespace(model=model_patch._Container(handle.module))
    calls = []
    mm = model_patch.model_management
    monkeypatch.setattr(mm, "current_loaded_models", [], raising=False)
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: calls.append((models, kw)), raising=False)
    with handle.use():
        pass
    # never a partial (lowvram) load: plain modules cannot compute with weights left on the CPU
    assert calls == [([handle._patcher], {"force_full_load": True})] and mm.current_loaded_models == []
