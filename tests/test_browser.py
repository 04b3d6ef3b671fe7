"""What an artist sees: every example workflow in ComfyUI's real web frontend, in headless Chromium.

A real ComfyUI server (the snapshot at ../shared/comfyui or SOUNDSTAGE_COMFYUI) with the pack in its
custom_nodes; each workflow is loaded from the Templates dialog, then checked: no two node boxes
overlap once previews have loaded, the pack's links are drawn in their own colours, the pack's audio
nodes have a player (and Load Audio an upload button), no node is deprecated or has a blank file,
the model dropdowns offer only files that fit. The workflows that need no model weights are run with
the Run button to success, with their text results and audio players filled. The node search finds
the nodes for artist words. Classic canvas and the Vue-nodes mode. Screenshots of failures go to
$SOUNDSTAGE_SCREENSHOTS (default: the test's temporary folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

import browser_session as bs

pytestmark = [pytest.mark.skipif(bs.missing() is not None, reason=f"browser test: {bs.missing()}"),
              pytest.mark.timeout(900)]

PALETTE = dict(re.findall(r'(SOUNDSTAGE_\w+): "(#[0-9a-fA-F]{6})"', (bs.REPO / "js" / "colours.js").read_text()))
AUDIO_NODES = {"SoundstageLoadAudio", "SoundstageSaveAudio", "SoundstagePreviewAudio"}
# Workflows whose nodes need no model weights of the user's (soundtrack_mmdit, soundtrack_dualdub, t2av_ovi,
# audio_to_video_mtv: the pack's tiny defaults, on the sample input prepare_base writes): run to success in the
# browser.
RUNNABLE = {"synth_mix_mux": {"1": {"seconds": 1.5, "size": 64}}, "media_me_delivery": {}, "soundtrack_mmdit": {},
            "soundtrack_dualdub": {}, "t2av_ovi": {}, "audio_to_video_mtv": {}}
# Decoy files in the model folders (prepare_decoys) and the loader inputs that must not offer them.
DECOYS = {"vae": ["Wan2.2_VAE.pth", "cogvideox_vae.safetensors"],
          "soundstage/mmaudio": ["mmaudio_large_44k_v2.pth", "synchformer_state_dict.pth", "v1-16.pth",
                                 "best_netG.pt", "tokenizer.json"]}
MUST_NOT_OFFER = {
    ("SoundstageLoadMelVAE", "vae_name"): {"Wan2.2_VAE.pth", "cogvideox_vae.safetensors", "mmaudio_large_44k_v2.pth",
                                          "synchformer_state_dict.pth", "best_netG.pt"},
    ("SoundstageLoadVocoder", "vocoder_name"): {"Wan2.2_VAE.pth", "cogvideox_vae.safetensors", "v1-16.pth",
                                               "mmaudio_large_44k_v2.pth", "synchformer_state_dict.pth"},
    ("SoundstageLoadMMDiT", "model_name"): {"best_netG.pt", "v1-16.pth", "synchformer_state_dict.pth"},
    ("SoundstageLoadMMDiTVisualEncoders", "synchformer_name"): {"best_netG.pt", "v1-16.pth",
                                                                "mmaudio_large_44k_v2.pth"},
    ("SoundstageMMDiTLyricsEncode", "tokenizer"): {"best_netG.pt", "v1-16.pth", "mmaudio_large_44k_v2.pth",
                                                   "synchformer_state_dict.pth"},
}
SEARCH = {"mmaudio": {"SoundstageMMDiTSampler", "SoundstageLoadMMDiT"}, "foley": {"SoundstageMMDiTSampler"},
          "audio to video": {"SoundstageMTVSampler"}, "lip sync": {"SoundstageDubbingSampler"},
          "dubbing": {"SoundstageDubbingSampler"}}
TEXT_RESULTS = {"synth_mix_mux": {"4"}, "soundtrack_mmdit": {"33"}}  # AV Sync Metrics: its report on the node
MODES = {"canvas": {"Comfy.VueNodes.Enabled": False}, "vue": {"Comfy.VueNodes.Enabled": True}}


def prepare_decoys(base: Path) -> None:
    for folder, names in DECOYS.items():
        (base / "models" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (base / "models" / folder / name).write_bytes(b"\0" * 64)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = bs.prepare_base(tmp_path_factory.mktemp("comfyui"))
    prepare_decoys(base)
    with bs.comfy_server(base) as url:
        yield url, base


@pytest.fixture(scope="module", params=list(MODES))
def page(request, server, tmp_path_factory):
    url, base = server
    with bs.browser(tmp_path_factory.mktemp("chromium")) as context:
        p = bs.open_app(context, url, MODES[request.param])
        p.mode = request.param
        yield p


@pytest.fixture
def shoot(page, request, tmp_path):
    """Calls the check; on failure saves a screenshot of the page and names it in the error."""
    def run(check, *args):
        try:
            check(*args)
        except Exception as e:
            folder = Path(os.environ.get("SOUNDSTAGE_SCREENSHOTS") or tmp_path)
            folder.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^\w.-]+", "_", request.node.name)
            shot = folder / f"{page.mode}-{safe}.png"
            page.screenshot(path=str(shot))
            raise AssertionError(f"{e}\n(screenshot: {shot})") from e
    return run


NODE_STATE = """() => app.graph.nodes.map(n => ({
    id: String(n.id), type: n.type, title: n.title,
    registered: n.type in LiteGraph.registered_node_types,
    deprecated: !!n.constructor.nodeData?.deprecated,
    tracks: (n.inputs ?? []).filter(i => /^track_\\d+$/.test(i.name) && i.link != null).length,
    widgets: (n.widgets ?? []).map(w => ({name: w.name, type: w.type, hidden: !!w.hidden, value: typeof w.value === 'string' ? w.value : null,
        options: Array.isArray(w.options?.values) ? w.options.values : null,
        element: w.element?.tagName ?? null, src: w.element?.src ?? null,
        visible: w.element ? !!(w.element.offsetWidth || w.element.offsetHeight || w.element.getClientRects().length) : null})),
}))"""


# The text is on screen: in the classic canvas in the widget's textarea, in Vue-nodes mode in the node's DOM.
TEXT_SHOWN = """([id, text]) => {
    const shown = e => !!e && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
    const w = app.graph.getNodeById(Number(id))?.widgets?.find(w => w.name === 'soundstage_result');
    if (w?.element && shown(w.element) && w.element.value.includes(text)) return true;
    const node = document.querySelector(`[data-node-id="${id}"]`);
    return !!node && [...node.querySelectorAll('textarea, input, pre, div')].some(e => shown(e)
        && ((e.value ?? '').includes(text) || (e.children.length === 0 && e.textContent.includes(text))));
}"""


# ... and whole: the box that shows it has room for every line (no scrolling needed to read a report).
TEXT_WHOLE = """([id, text]) => {
    const w = app.graph.getNodeById(Number(id))?.widgets?.find(w => w.name === 'soundstage_result');
    const node = document.querySelector(`[data-node-id="${id}"]`);
    const boxes = [w?.element, ...(node ? node.querySelectorAll('textarea') : [])]
        .filter(e => e && e.offsetHeight && (e.value ?? '').includes(text));
    return boxes.length > 0 && boxes.every(e => e.scrollHeight <= e.clientHeight + 2);
}"""


def fit_view(page) -> None:
    page.evaluate("""() => { const c = app.canvas; const nodes = app.graph.nodes; if (!nodes.length) return;
        const r = nodes.map(n => n.boundingRect);
        const x0 = Math.min(...r.map(b => b[0])), y0 = Math.min(...r.map(b => b[1]));
        const x1 = Math.max(...r.map(b => b[0] + b[2])), y1 = Math.max(...r.map(b => b[1] + b[3]));
        const w = c.canvas.clientWidth - 120, h = c.canvas.clientHeight - 120;
        c.ds.scale = Math.min(1, w / (x1 - x0), h / (y1 - y0));
        c.ds.offset = [80 / c.ds.scale - x0, 60 / c.ds.scale - y0]; c.setDirty(true, true); }""")
    page.wait_for_timeout(300)


def look_at(page, node_id) -> None:
    """Zoom 1, the node at the top left: as a user looks at one node of a large graph."""
    page.evaluate("""(id) => { const c = app.canvas; const n = app.graph.getNodeById(Number(id)) ?? app.graph.getNodeById(id);
        c.ds.scale = 1; c.ds.offset = [80 - n.pos[0], 80 - n.pos[1]]; c.setDirty(true, true); }""", node_id)
    page.wait_for_timeout(500)


@pytest.mark.parametrize("name", bs.WORKFLOWS)
def test_workflow_in_the_editor(page, name, shoot):
    shoot(check_workflow, page, name)


def check_workflow(page, name) -> None:
    bs.load_template(page, name)
    fit_view(page)
    nodes = page.evaluate(NODE_STATE)
    # 7: every node known, none deprecated, no blank file pickers
    assert all(n["registered"] for n in nodes), [n["type"] for n in nodes if not n["registered"]]
    assert not [n["title"] for n in nodes if n["deprecated"]], "deprecated nodes"
    blank = [(n["title"], w["name"]) for n in nodes for w in n["widgets"]
             if w["name"] in ("file", "audio", "video", "image") and w["options"] is not None and not w["value"]]
    assert not blank, f"blank file inputs {blank}"
    # 1: no two node boxes overlap once previews have loaded
    assert bs.overlaps(page.evaluate(bs.NODE_BOXES)) == []
    # 2: the pack's audio nodes have core's player; Load Audio its upload button and the file in the player
    for n in nodes:
        if n["type"] in AUDIO_NODES:
            widgets = {w["name"]: w for w in n["widgets"]}
            assert widgets.get("audioUI", {}).get("element") == "AUDIO", f"{n['title']} has no audio player"
            if n["type"] == "SoundstageLoadAudio":
                assert "upload" in widgets, f"{n['title']} has no upload button"
                assert widgets["file"]["value"] in (widgets["audioUI"]["src"] or ""), n["title"]
    # 9: Mix Tracks / Mux show per-track settings only up to the connected tracks and the next free one
    for n in nodes:
        if n["type"] in ("SoundstageMixTracks", "SoundstageMux"):
            rows = [w for w in n["widgets"] if re.match(r"(gain|role|title|language)_\d+$", w["name"])]
            shown = [w["name"] for w in rows if not w["hidden"]]
            assert rows and len(shown) <= 2 * (n["tracks"] + 1), f"{n['title']} shows {shown} for {n['tracks']} tracks"
    # 5: loaders offer only files that fit
    for n in nodes:
        for w in n["widgets"]:
            wrong = MUST_NOT_OFFER.get((n["type"], w["name"]), set()) & set(w["options"] or [])
            assert not wrong, f"{n['title']} '{w['name']}' offers {sorted(wrong)}"
    # 3: every pack link has its palette colour, and links are drawn in it (a pixel at a link's centre)
    links = page.evaluate(bs.PACK_LINKS)
    assert all(link["colour"].lower() == PALETTE.get(link["type"], link["colour"]).lower() and link["colour"]
               for link in links), [(l["type"], l["colour"]) for l in links]
    if links and page.mode == "canvas":
        drawn = [l for l in links if l["pixel"] and min(max(abs(a - b) for a, b in zip(p, bs.hex_rgb(l["colour"])))
                                                         for p in l["pixel"]) <= 16]
        assert drawn, f"no pack link drawn in its colour: {[(l['type'], l['colour']) for l in links]}"
    if name in RUNNABLE:
        run_to_success(page, name, RUNNABLE[name])


def run_to_success(page, name, overrides) -> None:
    """Run button -> execution_success; then text results and audio players are filled."""
    for node_id, values in overrides.items():
        page.evaluate("([id, values]) => { const n = app.graph.getNodeById(Number(id)) ?? app.graph.getNodeById(id);"
                      " for (const [k, v] of Object.entries(values)) n.widgets.find(w => w.name === k).value = v; }",
                      [node_id, values])
    assert bs.run_graph(page) == "success"
    page.wait_for_timeout(1000)
    bs.wait_for_previews(page)
    # 1 again: the previews the run added (a saved video, a muxed file) cover no other node
    assert bs.overlaps(page.evaluate(bs.NODE_BOXES)) == []
    nodes = page.evaluate(NODE_STATE)
    for n in nodes:
        widgets = {w["name"]: w for w in n["widgets"]}
        if n["type"] in ("SoundstageSaveAudio", "SoundstagePreviewAudio"):
            assert "/api/view" in (widgets["audioUI"]["src"] or ""), f"{n['title']}: player has no file after the run"
        if n["id"] in TEXT_RESULTS.get(name, ()):
            result = widgets.get("soundstage_result")
            assert result and result["value"], f"{n['title']}: no text result on the node"
            look_at(page, n["id"])  # a wide graph fits at a zoom where the editor hides node widgets
            assert page.evaluate(TEXT_SHOWN, [n["id"], result["value"][:40]]), f"{n['title']}: text result not visible"
            assert page.evaluate(TEXT_WHOLE, [n["id"], result["value"][:40]]), f"{n['title']}: text result cut off"


TEMPLATE_CARDS = """() => [...document.querySelectorAll('[data-testid^="template-workflow-"]')].map(c => {
    const r = c.getBoundingClientRect(), img = c.querySelector('img');
    return {name: c.dataset.testid.slice('template-workflow-'.length), title: c.querySelector('h3')?.textContent.trim(),
            description: c.querySelector('.soundstage-template-description')?.textContent ?? null,
            shown: r.width > 0 && r.height > 0, x: r.x, y: r.y, img: img?.getAttribute('src') ?? null,
            loaded: !!img && img.complete && img.naturalWidth > 0};
})"""


def test_templates_dialog_titles_describes_and_sorts_the_examples(page, shoot):
    shoot(check_templates_dialog, page)


def check_templates_dialog(page) -> None:
    """8: each example's card has its title and one-line description (its extra.soundstage), the cards run by
    system then title, and each shows its own thumbnail."""
    info = {name: json.loads((bs.REPO / "workflows" / f"{name}.json").read_text())["extra"]["soundstage"]
            for name in bs.WORKFLOWS}
    bs.open_templates(page)
    try:
        page.wait_for_function(f"() => document.querySelectorAll('.soundstage-template-description').length >= "
                               f"{len(info)}", timeout=30_000)
        cards = {c["name"]: c for c in page.evaluate(TEMPLATE_CARDS)}
        assert set(info) <= set(cards), f"cards missing: {sorted(set(info) - set(cards))}"
        for name, meta in info.items():
            card = cards[name]
            assert card["shown"] and card["title"] == meta["title"], (name, card["title"])
            assert card["description"] == meta["description"], (name, card["description"])
        on_screen = [c["name"] for c in sorted((cards[n] for n in info), key=lambda c: (round(c["y"]), c["x"]))]
        expected = sorted(info, key=lambda n: (info[n]["system"].lower(), info[n]["title"].lower()))
        assert on_screen == expected, f"order on screen {on_screen}"
        for name in expected:  # thumbnails load as they scroll into view; each card shows its own file
            page.locator(f'[data-testid="template-workflow-{name}"]').first.scroll_into_view_if_needed()
            page.wait_for_function("(n) => { const i = document.querySelector(`[data-testid='template-workflow-${n}'] img`);"
                                   " return i && i.complete && i.naturalWidth > 0; }", arg=name, timeout=15_000)
            digest = page.evaluate("""async (n) => {
                const i = document.querySelector(`[data-testid='template-workflow-${n}'] img`);
                const bytes = await (await fetch(i.src)).arrayBuffer();
                return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
                    .map(b => b.toString(16).padStart(2, '0')).join(''); }""", name)
            assert digest == hashlib.sha256((bs.REPO / "workflows" / f"{name}.jpg").read_bytes()).hexdigest(), name
    finally:
        bs.close_dialogs(page)


@pytest.mark.parametrize("word", list(SEARCH))
def test_search_finds_the_nodes(page, server, word, shoot):
    shoot(check_search, page, server, word)


def check_search(page, server, word) -> None:
    import urllib.request

    url, _ = server
    names = {k: v["display_name"] for k, v in json.loads(urllib.request.urlopen(url + "/object_info").read()).items()
             if k in set().union(*SEARCH.values())}
    missing, found = set(SEARCH[word]), []
    # On a loaded machine the double click can land before the canvas takes it, or the results render
    # late: open the box until its input has focus, then wait for the results rather than a fixed time.
    for _ in range(3):
        page.evaluate("app.graph.clear()")
        bs.close_dialogs(page)
        page.mouse.dblclick(800, 600)
        try:
            page.wait_for_function("() => document.activeElement?.tagName === 'INPUT'", timeout=5000)
        except Exception:
            continue
        page.keyboard.type(word)
        for _ in range(40):
            page.wait_for_timeout(250)
            found = page.locator("[data-testid=result-item]").all_inner_texts()[:12]
            missing = {node for node in SEARCH[word] if not any(names[node] in text for text in found)}
            if not missing:
                break
        page.keyboard.press("Escape")
        if found:
            break
    assert not missing, f"search '{word}' misses {[names[m] for m in missing]}; found {found}"


def test_help_pages_are_served_where_the_frontend_looks(server):
    """The frontend fetches a custom node's help from /extensions/<pack folder>/docs/<node id>.md."""
    import urllib.request

    url, _ = server
    pages = sorted((bs.REPO / "js" / "docs").glob("*.md"))
    assert len(pages) >= 5
    info = json.loads(urllib.request.urlopen(url + "/object_info").read())
    for page in pages:
        assert page.stem in info, f"help page for an unknown node {page.stem}"
        module = info[page.stem]["python_module"]
        assert module.startswith("custom_nodes."), module
        folder = module.split(".")[1]
        text = urllib.request.urlopen(f"{url}/extensions/{folder}/docs/{page.stem}.md").read().decode()
        assert "**Paper:**" in text and "section" in text, page.name
