"""Parts 1 and 2: what a disabled site costs, and what an enabled hit costs.

The enabled hits are timed twice: with the lock-free plans the GIL allows (the default) and with
the registry's lock forced on (what a free-threaded build does), beside an armed dict failpoint
under a lock and a plain call from the same run, so the ratios hold on a loaded machine.

Every benchmark times the same loop of SITES_PER_LOOP checks (see _common.sites_module_source)
and reports the time per check; run.py subtracts the bare loop and divides by the floor, a test
of a module-global bool. The rewritten module is imported through dynfault's real import hook,
so the code measured is what users get; the "unrewritten" rows load the same file with the
standard loader, so `dynamic_fault()` is the runtime function.

    python benchmarks/bench_sites.py -o sites.json [pyperf options]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pyperf  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _failpoint

import dynfault
import dynfault.instrument.hook
from dynfault.runtime.sites import REGISTRY

_loaded: dict[str, ModuleType] = {}


def _rewritten(name: str, where: Path) -> ModuleType:
    if name not in _loaded:
        if str(where) not in sys.path:
            sys.path.insert(0, str(where))
        dynfault.instrument.hook.install_import_hook()
        __import__(name)
        module = sys.modules[name]
        if "dynamic_fault" in module.t_site.__code__.co_names or \
                not hasattr(module, "_dynfault_f0"):
            raise SystemExit(f"bench_sites: the import hook did not rewrite {module.__file__}")
        _loaded[name] = module
    return _loaded[name]


def _plain(where: Path) -> ModuleType:
    if "plain" not in _loaded:
        module = _common.load_plain("dfbench_sites_plain", where / "dfbench_sites.py")
        if "dynamic_fault" not in module.t_site.__code__.co_names:
            raise SystemExit("bench_sites: the plain copy was rewritten; it must not be")
        _loaded["plain"] = module
    return _loaded["plain"]


def main() -> None:
    runner = pyperf.Runner(processes=4, values=4, min_time=0.05)
    _common.add_options(runner)
    args = runner.parse_args()
    filler = _common.FILLER_SITES // 10 if args.small else _common.FILLER_SITES
    where = _common.write_sites_modules(Path(args.workdir), filler)
    fiu, fiu_origin = _common.load_fiu()
    runner.metadata["dynfault_sites_per_loop"] = _common.SITES_PER_LOOP
    runner.metadata["dynfault_fiu"] = fiu_origin
    runner.metadata["dynfault_filler_sites"] = filler

    def timed(module: Callable[[], ModuleType], function: str, commands: str = "",
              setup: Callable[[], None] | None = None) -> Callable[[int], float]:
        prepared: list[Callable[[int], float]] = []

        def time_func(loops: int) -> float:
            if not prepared:
                mod = module()
                dynfault.reset()
                if commands:
                    dynfault.control(commands)
                if setup is not None:
                    setup()
                func = getattr(mod, function)
                # Hot code, as a site in a loop is: 3.9 and 3.10 cache global lookups only in
                # functions called 1024 times; 3.11+ specialize after a few iterations anyway.
                for _ in range(2000):
                    func(1)
                prepared.append(func)
            return prepared[0](loops)

        return time_func

    def main_module() -> ModuleType:
        return _rewritten("dfbench_sites", where)

    def filler_module() -> ModuleType:
        return _rewritten("dfbench_sites10k", where)

    def plain_module() -> ModuleType:
        return _plain(where)

    def with_fiu() -> None:
        assert fiu is not None
        setattr(main_module(), "fiu_fail", fiu.fail)  # noqa: B010 (a generated module's global)

    benches: list[tuple[str, Callable[[int], float]]] = [
        ("sites.bare", timed(main_module, "t_bare")),
        ("sites.floor", timed(main_module, "t_floor")),
        ("sites.floor_shaped", timed(main_module, "t_floor_shaped")),
        ("sites.site", timed(main_module, "t_site")),
        ("sites.site_unrelated", timed(main_module, "t_site", "class other enable")),
        ("sites.site_10k", timed(filler_module, "t_site")),
        ("sites.call", timed(main_module, "t_call")),
        ("sites.runtime", timed(plain_module, "t_site")),
        ("sites.runtime_rules", timed(plain_module, "t_site", "class other enable")),
        ("sites.failpoint", timed(main_module, "t_failpoint",
                                  setup=lambda: _failpoint.configure("other"))),
    ]
    if fiu is not None:
        benches.append(("sites.fiu", timed(main_module, "t_fiu", setup=with_fiu)))
    def locked() -> None:
        # As a free-threaded build decides every hit: under the registry's lock, no plan.
        REGISTRY.set_lock_free(False)

    benches += [
        ("enabled.nofire", timed(main_module, "t_freq", "class bench:freq frequency 1000")),
        ("enabled.fire", timed(main_module, "t_fire", "class bench:fire enable")),
        # The same hits with the lock forced on, and the baselines of the same run that the
        # enabled path is held to: a plain call (sites.call) and an armed dict failpoint.
        ("enabled.nofire_locked", timed(main_module, "t_freq", "class bench:freq frequency 1000",
                                        setup=locked)),
        ("enabled.fire_locked", timed(main_module, "t_fire", "class bench:fire enable",
                                      setup=locked)),
        ("enabled.failpoint", timed(main_module, "t_failpoint",
                                    setup=lambda: _failpoint.configure("bench:off"))),
    ]
    for name, func in benches:
        runner.bench_time_func(name, func, inner_loops=_common.SITES_PER_LOOP)


if __name__ == "__main__":
    main()
