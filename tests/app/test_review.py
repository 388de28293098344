"""The Review page on synthetic, format-exact run folders: real widgets, real clicks, real layout thread."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.review import ReviewPage
from app.review.quant import fmt
from tests.app.review_fixtures import make_run_dir

BAD = "layer2.0.conv2"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("review") / "run", blocks=4, bad=BAD, kept_float=("fc",))


@pytest.fixture
def page(qtbot, run_dir):
    p = ReviewPage()
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    p.load_run(str(run_dir))
    qtbot.waitUntil(p.graph_ready, timeout=10_000)
    return p


def layer(page: ReviewPage, name: str) -> dict:
    return page.run.layer(name)


def click_node(qtbot, page: ReviewPage, node_id: str) -> None:
    page.tabs.setCurrentWidget(page.graph)
    view = page.graph.view
    item = view.current_scene().nodes[node_id]
    view.centerOn(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(item.pos()))


def test_clicking_a_node_shows_its_scale_and_selects_its_row(qtbot, page):
    with qtbot.waitSignal(page.graph.view.nodeSelected) as signal:
        click_node(qtbot, page, "layer1_0_conv1")
    assert signal.args == ["layer1_0_conv1"]
    details = page.graph.details
    assert details.value("Scale") == fmt(layer(page, "layer1.0.conv1")["act_scale"])
    assert details.value("Module") == "layer1.0.conv1"
    assert "channels" in details.value("Weight scale")
    assert page.table.selected_layers() == ["layer1.0.conv1"]


def test_the_summary_names_the_output_that_lost_most(page):
    assert "lowest output aux 27.9 dB" in page.summary.text()


def test_a_per_channel_dequantize_node_summarises_its_scales(qtbot, page):
    click_node(qtbot, page, "conv1_weight_dq")
    assert page.graph.details.value("Scale").endswith("(16 channels)")
    assert page.graph.details.value("Zero point") == "0 (all 16 channels)"


def test_sorting_by_sqnr_puts_the_lowest_first_and_missing_values_last(page):
    table = page.table
    table.sort_by("sqnr")
    names = table.visible_layers()
    assert names[0] == BAD
    assert names[-1] == "fc", "a kept-float layer has no SQNR and sorts last"
    table.sort_by("sqnr", Qt.SortOrder.DescendingOrder)
    names = table.visible_layers()
    assert names[-1] == "fc"
    best = max((x for x in page.run.layers if x["sqnr_db"] is not None), key=lambda x: x["sqnr_db"])
    assert names[0] == best["name"]


def test_the_filter_keeps_matching_layers(page):
    page.table.filter.setText("0.conv2")
    names = page.table.visible_layers()
    assert names == ["layer1.0.conv2", "layer2.0.conv2"]
    assert page.table.count.text() == f"{len(names)} of {page.layer_row_count()} layers"
    page.table.filter.setText("float")
    assert page.table.visible_layers() == ["fc"]


def test_selecting_a_row_selects_and_centres_the_graph_node_and_plots_it(qtbot, page):
    page.tabs.setCurrentWidget(page.layers_tab)
    table = page.table
    row = table.visible_layers().index(BAD)
    table.view.selectRow(row)
    view = page.graph.view
    assert view.selected_id() == "layer2_0_conv2"
    assert page.layer_plots.histogram.has_plot()
    assert page.layer_plots.weights.has_plot()
    assert page.keep.isEnabled() and "1 layer" in page.keep.text()
    page.tabs.setCurrentWidget(page.graph)
    item = view.current_scene().nodes["layer2_0_conv2"]
    seen = view.mapToScene(view.viewport().rect()).boundingRect()
    assert seen.contains(item.pos()) and abs(item.pos().y() - seen.center().y()) < 5


def test_histogram_of_a_quantized_layer_draws_the_grid_and_clipped_tails(page):
    page.table.select_layers([BAD])
    page._select([BAD], "plots")
    hist = page.plots.layer.histogram
    assert hist.grid is not None
    xs, _ = hist.grid.getData()
    assert 2 * 16 <= len(xs) <= 2 * 64, "one vertical segment per shown level, thinned to at most 64"
    assert hist.clip_regions, "the bad layer's outliers fall outside the int8 range"
    assert "clipped" in hist.caption.text()


def test_heat_overlay_colours_a_low_sqnr_node_red(page):
    page.graph.heat.setChecked(True)
    nodes = page.graph.view.current_scene().nodes
    bad, good = nodes["layer2_0_conv2"].fill_color(), nodes["layer1_0_conv1"].fill_color()
    assert bad.red() > bad.green() + 40
    assert good.green() > good.red()
    page.graph.heat.setChecked(False)
    assert nodes["layer2_0_conv2"].fill_color() == nodes["layer2_0_conv2"].fill


def test_switching_graphs_keeps_the_selected_layer_in_view(qtbot, page):
    page.graph.select_layer("layer2.1.conv1")
    view = page.graph.view
    page.graph.mode_group.buttons()[1].click()  # Float
    qtbot.waitUntil(view.is_ready)
    assert view.mode == "float"
    selected = view.current_scene().nodes[view.selected_id()]
    assert selected.node.layer == "layer2.1.conv1"
    assert view.mapToScene(view.viewport().rect()).boundingRect().contains(selected.pos())


def test_search_jumps_to_a_node(page):
    page.graph.search.setText("layer2.1.conv2")
    page.graph.find()
    assert page.graph.view.selected_id() == "layer2_1_conv2"
    assert page.table.selected_layers() == ["layer2.1.conv2"]
    page.graph.search.setText("no such thing")
    page.graph.find()
    assert page.graph.search_status.text() == "no match"


def test_keep_in_float_emits_the_selected_quantized_layers(qtbot, page):
    page.table.select_layers(["conv1", BAD, "fc"])
    page._select(["conv1", BAD, "fc"], "plots")
    with qtbot.waitSignal(page.keepFloatRequested) as signal:
        page.keep.click()
    assert signal.args == [["conv1", BAD]], "fc is float already"


def test_sensitivity_request_and_result(qtbot, page):
    page.sensitivity.target.setValue(33.0)
    with qtbot.waitSignal(page.sensitivityRequested) as asked:
        page.sensitivity.rank.click()
    assert asked.args == [33.0]
    result = {
        "baseline_sqnr_db": 24.0,
        "ranking": [
            {"layer": "conv1", "sqnr_db": 25.0, "gain_db": 1.0},
            {"layer": BAD, "sqnr_db": 31.0, "gain_db": 7.0},
        ],
        "auto_keep_float": [BAD],
        "reached": True,
    }
    page.show_sensitivity(result)
    assert page.tabs.currentWidget() is page.sensitivity
    assert page.sensitivity.chart.names == [BAD, "conv1"]
    with qtbot.waitSignal(page.keepFloatRequested) as keep:
        page.sensitivity.keep.click()
    assert keep.args == [[BAD]]


def test_comparison_banner_and_deltas(tmp_path, page, run_dir):
    previous = make_run_dir(tmp_path / "prev", blocks=4, bad=BAD, run_id=6, seed=3)
    page.set_comparison(str(previous))
    assert page.compare.isVisible() and "run 6" in page.compare.label.text()
    assert "Now in float: fc" in page.compare.label.text()
    assert not page.table.view.isColumnHidden(3)
    page.set_comparison(None)
    assert not page.compare.isVisible() and page.table.view.isColumnHidden(3)


def test_a_run_without_tensors_shows_empty_states(qtbot, tmp_path):
    page = ReviewPage()
    qtbot.addWidget(page)
    page.load_run(str(make_run_dir(tmp_path / "bare", blocks=2, tensors=False)))
    qtbot.waitUntil(page.graph_ready)
    page.table.view.selectRow(0)
    hist = page.layer_plots.histogram
    assert not hist.has_plot() and "tensors.npz" in hist.message.text()
    assert not page.plots.scatter.has_plot()
    assert page.problems.isVisibleTo(page) and "tensors.npz" in page.problems.label.text()
    assert page.layer_row_count() > 0 and page.graph_node_count() > 0


def test_a_folder_that_is_not_a_run_does_not_crash(qtbot, tmp_path):
    page = ReviewPage()
    qtbot.addWidget(page)
    page.load_run(str(tmp_path))
    assert page.layer_row_count() == 0 and page.graph_node_count() == 0
    assert "report.json" in page.problems.label.text()
    page.clear()
    assert not page.problems.isVisibleTo(page)


def test_screenshot_targets_can_be_shown(page):
    targets = page.screenshot_targets()
    assert {"graph", "layers", "plots"} <= set(targets)
    for key, widget in targets.items():
        page.show_target(key)
        assert widget.isVisible()
    assert page.graph_node_count() == len(page.run.graphs["quantized"].nodes)
    assert page.layer_row_count() == len(page.run.layers)


def test_the_unfused_list_claims_nothing_for_a_run_without_onnx(qtbot):
    from types import SimpleNamespace

    from app.review.plots import UnfusedList

    widget = UnfusedList()
    qtbot.addWidget(widget)
    widget.show_run(SimpleNamespace(report={"unfused": None}))  # what a --no-onnx run writes
    assert "not diagnosed" in widget.title.text() and widget.table.isHidden()
    widget.show_run(SimpleNamespace(report={"unfused": []}))
    assert "every quantized op runs in an integer kernel" in widget.title.text()
