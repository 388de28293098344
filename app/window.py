"""The main window: a page list on the left, one page at a time on the right, the worker in the status bar.

The window owns the flow between pages (model → preset → calibration → run → review → export) and the
current run; pages only know their own form. The worker process and the heavy imports (the review
plots, the database layer) wait until after the first paint so the window shows up quickly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence, QPaintEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from app import demo_model_path, resource_path
from app.job_client import BUSY, CRASHED, FAILED, READY, JobClient
from app.pages.calib import CalibPage
from app.pages.export import ExportPage
from app.pages.history import HistoryPage
from app.pages.model import ModelPage
from app.pages.preset import PresetPage
from app.pages.run import RunPage
from app.settings import Settings
from app.theme import tone
from app.widgets import fmt
from app.widgets.page import Page, muted
from core.errors import UserError
from core.jobs.spec import JobSpec, QuantizeOptions
from core.presets import get_preset

PAGES = (
    ("model", "Model"),
    ("preset", "Preset"),
    ("calib", "Calibration"),
    ("run", "Run"),
    ("review", "Review"),
    ("export", "Export"),
    ("history", "History"),
)
CALIB_SUFFIXES = (".npy", ".npz")
STATE_TONES = {READY: "ok", BUSY: "warn", CRASHED: "bad", FAILED: "bad"}


class ReviewPending(Page):
    """Stands in for the review views until they are built (after the first paint) or if they cannot be."""

    title = "Review"
    intro = (
        "See what quantization did to the model: the graph, the error of every layer, and its value ranges."
    )

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.note = muted("Loading the review views…")
        self.body.addWidget(self.note)
        self.body.addStretch(1)


class MainWindow(QMainWindow):
    firstPainted = Signal()
    _storeOpened = Signal(object, str)  # Store or None, error; emitted from the opening thread
    runFinished = Signal(str, object)  # outcome (result, error, cancelled), event data

    def __init__(self, client: JobClient, settings: Settings, db_path: str | None = None):
        super().__init__()
        self.client, self.settings, self.db_path = client, settings, db_path
        self.run_dir = ""
        self.report: dict = {}
        self._store = None
        self.first_paint_at: float | None = None  # perf_counter() of the first paint
        self._compare_with = ""  # previous run dir when a keep-float re-run is under way
        self._sensitivity_job = ""
        self.setWindowTitle("QDQ Studio")
        self.setWindowIcon(QIcon(str(resource_path("icons", "app.svg"))))
        self.setAcceptDrops(True)

        self.pages: dict[str, QWidget] = {
            "model": ModelPage(client, settings),
            "preset": PresetPage(),
            "calib": CalibPage(client, settings),
            "run": RunPage(),
            "review": ReviewPending(),
            "export": ExportPage(settings),
            "history": HistoryPage(self.store),
        }
        self.nav = QListWidget(objectName="nav")
        self.nav.setIconSize(QSize(20, 20))
        self.stack = QStackedWidget()
        for i, (key, label) in enumerate(PAGES):
            item = QListWidgetItem(QIcon(str(resource_path("icons", f"{key}.svg"))), label)
            item.setToolTip(f"{label} (Ctrl+{i + 1})")
            self.nav.addItem(item)
            self.stack.addWidget(self.pages[key])
        self.nav.setFixedWidth(self.nav.sizeHintForColumn(0) + 48)
        self.nav.currentRowChanged.connect(self._on_page_changed)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.worker_label = QLabel()
        self.statusBar().addPermanentWidget(self.worker_label)
        self._build_menus()
        self._connect()
        self._storeOpened.connect(self._on_store_opened)
        self.nav.setCurrentRow(0)
        self._on_worker_state(client.state, client.state_sentence)
        geometry = settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            screen = self.screen().availableGeometry()
            self.resize(min(1280, int(screen.width() * 0.9)), min(820, int(screen.height() * 0.9)))

    # -- construction -------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        model, run = self.pages["model"], self.pages["run"]
        file_menu = self.menuBar().addMenu("&File")
        self._action(
            file_menu,
            "&Open model…",
            QKeySequence.StandardKey.Open,
            lambda: (self.show_page("model"), model.browse()),
        )
        self._action(file_menu, "Try the &demo model", None, self.open_demo)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        run_menu = self.menuBar().addMenu("&Run")
        self.start_action = self._action(run_menu, "&Start quantization", "Ctrl+R", self.start_run)
        self.cancel_action = self._action(run_menu, "&Cancel", "Esc", self.cancel_run)
        view_menu = self.menuBar().addMenu("&View")
        for i, (key, label) in enumerate(PAGES):
            self._action(view_menu, label, f"Ctrl+{i + 1}", lambda k=key: self.show_page(k))
        run.startRequested.connect(self.start_run)
        run.cancelRequested.connect(self.cancel_run)

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def _connect(self) -> None:
        c, run = self.client, self.pages["run"]
        c.stateChanged.connect(self._on_worker_state)
        c.crashed.connect(self._on_crash)
        c.stage.connect(self._for_run(run.on_stage))
        c.progress.connect(self._for_run(run.on_progress))
        c.log.connect(self._for_run(run.on_log))
        c.warning.connect(self._for_run(run.on_warning))
        c.progress.connect(self._on_sensitivity_progress)
        model: ModelPage = self.pages["model"]
        model.modelChanged.connect(self._on_model_changed)
        model.inspected.connect(lambda _info: self._update_plan())
        run.openPageRequested.connect(self.show_page)
        for page in self.pages.values():
            if isinstance(page, Page):
                page.nextRequested.connect(self.show_page)
        self.pages["history"].openRun.connect(self._open_history_run)

    def _for_run(self, handler: Callable) -> Callable[[str, object], None]:
        """Forward a worker event to the Run page when it belongs to the run on show."""

        def forward(job_id: str, payload) -> None:
            if job_id == self.pages["run"].job_id:
                handler(payload)

        return forward

    def _open_history_run(self, run: dict) -> None:
        self.open_run(run["out_dir"])

    # -- start-up -----------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        super().paintEvent(event)
        if self.first_paint_at is None:
            self.first_paint_at = time.perf_counter()
            QTimer.singleShot(0, self._after_first_paint)

    def _after_first_paint(self) -> None:
        """Work that waits until the user sees the window: the worker (it loads PyTorch while the user
        reads the first page), the device list, the history and the review views."""
        self.client.start()
        self.firstPainted.emit()
        self.pages["calib"].request_devices()
        self._open_store()
        self._install_review()

    def _install_review(self) -> None:
        pending: ReviewPending = self.pages["review"]
        try:
            from app.review.page import ReviewPage
        except ImportError as e:
            pending.note.setText(f"The review views are not available in this installation ({e}).")
            return
        review = ReviewPage()
        review.keepFloatRequested.connect(self.rerun_keeping_float)
        review.sensitivityRequested.connect(self.rank_sensitivity)
        index = self.stack.indexOf(pending)
        self.stack.insertWidget(index, review)
        self.stack.removeWidget(pending)
        pending.deleteLater()
        self.pages["review"] = review
        self.stack.setCurrentIndex(self.nav.currentRow())
        if self.run_dir:
            review.load_run(self.run_dir)

    def store(self):
        """The history database, or None while it is still being opened."""
        return self._store

    def _open_store(self) -> None:
        """Importing SQLAlchemy and upgrading the file take a second: do it off the UI thread."""

        def work():
            try:
                from core.store import open_store

                self._storeOpened.emit(open_store(self.db_path), "")
            except Exception as e:  # a broken history file must not stop quantizing
                self._storeOpened.emit(None, str(e))

        threading.Thread(target=work, name="open-history", daemon=True).start()

    def _on_store_opened(self, store, error: str) -> None:
        self._store = store
        history: HistoryPage = self.pages["history"]
        if store is None:
            history.error.show_message(f"Could not open the history file: {error}")
            return
        self._mark_interrupted()
        history.refresh()

    def _mark_interrupted(self) -> None:
        """Runs whose process died (a crash, a kill, a power cut) show up as interrupted."""
        if self._store is None:
            return
        try:
            self._store.mark_interrupted()
        except Exception as e:  # a locked or broken history file must not stop quantizing
            self.statusBar().showMessage(f"Could not update the history: {e}", 10000)

    # -- navigation ---------------------------------------------------------------------------------

    def show_page(self, key: str) -> None:
        self.nav.setCurrentRow([k for k, _ in PAGES].index(key))

    def current_page(self) -> str:
        return PAGES[self.nav.currentRow()][0]

    def _on_page_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        key = PAGES[row][0]
        if key == "run":
            self._update_plan()
        elif key == "history":
            self.pages["history"].refresh()

    # -- model and data -----------------------------------------------------------------------------

    def open_demo(self) -> None:
        self.show_page("model")
        self.pages["model"].open_model(str(demo_model_path()))

    def _on_model_changed(self, path: str) -> None:
        model: ModelPage = self.pages["model"]
        calib: CalibPage = self.pages["calib"]
        calib.set_model(path, model.trust_code)
        self.setWindowTitle(f"QDQ Studio — {Path(path).name}")
        if Path(path) == demo_model_path() and not calib.source.path():
            calib.set_source(str(resource_path("demo", "calib")))
            calib.labels.set_path(str(resource_path("demo", "eval")))
        self._update_plan()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        for url in event.mimeData().urls():
            self.open_path(url.toLocalFile())
        event.acceptProposedAction()

    def open_path(self, path: str) -> None:
        """A dropped folder or array file is calibration data; any other file is a model."""
        p = Path(path)
        if p.is_dir() or p.suffix.lower() in CALIB_SUFFIXES:
            self.pages["calib"].set_source(path)
            self.show_page("calib")
        elif p.is_file():
            self.show_page("model")
            self.pages["model"].open_model(path)

    # -- running ------------------------------------------------------------------------------------

    def _problem(self) -> tuple[str | None, str]:
        model: ModelPage = self.pages["model"]
        if not model.model_path:
            return "Choose a model first.", "model"
        if model.info is None:
            return "The model is still being read, or could not be read (see the Model page).", "model"
        if not model.info.get("exportable", True):
            return f"This model cannot be quantized: {model.info.get('why') or 'see the Model page'}", "model"
        problem = self.pages["calib"].problem()
        if problem:
            return problem, "calib"
        if self.client.state == FAILED:
            return "The worker process cannot start; see the status bar.", "run"
        return None, "run"

    def _update_plan(self) -> None:
        model: ModelPage = self.pages["model"]
        preset = self.pages["preset"].values()
        calib = self.pages["calib"].values()
        source = Path(calib["calib"]).name if calib["calib"] else "synthetic (random) data"
        lines = [
            f"<b>Model:</b> {Path(model.model_path).name if model.model_path else '–'}",
            f"<b>Preset:</b> {get_preset(preset['preset']).title}"
            + (f", {preset['qat_epochs']} fine-tune epochs" if preset["qat_epochs"] else "")
            + (f", {len(preset['keep_float'])} layer(s) kept in float" if preset["keep_float"] else ""),
            f"<b>Calibration:</b> up to {calib['samples']} samples from {source}, batch size {calib['batch_size']}",
            f"<b>Runs on:</b> {self.pages['calib'].device.currentText()}",
        ]
        problem, page = self._problem()
        self.pages["run"].set_plan("<br>".join(lines), problem, page)
        self.start_action.setEnabled(problem is None and not self.pages["run"].running)

    def build_options(self) -> QuantizeOptions:
        """The pages' forms as one QuantizeOptions; the worker names the run folder after the run id."""
        model: ModelPage = self.pages["model"]
        return QuantizeOptions(
            model=model.model_path,
            out_dir="",
            trust_code=model.trust_code,
            db=self.db_path,
            **self.pages["preset"].values(),
            **self.pages["calib"].values(),
        )

    def start_run(self) -> bool:
        """Queue a quantize job from the pages' forms; False (with the reason on the Run page) if it cannot."""
        run: RunPage = self.pages["run"]
        if run.running:
            return False
        self._update_plan()
        self.show_page("run")
        problem, _page = self._problem()
        if problem:
            return False
        try:
            options = self.build_options()
        except UserError as e:
            run.set_plan(run.plan.text(), str(e), "preset")
            return False
        spec = JobSpec("quantize", options.to_dict())
        run.job_started(spec.id)
        self.client.submit(spec, on_done=self._on_run_done)
        self._update_plan()
        return True

    def confirm_quit_during_run(self) -> bool:
        """Quitting stops the worker; the run would end as interrupted, so ask first."""
        answer = QMessageBox.question(
            self,
            "Quit while quantizing?",
            "A quantization is still running. Quitting stops it; the run is kept in History as "
            "interrupted and its unfinished files are not used.\n\nQuit anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def cancel_run(self) -> None:
        run: RunPage = self.pages["run"]
        if run.running:
            run.status.setText("Cancelling…")
            self.client.cancel(run.job_id)

    def rerun_keeping_float(self, names: list[str]) -> None:
        """Review asked to keep some layers in float: run again and compare with this run."""
        self.pages["preset"].add_keep_float(list(names))
        self._compare_with = self.run_dir
        self.start_run()

    def rank_sensitivity(self, target_db: float) -> None:
        """Review asked which layers cost the most accuracy: a sensitivity job on the run's own options."""
        options = dict(self.report.get("options") or {})
        if not options:
            return
        review = self.pages["review"]
        options.update(out_dir="", db=self.db_path, target_sqnr_db=float(target_db))
        spec = JobSpec("sensitivity", options)
        self._sensitivity_job = spec.id
        self.client.submit(spec, supersede=True, on_done=self._on_sensitivity_done)
        review.sensitivity.status.setText("Ranking the layers… (the status bar shows the worker)")

    def _on_sensitivity_progress(self, job_id: str, data: dict) -> None:
        if job_id == self._sensitivity_job and "review" in self.pages:
            eta = data.get("eta_s")
            left = f", about {fmt.duration(eta)} left" if eta is not None else ""
            done = 100 * float(data.get("fraction") or 0)
            self.pages["review"].sensitivity.status.setText(f"Ranking the layers: {done:.0f} %{left}")

    def _on_sensitivity_done(self, outcome: str, data: dict) -> None:
        self._sensitivity_job = ""
        review = self.pages["review"]
        if outcome == "result":
            review.show_sensitivity(data)
        else:
            review.sensitivity.status.setText(f"The ranking stopped: {data.get('message', outcome)}")

    def _on_run_done(self, outcome: str, data: dict) -> None:
        run: RunPage = self.pages["run"]
        getattr(run, f"on_{outcome}")(data)
        self._update_plan()
        self.pages["history"].refresh()
        if outcome == "result":
            self.open_run(data.get("out_dir", ""), compare_with=self._compare_with)
        self._compare_with = ""
        self.runFinished.emit(outcome, data)

    def open_run(self, out_dir: str, compare_with: str = "") -> bool:
        """Show a finished run in Review and Export."""
        report_path = Path(out_dir) / "report.json"
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.statusBar().showMessage(f"Cannot open the run in {out_dir}: {e}", 10000)
            return False
        self.run_dir, self.report = out_dir, report
        review = self.pages["review"]
        if hasattr(review, "load_run"):
            review.load_run(out_dir)
            if compare_with:
                review.set_comparison(compare_with)
        self.pages["export"].set_run(out_dir, report)
        self.show_page("review")
        return True

    # -- worker -------------------------------------------------------------------------------------

    def _on_worker_state(self, state: str, sentence: str) -> None:
        color = tone(STATE_TONES.get(state, "muted")).name()
        self.worker_label.setText(f"<span style='color:{color}'>●</span> Worker: {sentence}")
        if self.first_paint_at is not None:
            self._update_plan()

    def _on_crash(self, job_id: str) -> None:
        self._mark_interrupted()
        self.pages["history"].refresh()
        self.statusBar().showMessage("The worker process stopped unexpectedly; a new one is starting.", 15000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.pages["run"].running and not self.confirm_quit_during_run():
            event.ignore()
            return
        self.settings.save_geometry(self.saveGeometry())
        self.settings.sync()
        self.client.shutdown()
        if self._store is not None:
            self._store.close()
        super().closeEvent(event)
