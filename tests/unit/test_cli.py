"""`hookpost --help` and `hookpost COMMAND --help`: each command says what it does and what it
reads."""

from __future__ import annotations

import argparse

import pytest

from hookpost import jobs
from hookpost.cli import JOBS, main, parser

# Every command there is, so that a new one is held to the same.
COMMANDS = sorted(
    next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
)


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_the_top_help_lists_every_command_with_a_summary(capsys):
    assert {"migrate", "dev", "api", "deliver", "job"} <= set(COMMANDS)
    text = help_of(capsys)
    for command in COMMANDS:
        (line,) = [line for line in text.splitlines() if line.strip().startswith(command + " ")]
        assert len(line.split()) > 3, f"{command} has no summary"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_describes_itself_beyond_its_usage(capsys, command):
    text = help_of(capsys, command)
    usage, description = text.split("\n\n", 1)
    assert usage.startswith(f"usage: hookpost {command}")
    # A paragraph of its own, and where its settings come from.
    assert len(description.split("\n\n")[0].split()) >= 15
    assert "HOOKPOST_*" in text
    if command in ("migrate", "deliver", "job"):  # which need it set
        assert "DATABASE_URL" in text


def test_dev_help_tells_the_port_and_how_to_stop_it(capsys):
    text = help_of(capsys, "dev")
    assert "HOOKPOST_PORT" in text and "SIGTERM" in text and "Ctrl-C" in text


def test_job_help_describes_every_job_there_is(capsys):
    text = help_of(capsys, "job")
    assert set(JOBS) == set(jobs.JOBS)
    for name, does in JOBS.items():
        assert f"  {name}" in text and does in text
    assert "NAME" in text
