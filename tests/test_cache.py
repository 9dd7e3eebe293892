"""The hook's cache as a user meets it: edits are seen, bad files are compiled around, nothing is
written where it must not be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, python, write

MOD = 'from dynfault import dynamic_fault\nVALUE = "aaaa"\nX = dynamic_fault("c:x")\n'
MAIN = """\
import dynfault
dynfault.install_import_hook()
import mod
print(mod.VALUE, hasattr(mod, "_dynfault_S"))
"""


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env = clean_env(PYTHONPATH=os.pathsep.join(p for p in path if p), **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.update(extra)
    return env


def ours(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if "dynfault" in p.name)


def test_a_same_second_edit_with_the_mtime_restored_is_seen(tmp_path: Path) -> None:
    write(tmp_path, {"mod.py": MOD, "main.py": MAIN})
    env = env_for(tmp_path)
    assert python("main.py", cwd=tmp_path, env=env).stdout == "aaaa True\n"
    assert len(ours(tmp_path / "__pycache__")) == 1
    source = tmp_path / "mod.py"
    before = os.stat(source)
    with open(source, "r+b") as f:  # in place: the same inode, the same size
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"aaaa", b"bbbb"))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(source)
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (
        before.st_mtime_ns, before.st_size, before.st_ino)
    assert python("main.py", cwd=tmp_path, env=env).stdout == "bbbb True\n"


def test_a_warm_import_reads_no_source(tmp_path: Path) -> None:
    """The stamp validates the cache: the second run does not open mod.py at all."""
    write(tmp_path, {"mod.py": MOD, "main.py": MAIN})
    env = env_for(tmp_path)
    python("main.py", cwd=tmp_path, env=env)
    probe = (
        "import builtins, io, os, sys\n"
        "opened = []\n"
        "real = io.open_code\n"
        "def watch(path):\n"
        "    opened.append(os.path.basename(path))\n"
        "    return real(path)\n"
        "io.open_code = watch\n"
        "real_open = os.open\n"
        "def watch_os(path, *a, **k):\n"
        "    opened.append(os.path.basename(str(path)))\n"
        "    return real_open(path, *a, **k)\n"
        "os.open = watch_os\n"
        "exec(open('main.py').read())\n"
        "print('mod.py' in opened)\n"
    )
    (tmp_path / "probe.py").write_text(probe)
    assert python("probe.py", cwd=tmp_path, env=env).stdout == "aaaa True\nFalse\n"


@pytest.mark.parametrize("shape", ["truncated header", "bad marshal body", "wrong magic",
                                   "empty", "directory", "not code"])
def test_every_corrupt_cache_shape_compiles_in_memory(tmp_path: Path, shape: str) -> None:
    write(tmp_path, {"mod.py": MOD, "main.py": MAIN})
    env = env_for(tmp_path)
    python("main.py", cwd=tmp_path, env=env)
    [name] = ours(tmp_path / "__pycache__")
    pyc = tmp_path / "__pycache__" / name
    data = pyc.read_bytes()
    import marshal

    damaged = {
        "truncated header": data[:20],
        "bad marshal body": data[:56] + b"\xe3" + b"\xff" * 40,
        "wrong magic": b"\x00\x00\r\n" + data[4:],
        "empty": b"",
        "not code": data[:56] + marshal.dumps({"a": 1}),
    }
    if shape == "directory":
        pyc.unlink()
        pyc.mkdir()
    else:
        pyc.write_bytes(damaged[shape])
    for _ in range(2):  # and again, over what the first run left
        proc = python("main.py", cwd=tmp_path, env=env)
        assert (proc.stdout, proc.stderr) == ("aaaa True\n", "")


def test_dont_write_bytecode_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"mod.py": MOD, "plain.py": "Y = 1\n",
                     "main.py": MAIN + "import plain\n"})
    env = env_for(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert python("main.py", cwd=tmp_path, env=env).stdout == "aaaa True\n"
    assert not (tmp_path / "__pycache__").exists()


def test_an_unwritable_cache_compiles_in_memory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    write(tmp_path, {"mod.py": MOD, "main.py": MAIN})
    (tmp_path / "__pycache__").mkdir(mode=0o500)
    try:
        proc = python("main.py", cwd=tmp_path, env=env_for(tmp_path))
        assert (proc.stdout, proc.stderr) == ("aaaa True\n", "")
    finally:
        (tmp_path / "__pycache__").chmod(0o700)


CONFTEST = """\
from dynfault.instrument.hook import install_import_hook

def pytest_configure(config):
    install_import_hook(roots=[str(config.rootpath)])
"""

TEST = """\
import thirdparty, thirdparty.plain, project_mod

def test_imports():
    assert not hasattr(thirdparty, "_dynfault_S")  # outside the roots: not rewritten
    assert thirdparty.plain.Y == 1
    assert hasattr(project_mod, "_dynfault_S")
"""


def test_a_pytest_session_with_roots_leaves_site_packages_untouched(tmp_path: Path) -> None:
    project = tmp_path / "project"
    site = tmp_path / "venv" / "lib" / "site-packages"
    write(site, {"thirdparty/__init__.py": MOD, "thirdparty/plain.py": "Y = 1\n"})
    write(project, {"conftest.py": CONFTEST, "test_it.py": TEST, "project_mod.py": MOD,
                    "pytest.ini": "[pytest]\n"})
    env = env_for(project)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:dynfault",
                               "-p", "no:cacheprovider", "test_it.py"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ours(site) == []
    assert [n.split(".")[0] for n in ours(project)] == ["project_mod"]  # its rewrite


def test_any_damaged_byte_or_length_never_loads_other_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each byte flipped, and every truncation: the cache gives the module's own code or
    nothing (compile in memory); marshal never sees a damaged body."""
    from dynfault.instrument import cache
    from dynfault.instrument.compile import cached_code

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    source = tmp_path / "mod.py"
    source.write_text(MOD)
    data_source = source.read_bytes()
    stamp = cache.stamp(os.stat(source))
    pyc = cache.cache_path(str(source))
    assert pyc is not None
    code = cached_code(str(source), data_source, stamp)
    good = Path(pyc).read_bytes()
    assert cache.read_cache(pyc, stamp) == code
    damaged = [good[:i] + bytes([good[i] ^ 0x41]) + good[i + 1:] for i in range(len(good))]
    damaged += [good[:n] for n in range(len(good))]
    loaded = []
    for data in damaged:
        Path(pyc).write_bytes(data)
        found = cache.read_cache(pyc, stamp)
        assert found is None or found == code
        loaded.append(found is not None)
    assert not any(loaded)


def test_another_modules_body_is_compiled_around(tmp_path: Path) -> None:
    other = MOD.replace("aaaa", "zzzz").replace("c:x", "c:other")
    write(tmp_path, {"mod.py": MOD, "other.py": other,
                     "main.py": MAIN + "import other\nprint(other.VALUE)\n"})
    env = env_for(tmp_path)
    assert python("main.py", cwd=tmp_path, env=env).stdout == "aaaa True\nzzzz\n"
    pycache = tmp_path / "__pycache__"
    [mine] = [p for p in pycache.iterdir() if p.name.startswith("mod.") and "dynfault" in p.name]
    [theirs] = [p for p in pycache.iterdir()
                if p.name.startswith("other.") and "dynfault" in p.name]
    ours, body = mine.read_bytes(), theirs.read_bytes()[56:]
    mine.write_bytes(ours[:56] + body)  # their body under our header
    assert python("main.py", cwd=tmp_path, env=env).stdout == "aaaa True\nzzzz\n"
    mine.write_bytes(theirs.read_bytes()[:24] + ours[24:56] + body)  # and their check too
    assert python("main.py", cwd=tmp_path, env=env).stdout == "aaaa True\nzzzz\n"


def test_a_body_of_an_older_format_never_loads(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole, checked body that the same version of dynfault wrote with its previous emission
    (one global per descriptor, flags word 0b11) is compiled around, never run: its code would
    read names the runtime no longer binds."""
    from importlib.util import MAGIC_NUMBER, source_hash

    from dynfault.instrument import cache
    from dynfault.instrument.compile import cached_code

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    source = tmp_path / "mod.py"
    source.write_text(MOD)
    stamp = cache.stamp(os.stat(source))
    pyc = cache.cache_path(str(source))
    assert pyc is not None
    code = cached_code(str(source), source.read_bytes(), stamp)
    good = Path(pyc).read_bytes()
    assert cache.read_cache(pyc, stamp) == code
    checked = good[16:]
    old = MAGIC_NUMBER + (0b11).to_bytes(4, "little") + source_hash(checked) + checked
    Path(pyc).write_bytes(old)
    assert cache.read_cache(pyc, stamp) is None
