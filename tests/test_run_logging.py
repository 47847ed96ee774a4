"""configure_logging: INFO on stderr by default, an appended log file, no duplicated handlers, quiet non-main
processes, transformers' verbosity in step."""

from __future__ import annotations

import logging
import re

import pytest
from transformers.utils import logging as hf_logging

from protconv import run_logging
from protconv.run_logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    """configure_logging changes process-wide state: put it back for the other tests."""
    loggers = [logging.getLogger(name) for name in ("protconv", "transformers")]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    verbosity = hf_logging.get_verbosity()
    yield
    for logger, level, handlers in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
    hf_logging.set_verbosity(verbosity)


def _own_handlers(name: str = "protconv") -> list[logging.Handler]:
    return [h for h in logging.getLogger(name).handlers if getattr(h, "_protconv_run_logging", False)]


def test_info_reaches_stderr_and_the_log_file_once_however_often_configured(tmp_path, capsys) -> None:
    log_file = tmp_path / "run" / "protconv.log"
    configure_logging()
    configure_logging("info", log_file)
    configure_logging("info", log_file)
    logging.getLogger("protconv.data.example").info("indexed %d records", 15)
    logging.getLogger("protconv.data.example").debug("not shown")
    assert len(_own_handlers()) == 2  # console and file, not four
    err = capsys.readouterr().err
    assert err.count("indexed 15 records") == 1 and "INFO protconv.data.example" in err and "not shown" not in err
    (line,) = log_file.read_text().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO protconv\.data\.example: indexed 15 records", line)
    configure_logging("info", log_file)  # a resumed run appends
    logging.getLogger("protconv").warning("again")
    assert len(log_file.read_text().splitlines()) == 2
    configure_logging()  # no file any more: it is closed and gets nothing
    logging.getLogger("protconv").warning("later")
    assert "later" not in log_file.read_text() and len(_own_handlers()) == 1


def test_a_process_other_than_the_main_one_shows_warnings_only_with_its_rank(capsys, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "3")  # as torchrun / accelerate launch set it, before any Accelerator exists
    monkeypatch.setattr(run_logging, "_accelerate_state", lambda: None)  # another test may have left one
    configure_logging("debug")
    logging.getLogger("protconv.x").info("every process would repeat this")
    logging.getLogger("protconv.x").warning("a problem on this process")
    err = capsys.readouterr().err
    assert "every process" not in err and "[rank 3]" in err and "a problem on this process" in err


@pytest.mark.parametrize(
    ("level", "transformers_level"),
    [("info", logging.WARNING), ("debug", logging.DEBUG), ("error", logging.ERROR), ("WARNING", logging.WARNING)],
)
def test_transformers_verbosity_follows_but_keeps_its_own_info_quiet(level, transformers_level) -> None:
    configure_logging(level)
    assert hf_logging.get_verbosity() == transformers_level


def test_transformers_warnings_reach_the_log_file(tmp_path) -> None:
    configure_logging("info", tmp_path / "protconv.log")
    hf_logging.get_logger("transformers.modeling_utils").warning("some weights were not used")
    assert "WARNING transformers.modeling_utils: some weights were not used" in (tmp_path / "protconv.log").read_text()


def test_an_unknown_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud")
