"""The logging set-up: one stderr handler, default levels, library handlers and levels ignored, warnings as lines."""

from __future__ import annotations

import logging
import warnings

import pytest

from mockvox import logs
from mockvox.progress import Bars


@pytest.fixture(autouse=True)
def restore_logging():
    """Put back what ``setup_logging`` changes process-wide (root handlers and level, library loggers, warnings)."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    names = (*logs.LIBRARIES, *logs.QUIET, *logs.PROJECT, "lightning.pytorch.utilities.rank_zero", "dvc.progress")
    saved = {}
    for name in names:
        lg = logging.getLogger(name)
        saved[name] = (type(lg), list(lg.handlers), lg.level, lg.__dict__.get("propagate", True))
    with warnings.catch_warnings():
        yield
    root.handlers[:], root.level = saved_root
    for name, (cls, handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.__class__ = cls
        lg.handlers[:] = handlers
        logging.Logger.setLevel(lg, level)
        lg.propagate = propagate


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logs._ConsoleHandler)]


def test_one_handler_with_project_info_and_library_warnings(capsys):
    logs.setup_logging()
    logs.setup_logging()  # idempotent
    assert len(_ours()) == 1
    assert logging.getLogger("mockvox.train").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("mlflow.store").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("dvc.progress").getEffectiveLevel() == logging.CRITICAL  # no DVC bars on a terminal
    logging.getLogger("mockvox.cli").info("training a voice")
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    logging.getLogger("mlflow.pyfunc").warning("something real")
    assert capsys.readouterr().err.splitlines() == ["training a voice", "WARNING mlflow.pyfunc: something real"]


def test_a_library_installing_its_own_handler_and_level_is_printed_once(capsys):
    logs.setup_logging()
    lightning = logging.getLogger("lightning")  # what `import lightning` does
    lightning.addHandler(logging.StreamHandler())
    lightning.setLevel(logging.INFO)
    lightning.propagate = False
    assert lightning.handlers == [] and lightning.propagate and lightning.getEffectiveLevel() == logging.WARNING
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.info("💡 Tip: For seamless cloud logging ...")
    rank_zero.warning("a real warning")
    assert capsys.readouterr().err.splitlines() == ["WARNING lightning.pytorch.utilities.rank_zero: a real warning"]


def test_a_level_applies_to_every_logger_but_sql_echo(capsys):
    logs.setup_logging("debug")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
    logging.getLogger("mockvox.data").debug("details")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    err = capsys.readouterr().err.splitlines()
    assert err == ["INFO lightning.pytorch.utilities.rank_zero: GPU available: False, used: False",
                   "DEBUG mockvox.data: details"]  # fmt: skip
    with pytest.raises(ValueError, match="accepted are DEBUG, INFO, WARNING, ERROR"):
        logs.setup_logging("loud")


def test_warnings_become_one_line_and_unactionable_library_ones_are_dropped(capsys):
    logs.setup_logging()
    warnings.simplefilter("always")
    logs.setup_logging()  # its filters go in front of "always"
    warnings.warn("check this", UserWarning, stacklevel=1)
    warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, "_pytree.py", 21,
                           module="lightning.pytorch.utilities._pytree")  # fmt: skip
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("WARNING py.warnings: UserWarning: check this (") and "test_logs.py:" in line


def test_bars_merge_the_passes_of_one_step(capsys):
    bars = Bars(steps={"features": ("text", "features")}, units={"features": "clip"})
    for i in range(3):
        bars("text", i + 1, 3)
    assert bars.bars["features"].total == 6  # the audio pass guessed as long as the text pass
    for i in range(2):  # one clip skipped
        bars("features", i + 1, 2)
    assert not bars.bars
    final = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    assert final.split() == ["features", "100%|████████████████████████|", "5/5", "clip", "[00:00]"]
