"""One logging set-up for ``mockvox`` and ``python -m mockvox.train``: every record once, through one stderr handler.

By default MockVox's own loggers show INFO and every library (Lightning, MLflow, Hydra, DVC, transformers ...) only
WARNING and above; a level (``-v`` / ``--log-level``) applies to all of them (SQLAlchemy and Alembic, whose INFO is
every SQL statement, stay at WARNING). Libraries that install a handler or a level of their own on import
(Lightning, transformers, jieba) get a logger that keeps neither, so their records reach the root handler once.
Python warnings become ``py.warnings`` records on the same handler, one line each.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

PROJECT = ("mockvox", "api", "__main__")
# Loggers of libraries that set up their own handler, level or propagation; child loggers follow them.
LIBRARIES = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric",
             "mlflow", "alembic", "sqlalchemy", "huey", "transformers", "jieba", "jieba_fast", "hydra", "dvc",
             "urllib3", "httpx", "httpcore", "numba", "faster_whisper", "matplotlib", "PIL", "filelock", "fsspec",
             "asyncio")  # fmt: skip
QUIET = ("sqlalchemy", "alembic", "huey")  # at WARNING whatever the level: their INFO is every SQL statement
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Library warnings MockVox cannot act on (the call is inside the library): hidden by message and module.
UNACTIONABLE = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
)


class _ConsoleHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (redirections and captures included) without breaking tqdm bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    """MockVox's INFO lines as plain text; everything else with its level and logger name."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if record.levelno == logging.INFO and record.name.split(".")[0] in PROJECT:
            return message
        return f"{record.levelname} {record.name}: {message}"


class _LibraryLogger(logging.Logger):
    """A library's logger whose handlers, level and propagation are set here, not by the library."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 (logging's names)
        pass  # records propagate to the root handler

    def setLevel(self, level) -> None:  # noqa: N802
        pass  # Lightning sets INFO on import

    @property
    def propagate(self) -> bool:
        return True

    @propagate.setter
    def propagate(self, value: bool) -> None:
        pass  # transformers turns propagation off


def set_level(name: str, level: int | str) -> None:
    """The level of a logger, library loggers adopted by :func:`setup_logging` included."""
    logging.Logger.setLevel(logging.getLogger(name), level)


def _adopt(name: str) -> None:
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logging.Logger.removeHandler(logger, handler)
    if type(logger) is logging.Logger:  # a library's own Logger subclass keeps its class
        logger.__class__ = _LibraryLogger
    logging.Logger.setLevel(logger, logging.NOTSET)  # follow the root's level


_python_showwarning = warnings.showwarning


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``py.warnings`` record: ``UserWarning: text (file:line)``."""
    if file is not None:  # an explicit stream: Python's behaviour
        _python_showwarning(message, category, filename, lineno, file, line)
        return
    logging.getLogger("py.warnings").warning("%s: %s (%s:%s)", category.__name__, message, filename, lineno)


def parse_level(value: str | int | None) -> int | None:
    """``"debug"`` / ``"INFO"`` / ``10`` -> a logging level; None stays None (the default levels)."""
    if value is None or isinstance(value, int):
        return value
    name = str(value).upper()
    if name not in LEVELS:
        raise ValueError(f"log level {value!r}: accepted are {', '.join(LEVELS)}")
    return logging.getLevelName(name)


def setup_logging(level: str | int | None = None) -> None:
    """Route every logger through one stderr handler; idempotent (a later call replaces the earlier set-up).

    Args:
        level: None for MockVox at INFO and libraries at WARNING (their own progress bars off); a level for all
            loggers (INFO and DEBUG show the libraries' bars too).
    """
    level = parse_level(level)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # MLflow: no handler of its own on import
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(handler)
    handler = _ConsoleHandler()
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING if level is None else level)
    for name in LIBRARIES:
        _adopt(name)
    for name in QUIET:
        set_level(name, logging.WARNING if level is None else max(level, logging.WARNING))
    for name in PROJECT:
        set_level(name, logging.INFO if level is None else level)
    warnings.showwarning = _showwarning
    for category, message, module in UNACTIONABLE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    bars_off = level is None or level > logging.INFO  # libraries' own bars: MockVox shows one bar per step
    set_level("dvc.progress", logging.CRITICAL if bars_off else logging.NOTSET)  # DVC's bars hide above ERROR
    if bars_off:
        _hugging_face_bars_off()


def _hugging_face_bars_off() -> None:
    """No "Loading weights" / "Writing model shards" bars from transformers and huggingface_hub."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
