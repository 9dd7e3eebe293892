"""A sweep must not change how long the program's objects live: a run behaves as the same
command does alone, so its verdict and its --check see what plain python would leave behind.

Found by the trial on sqlitedict: when `SqliteDict.close()` failed at its commit, the sweep's
--check found the temporary database left behind, but the reproducer, alone under plain python,
leaves nothing (the dict's `__del__` removes the file once the dict is dropped). The sweep's
child keeps the frame of every fire (`dynfault.sweep.child._fired_frames`, to judge later
whether an error escaped from it) until the process ends, and with the frame every local of it:
there, the `self` of `close()`. The object then outlived the test, its finaliser ran only at
interpreter shutdown, if at all, and the run failed its check for something the program does not
do. Now a frame that nothing else holds (its call returned, no traceback refers to it) is let go
at the next fire, garbage collection or test end.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import runs, sweep, write

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
STORE = '''\
import os

class Store:
    def __init__(self, folder):
        self.folder = folder

    def save(self):
        with open(os.path.join(self.folder, "data"), "w") as file:
            file.write("x")
            file.flush()
            os.fsync(file.fileno())

    def __del__(self):  # a temporary file's cleanup, as sqlitedict's
        open(os.path.join(self.folder, "finalized"), "w").close()
'''


def test_an_object_in_the_frame_where_the_site_fired_is_finalized_as_without_the_sweep(
        tmp_path: Path) -> None:
    write(tmp_path, {
        "app.py": STORE,
        "tests/test_app.py": '''\
            import gc
            from app import Store

            def test_a_store_that_could_not_save_is_finalized_once_dropped(tmp_path):
                store = Store(str(tmp_path))
                try:
                    store.save()
                except OSError:
                    pass  # handled: the store is dropped
                del store
                gc.collect()
                assert (tmp_path / "finalized").exists()
            ''',
    })
    alone = sweep(tmp_path, "--calls", "os.fsync", command=PYTEST)
    assert [(r["fault_class"], r["outcome"], r["fired"]) for r in runs(tmp_path)] == [
        ("call:os.fsync", "passed", True)], alone.stdout + alone.stderr


def test_an_object_dropped_in_one_test_is_finalized_before_the_next_starts(
        tmp_path: Path) -> None:
    # No gc.collect(): the store dies by reference count, so what lets it go is the test's end.
    write(tmp_path, {
        "app.py": STORE,
        "tests/test_app.py": '''\
            import os
            from app import Store

            FOLDER = os.path.dirname(os.path.abspath(__file__))

            def test_a_store_that_could_not_save_is_dropped():
                if os.path.exists(os.path.join(FOLDER, "finalized")):  # the baseline's
                    os.remove(os.path.join(FOLDER, "finalized"))
                store = Store(FOLDER)
                try:
                    store.save()
                except OSError:
                    pass
                del store

            def test_its_cleanup_has_run():
                later = os.path.join(FOLDER, "later")
                os.makedirs(later, exist_ok=True)
                try:  # this test reaches the site too, so the targeted run takes it
                    Store(later).save()
                except OSError:
                    pass
                assert os.path.exists(os.path.join(FOLDER, "finalized"))
            ''',
    })
    done = sweep(tmp_path, "--calls", "os.fsync", command=PYTEST)
    assert [(r["fault_class"], r["outcome"], r["fired"]) for r in runs(tmp_path)] == [
        ("call:os.fsync", "passed", True)], done.stdout + done.stderr


def test_a_frame_still_running_is_kept_through_a_collection(tmp_path: Path) -> None:
    # The other side: a frame is let go only once its call returned. Here the call collects
    # garbage after the fault and then raises: the error is raised in the frame where the site
    # fired, before it returned, so the run is `escaped`.
    write(tmp_path, {"app.py": '''\
        import gc
        import os

        def save(path):
            try:
                with open(path, "w") as file:
                    file.write("x")
                    file.flush()
                    os.fsync(file.fileno())
            except OSError:
                gc.collect()
                raise RuntimeError("could not save") from None

        save("data")
        '''})
    done = sweep(tmp_path, "--calls", "os.fsync", command=[sys.executable, "app.py"])
    assert [(r["outcome"], r["reason"], r["fired"]) for r in runs(tmp_path)] == [
        ("failed", "escaped", True)], done.stdout + done.stderr
