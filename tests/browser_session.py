"""A real ComfyUI server with the pack, and its web frontend in headless Chromium (Playwright).

Used by test_browser.py and benchmarks/layout_workflows.py. Needs a ComfyUI checkout (SOUNDSTAGE_COMFYUI,
else ../shared/comfyui beside the repo), ComfyUI's requirements (comfyui-frontend-package), Playwright
for Python and a system Chromium (SOUNDSTAGE_CHROMIUM, else chromium on PATH): Playwright's own browser
download is never used. ``missing()`` says which of these is absent.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def comfyui_dir() -> Path | None:
    path = Path(os.environ.get("SOUNDSTAGE_COMFYUI") or REPO.parent / "shared" / "comfyui")
    return path if (path / "main.py").is_file() else None


def chromium() -> str | None:
    return os.environ.get("SOUNDSTAGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if comfyui_dir() is None:
        return "no ComfyUI checkout (set SOUNDSTAGE_COMFYUI or put one at ../shared/comfyui)"
    if chromium() is None:
        return "no system Chromium (apt-get install chromium, or set SOUNDSTAGE_CHROMIUM)"
    for module, package in (("playwright", "playwright"), ("comfyui_frontend_package", "comfyui-frontend-package"),
                            ("aiohttp", "ComfyUI's requirements")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed (.ci/setup-test-env installs it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base(base: Path) -> Path:
    """ComfyUI's writable folders: the pack linked into custom_nodes, the workflows' sample inputs in input/,
    and a few decoy model files that a loader must not offer (see test_browser's dropdown check)."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "soundstage"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(_package_root(base)))
    subprocess.run([sys.executable, "-m", "soundstage", "synth", "--samples", "--out", str(base / "input"),
                    "--seconds", "1.5", "--size", "64"], check=True, env=env, capture_output=True, timeout=300)
    return base


def _package_root(base: Path) -> Path:
    root = base / "pkg"
    root.mkdir(exist_ok=True)
    if not (root / "soundstage").exists():
        (root / "soundstage").symlink_to(REPO, target_is_directory=True)
    return root


@contextlib.contextmanager
def comfy_server(base: Path):
    """Runs ComfyUI on 127.0.0.1 (CPU) with its folders under ``base``; yields its URL."""
    port = _free_port()
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--base-directory", str(base), "--cpu", "--listen", "127.0.0.1",
         "--port", str(port), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
        cwd=comfyui_dir(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError("ComfyUI exited:\n" + (base / "server.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(url + "/object_info/SoundstageMux", timeout=5).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("ComfyUI did not start:\n" + (base / "server.log").read_text()[-3000:])
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser(user_data: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data), executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def open_app(context, url: str, settings: dict | None = None):
    """A page with the frontend loaded (first-run dialogs off); ``settings`` are applied before the graph."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    defaults = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": True}
    for key, value in {**defaults, **(settings or {})}.items():
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/api/settings/{key}", data=json.dumps(value).encode(), method="POST",
            headers={"Content-Type": "application/json"}), timeout=10).read()
    page.goto(url)
    page.wait_for_function("() => window.app?.graph && window.app.extensionManager && window.app.canvas",
                           timeout=120_000)
    page.wait_for_timeout(1000)
    return page


def open_templates(page):
    """Opens the Templates dialog on the pack's section; returns the dialog."""
    page.evaluate("app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.locator("[role=dialog]")
    click(dialog.get_by_text("soundstage", exact=True).first)
    return dialog


def load_template(page, name: str) -> None:
    """Opens the Templates dialog, picks the pack's section, clicks the workflow's card."""
    dialog = open_templates(page)
    click(dialog.locator(f'[data-testid="template-workflow-{name}"]').first)
    page.wait_for_function(f"() => app.graph.nodes.length > 0 && app.extensionManager.workflow.activeWorkflow"
                           f"?.filename?.includes({json.dumps(name)})", timeout=60_000)
    close_dialogs(page)
    wait_for_previews(page)


def click(locator, timeout_ms: int = 15_000) -> None:
    """Clicks; if the element never holds still (the template cards animate, and a loaded machine stretches
    the animation past Playwright's stability wait), clicks it anyway: the caller checks what the click did."""
    try:
        locator.click(timeout=timeout_ms)
    except Exception as e:
        if "Timeout" not in type(e).__name__:
            raise
        locator.click(force=True, timeout=timeout_ms)


def close_dialogs(page) -> None:
    for _ in range(3):
        if not page.locator(".p-dialog").count():
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def wait_for_previews(page, timeout_ms: int = 20_000) -> None:
    """Until every media preview on the canvas has loaded and node sizes stop changing."""
    page.wait_for_function("""() => {
        const media = [...document.querySelectorAll('video, img, audio')].filter(e => e.closest('.graph-canvas-container, .dom-widget, [data-node-id]'));
        const ready = media.every(e => e.tagName === 'IMG' ? e.complete : e.readyState >= 1 || !e.src);
        const sizes = JSON.stringify(app.graph.nodes.map(n => n.size));
        const same = sizes === window.__ssSizes; window.__ssSizes = sizes;
        return ready && same;
    }""", timeout=timeout_ms, polling=700)


NODE_BOXES = """() => app.graph.nodes.map(n => {
    const r = n.boundingRect; return {id: n.id, type: n.type, title: n.title, x: r[0], y: r[1], w: r[2], h: r[3]};
})"""


def overlaps(boxes: list[dict], margin: float = 0.0) -> list[tuple[str, str]]:
    hits = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] - margin and b["x"] < a["x"] + a["w"] - margin
                    and a["y"] < b["y"] + b["h"] - margin and b["y"] < a["y"] + a["h"] - margin):
                hits.append((f"{a['title']} #{a['id']}", f"{b['title']} #{b['id']}"))
    return hits


PACK_LINKS = """() => {
    // Each pack link's colour, and the pixels drawn around its centre with the view centred there at 100%.
    const c = app.canvas, links = app.graph.links instanceof Map ? [...app.graph.links.values()] : Object.values(app.graph.links ?? {});
    const saved = [c.ds.scale, [...c.ds.offset]], ctx = c.canvas.getContext('2d'), ratio = window.devicePixelRatio || 1;
    c.draw(true, true);
    const out = links.filter(l => l && String(l.type).startsWith('SOUNDSTAGE_')).map(l => {
        let pixel = null;
        if (l._pos) {
            const cx = c.canvas.clientWidth / 2, cy = c.canvas.clientHeight / 2;
            c.ds.scale = 1; c.ds.offset = [cx - l._pos[0], cy - l._pos[1]]; c.draw(true, true);
            // a 7x7 patch: the line is a few pixels wide and anti-aliased at its edges
            const d = ctx.getImageData(Math.round(cx * ratio) - 3, Math.round(cy * ratio) - 3, 7, 7).data;
            pixel = [];
            for (let i = 0; i < d.length; i += 4) pixel.push([d[i], d[i + 1], d[i + 2]]);
        }
        return {id: l.id, type: l.type, colour: LGraphCanvas.link_type_colors[l.type] ?? '',
                canvas_colour: c.default_connection_color_byType?.[l.type] ?? '', pixel};
    });
    c.ds.scale = saved[0]; c.ds.offset = saved[1]; c.setDirty(true, true);
    return out;
}"""


def hex_rgb(colour: str) -> tuple[int, int, int] | None:
    c = colour.strip().lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) if len(c) == 6 else None


# Output nodes whose media preview appears only once the workflow has run: the layout keeps room for a square
# preview as wide as the node (the examples' sample inputs are square), so the preview covers nothing below it.
RUN_PREVIEWS = ("SaveVideo", "SaveImage", "PreviewImage", "SoundstageMux")


def stacked_layout(workflow: dict, boxes: list[dict], gap: float = 40.0, column_gap: float = 60.0) -> dict:
    """Positions for ``workflow``'s nodes with no two boxes overlapping, from the boxes measured in the
    browser (previews loaded, and room for the previews a run adds): the columns and their order are kept,
    each column restacked top-down."""
    measured = {str(b["id"]): dict(b) for b in boxes}
    for node in workflow["nodes"]:
        box = measured[str(node["id"])]
        if node["type"] in RUN_PREVIEWS:
            box["h"] += box["w"]
    columns: dict[int, list[dict]] = {}
    for node in workflow["nodes"]:
        columns.setdefault(round(node["pos"][0] / 10), []).append(node)
    x, positions = 0.0, {}
    for key in sorted(columns):
        nodes = sorted(columns[key], key=lambda n: n["pos"][1])
        y = 0.0
        for node in nodes:
            box = measured[str(node["id"])]  # box = title bar + body, so the next title sits ``gap`` below
            positions[node["id"]] = [round(x), round(y)]
            y += box["h"] + gap
        x += max(measured[str(n["id"])]["w"] for n in nodes) + column_gap
    return positions


def relayout_workflows(base: Path, names: list[str] = WORKFLOWS) -> dict[str, int]:
    """Loads each workflow in the browser, in the classic canvas and in Vue-nodes mode, measures its boxes
    with previews loaded (the larger of the two per node) and writes the restacked positions into
    workflows/<name>.json (positions only: widget values stay as they are)."""
    prepare_base(base)
    measured: dict[str, dict[str, dict]] = {name: {} for name in names}
    with comfy_server(base) as url:
        for mode, vue in (("canvas", False), ("vue", True)):
            with browser(base / f"chrome-layout-{mode}") as context:
                page = open_app(context, url, {"Comfy.VueNodes.Enabled": vue})
                for name in names:
                    load_template(page, name)
                    for box in page.evaluate(NODE_BOXES):
                        old = measured[name].get(str(box["id"]))
                        if old is None or box["w"] * box["h"] > 0:
                            merged = dict(box) if old is None else {
                                **old, "w": max(old["w"], box["w"]), "h": max(old["h"], box["h"])}
                            measured[name][str(box["id"])] = merged
    for name in names:
        path = REPO / "workflows" / f"{name}.json"
        workflow = json.loads(path.read_text())
        positions = stacked_layout(workflow, list(measured[name].values()))
        for node in workflow["nodes"]:
            node["pos"] = positions[node["id"]]
        path.write_text(json.dumps(workflow, indent=1) + "\n")
    return {name: len(boxes) for name, boxes in measured.items()}


WATCH_RUN = """() => { window.__ssRun = null;
    app.api.addEventListener('execution_success', () => window.__ssRun = 'success', {once: true});
    app.api.addEventListener('execution_error', e => window.__ssRun = 'error: ' + JSON.stringify(e.detail).slice(0, 2000), {once: true}); }"""


def run_graph(page, timeout_ms: int = 300_000) -> str:
    """Clicks Run; 'success' or 'error: ...' once the prompt has ended."""
    page.evaluate(WATCH_RUN)
    click(page.get_by_role("button", name=re.compile(r"^\s*Run\s*$")).first)
    page.wait_for_function("() => window.__ssRun", timeout=timeout_ms)
    return page.evaluate("window.__ssRun")


def screenshots(base: Path, out: Path, names: list[str], run: bool = True) -> dict[str, str]:
    """What an artist sees, as PNGs in ``out``: the Templates dialog, and per workflow the graph as loaded
    (fitted), after a run (fitted) and the last node at 100 % (text results, players). Details are drawn at
    every zoom (LiteGraph's low-quality mode off) so a fitted graph stays readable."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    prepare_base(base)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with comfy_server(base) as url, browser(base / "chrome-shots") as context:
        page = open_app(context, url, {"Comfy.VueNodes.Enabled": False, "LiteGraph.Canvas.MinFontSizeForLOD": 1,
                                       "Comfy.Minimap.Visible": False})
        page.set_viewport_size({"width": 2000, "height": 1100})
        open_templates(page)
        page.wait_for_timeout(4000)
        page.screenshot(path=str(out / "templates.png"))
        close_dialogs(page)
        for name in names:
            load_template(page, name)
            page.evaluate("app.extensionManager.command.execute('Comfy.Canvas.FitView')")
            page.wait_for_timeout(1200)
            page.screenshot(path=str(out / f"{name}_loaded.png"))
            if not run:
                continue
            results[name] = run_graph(page)
            with contextlib.suppress(PlaywrightTimeout):
                wait_for_previews(page)
            for close in page.locator(".p-toast-icon-close").all():
                close.click(force=True)
            page.evaluate("app.extensionManager.command.execute('Comfy.Canvas.FitView')")
            page.wait_for_timeout(1200)
            page.screenshot(path=str(out / f"{name}_ran.png"))
            page.evaluate("""() => { const c = app.canvas, n = app.graph.nodes.filter(n => n.type !== 'Note')
                    .reduce((a, b) => (b.pos[0] > a.pos[0] || (b.pos[0] === a.pos[0] && b.pos[1] > a.pos[1])) ? b : a);
                c.ds.scale = 1; c.ds.offset = [700 - n.pos[0], 200 - n.pos[1]]; c.setDirty(true, true); }""")
            page.wait_for_timeout(1200)
            page.screenshot(path=str(out / f"{name}_result.png"))
    return results


if __name__ == "__main__":
    # python tests/browser_session.py --layout [names...]: rewrite the example layouts
    # python tests/browser_session.py --screenshots OUT [names...]: what an artist sees, as PNGs
    import tempfile

    if len(sys.argv) < 2 or sys.argv[1] not in ("--layout", "--screenshots"):
        sys.exit("usage: browser_session.py --layout [workflow ...] | --screenshots OUT [workflow ...]")
    with tempfile.TemporaryDirectory() as tmp:
        if sys.argv[1] == "--layout":
            print(json.dumps(relayout_workflows(Path(tmp), sys.argv[2:] or WORKFLOWS), indent=1))
        else:
            print(json.dumps(screenshots(Path(tmp), Path(sys.argv[2]), sys.argv[3:] or WORKFLOWS), indent=1))
