"""The example-layout tool (browser_session.stacked_layout) on measured boxes: no browser needed."""
from browser_session import stacked_layout


def workflow(*nodes):
    return {"nodes": [{"id": i, "type": t, "pos": list(p)} for i, t, p in nodes]}


def boxes(*sizes):
    return [{"id": i, "title": str(i), "x": 0, "y": 0, "w": w, "h": h} for i, w, h in sizes]


def test_a_column_is_restacked_top_down_with_gaps():
    wf = workflow((1, "LoadVideo", (0, 0)), (2, "SoundstageLoadMMDiT", (0, 100)), (3, "GetVideoComponents", (400, 0)))
    pos = stacked_layout(wf, boxes((1, 320, 300), (2, 320, 112), (3, 320, 86)), gap=40, column_gap=60)
    assert pos[1] == [0, 0] and pos[2] == [0, 340]  # below the measured preview, not the saved size
    assert pos[3] == [380, 0]


def test_room_is_kept_below_the_previews_a_run_adds():
    # Save Video has no preview until the workflow runs; then a square as wide as the node appears
    wf = workflow((1, "SaveVideo", (0, 0)), (2, "SoundstageAVSyncMetrics", (0, 200)))
    pos = stacked_layout(wf, boxes((1, 320, 164), (2, 320, 138)), gap=40)
    assert pos[2][1] >= 164 + 320 + 40
    plain = workflow((1, "CreateVideo", (0, 0)), (2, "SoundstageAVSyncMetrics", (0, 200)))
    assert stacked_layout(plain, boxes((1, 320, 164), (2, 320, 138)), gap=40)[2][1] == 204
