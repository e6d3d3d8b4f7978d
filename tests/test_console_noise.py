"""Ray's known native noise stays off the console; everything else written to fd 2 gets through unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

NOISE = ("[2026-12-02 13:25:54,711 E 10886 10886] core_worker.cc:2465: Actor with class name: "
         "'MapWorker(MapBatches(ShardEncoder))' and ID: 'c5e4949344a89e13efec748d01000000' has constructor arguments "
         "in the object store and max_restarts > 0. If the arguments in the object store go out of scope or are lost,"
         " the actor restart will fail.")


def run(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; its stderr is decoded without newline translation (``\r`` kept)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=60)
    result.stderr = result.stderr.decode()
    return result


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_noise_line_dropped_and_the_rest_kept_in_order():
    result = run(f"""
        import os, sys
        from berg_ray.cluster.console_noise import filter_stderr
        with filter_stderr():
            os.write(2, b"native before\\n")
            os.write(2, {NOISE!r}.encode() + b"\\n")
            print("python line", file=sys.stderr)
            os.write(2, b"[2026-12-02 13:25:55,000 E 1 1] core_worker.cc:99: a real error\\n")
            sys.stderr.write("progress 50%\\r"); sys.stderr.flush()
            sys.stderr.write("progress 100%\\n")
        print("after", file=sys.stderr)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("native before\npython line\n[2026-12-02 13:25:55,000 E 1 1] core_worker.cc:99: a real "
                             "error\nprogress 50%\rprogress 100%\nafter\n")


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_partial_progress_line_is_shown_before_its_newline():
    """A bar redraw without a newline reaches the console while the block still runs."""
    result = run("""
        import os, sys, time
        from berg_ray.cluster.console_noise import filter_stderr
        with filter_stderr():
            sys.stderr.write("sweep files: 0/1\\r"); sys.stderr.flush()
            time.sleep(0.5)
            os.write(1, b"stdout marker\\n")
            time.sleep(0.5)
            sys.stderr.write("[1/1] done\\n")
    """)
    assert result.returncode == 0 and result.stderr == "sweep files: 0/1\r[1/1] done\n"


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_disabled_filter_keeps_every_line():
    result = run(f"""
        import os
        from berg_ray.cluster.console_noise import filter_stderr
        with filter_stderr(enabled=False):
            os.write(2, {NOISE!r}.encode() + b"\\n")
    """)
    assert result.stderr == NOISE + "\n"
