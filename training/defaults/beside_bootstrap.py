"""The second process of ``stages.Beside`` (a fresh interpreter, run through ``runpy.run_path``): the pack under
the name the first process imported it as, from the same folder (a test's or ComfyUI's path-derived import need
not be installed), its share of the CPU threads, then one call, whose value or error goes back down the pipe."""
import importlib
import importlib.util
import pickle
import sys
import traceback


def serve(package: str, root: str, threads: int, module: str, qualname: str, conn) -> None:
    try:
        if package not in sys.modules:
            spec = importlib.util.spec_from_file_location(package, f"{root}/__init__.py",
                                                          submodule_search_locations=[root])
            sys.modules[package] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(sys.modules[package])
        import torch

        torch.set_num_threads(threads)
        fn = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        # plain pickle both ways (stages.Beside): tensors are copied, not left in this process's shared memory
        conn.send_bytes(pickle.dumps(("value", fn(*pickle.loads(conn.recv_bytes())))))
    except BaseException as error:  # noqa: BLE001 (whatever it was, the first process raises it)
        try:
            conn.send_bytes(pickle.dumps(("error", error, traceback.format_exc())))
        except Exception:  # an error that does not pickle goes back as its text
            conn.send_bytes(pickle.dumps(("error", RuntimeError(repr(error)), traceback.format_exc())))
    finally:
        conn.close()


serve(**BESIDE)  # noqa: F821 (runpy.run_path's init_globals)
