"""The programs' event loop: uvloop unless EVENT_LOOP says otherwise, a bad value a clear exit 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import uvloop

from common.lifecycle import EXIT_CONFIG_ERROR, event_loop_factory
from common.settings import SettingsError

# A program that prints the module of the loop it runs on, through the real entry-point plumbing.
PROGRAM = """
import asyncio
from common.lifecycle import run_program

async def main(stop):
    print(type(asyncio.get_running_loop()).__module__, flush=True)

run_program("probe", main)
"""


@pytest.mark.parametrize(("setting", "loop_type"), [(None, uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_programs_run_on_uvloop_unless_told_otherwise(setting: str | None, loop_type: type) -> None:
    loop = event_loop_factory({} if setting is None else {"EVENT_LOOP": setting})()
    try:
        assert isinstance(loop, loop_type)
        assert setting is None or not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_an_unknown_event_loop_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="EVENT_LOOP must be one of uvloop, asyncio, not 'trio'"):
        event_loop_factory({"EVENT_LOOP": "trio"})


@pytest.mark.parametrize(("setting", "module"), [("", "uvloop"), ("asyncio", "asyncio.unix_events")])
def test_a_program_runs_on_the_loop_its_setting_names(setting: str, module: str) -> None:
    env = {"EVENT_LOOP": setting, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == module


def test_a_bad_event_loop_stops_the_program_with_one_clear_line() -> None:
    env = {"EVENT_LOOP": "trio", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_CONFIG_ERROR
    assert "EVENT_LOOP must be one of uvloop, asyncio" in done.stdout + done.stderr
    assert "uvloop" not in done.stdout.splitlines()  # main never ran


def test_what_a_program_imported_is_kept_out_of_the_collector_s_walks() -> None:
    program = "import gc\nfrom common.lifecycle import run_program\n\nasync def main(stop):\n"
    program += "    print(gc.get_freeze_count(), flush=True)\n\nrun_program('probe', main)\n"
    done = subprocess.run(
        [sys.executable, "-c", program], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.splitlines()[0]) > 10_000  # the imports' objects (asyncio, uvloop, logging ...)
