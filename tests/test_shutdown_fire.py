"""A site that fires while Python shuts down (a finaliser's call site, run after `sys.meta_path`
is gone) raises the program's fault, never an ImportError of dynfault's own.

Found by the trial on filelock: a lock kept in a module global is released by its `__del__` at
interpreter shutdown, through a call site the sweep armed. In the test the site fired as it
should; at shutdown it fired again (outside any test, the sweep's `oneshot` starts afresh), and
dynfault's fire path imported a module there: "ImportError: sys.meta_path is None, Python is
likely shutting down", from dynfault's frames, in the run's tail. Every path a fire takes (the
error it raises, the flag set off when a oneshot is spent, the sweep's fire record) now imports
nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import clean_env, dynfault_cli, sweep, write

HOLDER = '''\
import os
import tempfile


class Holder:
    def __init__(self):
        self.fd, self.path = tempfile.mkstemp()

    def close(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __del__(self):
        self.close()
'''
INJECTED = "OSError: [Errno 5] dynfault: injected fault at holder.py:12 class:call:os.close"


def _finaliser_lines(output: str) -> str:
    """What Python printed of the exception a finaliser raised at shutdown."""
    assert "Exception ignored in" in output, output
    return output[output.index("Exception ignored in"):]


def test_a_oneshot_spent_in_a_finaliser_at_shutdown_raises_the_fault(tmp_path: Path) -> None:
    write(tmp_path, {
        "holder.py": HOLDER,
        # a module's global, not __main__'s: cleared after sys.modules is emptied
        "keep.py": '''\
            from holder import Holder

            KEPT = Holder()  # closed only by its __del__, while Python shuts down
            ''',
        "app.py": '''\
            import keep
            print("main done")
            ''',
    })
    env = clean_env() | {"DYNFAULT_ENABLE": "class call:os.close oneshot"}
    done = dynfault_cli("run", "--calls", "os.close", "app.py", cwd=tmp_path, env=env)
    assert done.stdout == "main done\n"
    shown = _finaliser_lines(done.stderr)
    assert INJECTED in shown
    # the last frame is the call site's raiser (site.py), as for every injected error
    assert "ImportError" not in shown and "firing.py" not in shown, shown


def test_a_sweep_site_firing_again_at_shutdown_shows_only_the_programs_error(
        tmp_path: Path) -> None:
    write(tmp_path, {
        "holder.py": HOLDER,
        "tests/test_holder.py": '''\
            from holder import Holder

            KEPT = []

            def test_close():
                KEPT.append(Holder())  # closed only by its __del__, at shutdown
                Holder().close()
            ''',
    })
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    done = sweep(tmp_path, "--calls", "os.close", "--log-dir", "logs", command=command)
    assert done.returncode == 1, done.stdout + done.stderr
    (log,) = (tmp_path / "logs").glob("001-*.log")
    shown = _finaliser_lines(log.read_text())
    assert INJECTED in shown
    assert "ImportError" not in shown and "firing.py" not in shown, shown
    assert "dynfault/sweep" not in shown, shown
