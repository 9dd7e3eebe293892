"""The bugs that tools/mutate.py plants, one at a time: each a small deliberate mistake that a
user would feel, and the tests that must catch it. Keep them exact: `find` must occur once."""

# Each find/replace is exact source text, kept whole so it reads against the code.
# ruff: noqa: E501

from __future__ import annotations


class Mutant:
    def __init__(self, area: str, id: str, file: str, find: str, replace: str,
                 tests: list[str], equivalent: bool = False, why: str = "") -> None:
        self.area, self.id, self.file = area, id, file
        self.find, self.replace, self.tests = find, replace, tests
        self.equivalent, self.why = equivalent, why


MUTANTS: list[Mutant] = []


def _m(area: str, id: str, file: str, find: str, replace: str, tests: list[str],
       equivalent: bool = False, why: str = "") -> None:
    MUTANTS.append(Mutant(area, id, file, find, replace, tests, equivalent, why))


# -- the runtime ------------------------------------------------------------------------------
RT = "tests/test_mutation_holes_runtime.py"
REG = "dynfault/runtime/registry.py"
SITE = "dynfault/runtime/site.py"
PLAN = "dynfault/runtime/plan.py"
SITES = "dynfault/runtime/sites.py"
FIRING = "tests/test_firing.py"
SITES_T = "tests/test_sites.py"
PAUSE_T = "tests/test_pause.py"

_m("runtime", "lock-free-decide", REG,
   "        with self.lock:\n            plan = site._plan\n",
   "        if True:\n            plan = site._plan\n", [RT, "tests/test_threads.py"])
_m("runtime", "outer-block-wins", REG,
   "        for layer in reversed(self.layers):\n            found = arms.get(layer)",
   "        for layer in self.layers:\n            found = arms.get(layer)", [RT, "tests/test_layers.py"])
_m("runtime", "outer-context-wins", REG,
   "            for layer in reversed(self.active.get()):",
   "            for layer in self.active.get():", [RT, SITES_T])
_m("runtime", "context-layer-ignored", REG,
   "            for layer in reversed(self.active.get()):\n                found = arms.get(layer)\n"
   "                if found is not None:\n                    return found\n",
   "            pass\n", [RT, SITES_T])
_m("runtime", "equal-rank-inserted-first", REG,
   "while at > 0 and self.layers[at - 1].rank > rank:",
   "while at > 0 and self.layers[at - 1].rank >= rank:", [RT, "tests/test_layers.py"])
_m("runtime", "rank-ignored", REG,
   "while at > 0 and self.layers[at - 1].rank > rank:",
   "while False:", [RT, "tests/test_layers.py"])
_m("runtime", "dead-layer-stays-target", REG,
   "            if self.target is layer:\n                self.target = self.process\n", "",
   [RT, "tests/test_pytest_plugin.py"])
_m("runtime", "class-glob-index-unsorted", REG,
   "            return sorted(found, key=_seq)", "            return list(found)", [RT, SITES_T])
_m("runtime", "select-index-off-by-one", REG,
   "matched = matched[query.index[0]:query.index[1] + 1]",
   "matched = matched[query.index[0]:query.index[1]]", [RT, SITES_T])
_m("runtime", "rule-index-exclusive", REG,
   "return index is None or index[0] <= self.number(site) <= index[1]",
   "return index is None or index[0] <= self.number(site) < index[1]", [RT, SITES_T])
_m("runtime", "registry-site-range-exclusive", REG,
   "if query.site is not None and not query.site[0] <= site.index <= query.site[1]:",
   "if query.site is not None and not query.site[0] <= site.index < query.site[1]:",
   [RT, "tests/test_lang.py"])
_m("runtime", "after-off-by-one", REG,
   "    if arm.after_left > 0:\n        arm.after_left -= 1",
   "    if arm.after_left > 1:\n        arm.after_left -= 1", [RT, FIRING])
_m("runtime", "frequency-off-by-one", REG,
   "        if arm.count < arm.frequency:", "        if arm.count <= arm.frequency:", [RT, FIRING])
_m("runtime", "times-off-by-one", REG,
   "        if arm.times_left <= 0:", "        if arm.times_left < 0:", [RT, FIRING])
_m("runtime", "oneshot-not-spent", REG,
   "    if arm.state == ONESHOT:\n        arm.spent = True",
   "    if arm.state == ONESHOT:\n        pass", [RT, FIRING])
_m("runtime", "probability-inverted", REG,
   "registry._draw() >= arm.probability:", "registry._draw() < arm.probability:",
   [RT, FIRING])
_m("runtime", "spent-still-fires", REG,
   "            if arm is None or arm.spent or arm.state == DISABLED:",
   "            if arm is None or arm.state == DISABLED:", [RT, FIRING])
_m("runtime", "spent-flag-stays-on", REG,
   "            if arm.spent:\n                site._live -= 1\n                self._sync(site)\n",
   "", [RT, FIRING, SITES_T])
_m("runtime", "reset-keeps-counters", REG,
   "                site._hits = site._fired = 0", "                pass", [RT, SITES_T])
_m("runtime", "reset-keeps-rules", REG,
   "                    self._drop(layer, site)\n                layer.rules.clear()",
   "                    self._drop(layer, site)", [RT, SITES_T])
_m("runtime", "reset-keeps-paused", REG,
   "            self._set_slow()\n        _stall.release()", "            self._set_slow()",
   [PAUSE_T])
_m("runtime", "close-keeps-arms", REG,
   "            for site in list(layer.arms):\n                self._drop(layer, site)\n"
   "                self._sync(site)\n",
   "", [RT, SITES_T])
_m("runtime", "refresh-keeps-spent", SITE,
   "        self.spent = False\n        self.count = 0", "        self.count = 0", [RT, FIRING])
_m("runtime", "reapply-not-rearmed", SITE,
   "        if command.state != DISABLED:\n            self.spent = False",
   "        if command.state != DISABLED:\n            pass", [RT, FIRING])
_m("runtime", "late-rule-not-taken", REG,
   "            self._index_class(site)\n            self._take_rules(site)\n",
   "            self._index_class(site)\n", [RT, SITES_T])
_m("runtime", "delay-returns-true", SITE,
   "        time.sleep(effect.delay / 1000.0)  # type: ignore[operator]  # releases the GIL\n"
   "    return False",
   "        time.sleep(effect.delay / 1000.0)  # type: ignore[operator]  # releases the GIL\n"
   "    return True", [RT, FIRING, "tests/test_effects.py"])
_m("runtime", "async-delay-returns-true", SITE,
   "            await asyncio.sleep(effect.delay / 1000.0)\n        return False",
   "            await asyncio.sleep(effect.delay / 1000.0)\n        return True", [RT])
_m("runtime", "late-raises-before-the-call", SITE,
   "        self.fn(*args, **kwargs)\n        raise", "        raise", ["tests/test_effects.py",
                                                                       "tests/test_calls.py"])
_m("runtime", "guard-ignores-late", SITE,
   "        if effect.late:\n            return _Late(self, fn, effect.error)\n", "",
   ["tests/test_effects.py", "tests/test_calls.py"])
_m("runtime", "error-setting-ignored", "dynfault/runtime/firing.py",
   "    if name is None:\n        return OSError(errno.EIO, text)",
   "    if True:\n        return OSError(errno.EIO, text)", ["tests/test_effects.py"])
_m("runtime", "listeners-not-told", SITE,
   "    if _firing.listeners or effect.crash:\n        announce(site, effect, frame)",
   "    if effect.crash:\n        announce(site, effect, frame)", ["tests/test_effects.py"])
_m("runtime", "plan-after-off-by-one", PLAN,
   "if n < self.after or", "if n <= self.after or", [RT, FIRING])
_m("runtime", "plan-last-off-by-one", PLAN,
   "self.after + self.limit * self.frequency - self.count0 - 1",
   "self.after + self.limit * self.frequency - self.count0", [RT, FIRING])
_m("runtime", "plan-not-spent", PLAN,
   "            if n == last:\n                self.registry.spend(self.site, self)\n", "",
   [RT, FIRING, "tests/test_threads.py"])
_m("runtime", "plan-fold-keeps-after", PLAN,
   "arm.after_left = max(0, self.after - hits)", "arm.after_left = self.after",
   [RT, FIRING, "tests/test_layers.py"])
_m("runtime", "plan-ignores-frequency-count", PLAN,
   "        self.count0 = min(arm.count, self.frequency - 1)", "        self.count0 = 0",
   [RT, FIRING])
_m("runtime", "control-to-process", SITES,
   "    return REGISTRY.apply(REGISTRY.target, parsed)",
   "    return REGISTRY.apply(REGISTRY.process, parsed)",
   ["tests/test_mutation_holes_plugin.py", "tests/test_pytest_plugin.py"])
_m("runtime", "faults-context-not-active", SITES,
   "    token = registry.active.set(registry.active.get() + (layer,)) if context else None",
   "    token = None", [SITES_T])
_m("runtime", "faults-layer-left-open", SITES,
   "            registry.active.reset(token)\n        registry.close_layer(layer)",
   "            registry.active.reset(token)", [SITES_T])
_m("runtime", "wait-paused-matches-once", "dynfault/runtime/pause.py",
   "    return _stall.wait_for(_chooser(parse_query(query)), count, timeout, query or \"any site\")",
   "    chosen = set(select(parse_query(query)))\n"
   "    return _stall.wait_for(lambda s: s in chosen, count, timeout, query or \"any site\")",
   [PAUSE_T])
_m("runtime", "resume-releases-all", "dynfault/runtime/pause.py",
   "    return _stall.release(_chooser(parse_query(query)))", "    return _stall.release(None)",
   [PAUSE_T])
_m("runtime", "frames-wrong-position", "dynfault/runtime/frames.py",
   "        if i == frame.f_lasti // 2:", "        if i == frame.f_lasti // 2 + 1:",
   ["tests/test_call_frames.py", "tests/test_effects.py"])
_m("runtime", "frames-stale-scan", "dynfault/runtime/frames.py",
   "    if cached is not None and cached[0] == stamp:", "    if cached is not None:",
   [SITES_T])

# -- the control language -----------------------------------------------------------------------
LANG = "dynfault/lang.py"
LANG_T = "tests/test_lang.py"
_m("lang", "line-range-exclusive", LANG,
   "if self.line is not None and not self.line[0] <= site.line <= self.line[1]:",
   "if self.line is not None and not self.line[0] <= site.line < self.line[1]:", [RT, SITES_T])
_m("lang", "site-range-exclusive", LANG,
   "if self.site is not None and not self.site[0] <= site.index <= self.site[1]:",
   "if self.site is not None and not self.site[0] <= site.index < self.site[1]:", [RT, LANG_T])
_m("lang", "class-prefix-without-colon", LANG,
   "return fault_class == pattern or fault_class.startswith(pattern + \":\")",
   "return fault_class == pattern or fault_class.startswith(pattern)", [LANG_T])
_m("lang", "class-glob-no-prefixes", LANG,
   "    return any(_fnmatchcase(\":\".join(parts[:n]), pattern) for n in range(1, len(parts)))",
   "    return False", [LANG_T])
_m("lang", "file-any-suffix", LANG,
   "return name == pattern or name.endswith(\"/\" + pattern.lstrip(\"/\"))",
   "return name == pattern or name.endswith(pattern.lstrip(\"/\"))", [LANG_T])
_m("lang", "func-no-last-part", LANG,
   "    return _fnmatchcase(function.rsplit(\".\", 1)[-1], pattern)", "    return False",
   [LANG_T])
_m("lang", "times-zero-accepted", LANG,
   "        return _int(word, key, 1)", "        return _int(word, key, 0)", [LANG_T])
_m("lang", "probability-zero-accepted", LANG,
   "    if not 0.0 < p <= 1.0:", "    if not 0.0 <= p <= 1.0:", [LANG_T])
_m("lang", "probability-one-refused", LANG,
   "    if not 0.0 < p <= 1.0:", "    if not 0.0 < p < 1.0:", [LANG_T])
_m("lang", "backwards-range-accepted", LANG,
   "    if first > last:\n        raise", "    if first > last + 1:\n        raise", [LANG_T])
_m("lang", "line-zero-accepted", LANG,
   "        parsed.query[field_name] = _span(nxt, \"line\", 1)",
   "        parsed.query[field_name] = _span(nxt, \"line\", 0)", [LANG_T])
_m("lang", "conflict-unchecked", LANG,
   "    _check_conflicts(parsed.said)\n", "", [LANG_T])
_m("lang", "state-twice-accepted", LANG,
   "        if before is not None:\n            raise _error(word, f\"'{key}' conflicts",
   "        if False:\n            raise _error(word, f\"'{key}' conflicts", [LANG_T])
_m("lang", "too-large-accepted", LANG,
   "    if len(text.lstrip(\"0\")) > len(str(MAX_COUNT)) or int(text) > MAX_COUNT:",
   "    if len(text.lstrip(\"0\")) > len(str(MAX_COUNT)):", [LANG_T])

# -- the instrument -------------------------------------------------------------------------------
IN = "tests/test_mutation_holes_instrument.py"
SCAN = "dynfault/instrument/scan.py"
_m("instrument", "optional-import-fallback-counts", SCAN,
   "        self.in_except += 1\n        if node.name:", "        if node.name:", [IN])
_m("instrument", "shadowed-name-is-ours", SCAN,
   "    return bool(real) and all(what in want for what in real)",
   "    return bool(real) and any(what in want for what in real)", [IN, "tests/test_calls.py"])
_m("instrument", "import-star-ignored", SCAN,
   "                    for name in FUNCTIONS:\n                        self.bind(name, name)",
   "                    pass", ["tests/test_hook.py"])
_m("instrument", "other-module-is-ours", SCAN,
   "        ours = node.level == 0 and node.module in MODULES",
   "        ours = node.level == 0", [IN])
_m("instrument", "index-not-per-kind", SCAN,
   "        index = counts.get(site_kind, 0)", "        index = position", ["tests/test_calls.py",
                                                                           "tests/test_index.py"])
_m("instrument", "prefilter-drops-calls", "dynfault/instrument/compile.py",
   "    return any(marker in source for marker in _markers(calls)) if calls else False",
   "    return False", ["tests/test_calls.py"])
_m("instrument", "markers-full-name", "dynfault/instrument/calls.py",
   "    return tuple(dict.fromkeys(name.rsplit(\".\", 1)[-1].encode() for name in calls))",
   "    return tuple(dict.fromkeys(name.encode() for name in calls))", ["tests/test_calls.py"])
_m("instrument", "no-sites-index-not-keyed", "dynfault/instrument/hook.py",
   "        if cache.known_without_sites(path, source_stamp, key):",
   "        if cache.known_without_sites(path, source_stamp):",
   ["tests/test_stale.py::test_the_no_sites_index_of_a_run_without_calls_hides_no_call_site"])
_m("instrument", "index-lookup-not-keyed", "dynfault/instrument/cache.py",
   "    found = indexes.get((directory, sys.pycache_prefix, key))\n    if found is not None:",
   "    found = indexes.get((directory, sys.pycache_prefix, \"\"))\n    if found is not None:",
   [IN, "tests/test_stale.py"])
_m("instrument", "calls-key-ignored", "dynfault/instrument/cache.py",
   "    if not calls:\n        return \"\"", "    if calls or not calls:\n        return \"\"",
   [IN, "tests/test_calls.py"])
_m("instrument", "stamp-ignores-ctime", "dynfault/instrument/hook.py",
   "        source_stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)\n        key",
   "        source_stamp = (st.st_mtime_ns, st.st_size, st.st_ino, 0)\n        key",
   ["tests/test_cache.py"])
_m("instrument", "cache-stamp-unchecked", "dynfault/instrument/cache.py",
   "    if not ((source_stamp is not None and data[24:56] == _pack(source_stamp))",
   "    if not ((source_stamp is not None)", ["tests/test_cache.py"])
_m("instrument", "cache-hash-unchecked", "dynfault/instrument/cache.py",
   "    if source_hash(memoryview(data)[16:]) != data[8:16]:\n        return None", "",
   ["tests/test_cache.py"])
_m("instrument", "index-recorded-under-dont-write", "dynfault/instrument/cache.py",
   "        if where is None or not write or sys.dont_write_bytecode:",
   "        if where is None or not write:", ["tests/test_cache.py"])
_m("instrument", "group-not-expanded", "dynfault/instrument/calls.py",
   "            out.update(dict.fromkeys(GROUPS[name]))", "            pass", ["tests/test_calls.py"])

# -- warm (stop 30) ----------------------------------------------------------------------------
HOOK = "dynfault/instrument/hook.py"
_m("instrument", "checked-loader-trusts-the-name", HOOK,
   "        if found is not None and found[1].get(name) == (st.st_mtime_ns, st.st_size, st.st_ino,\n"
   "                                                        st.st_ctime_ns):",
   "        if found is not None:", ["tests/test_stale.py", "tests/test_hook.py"])
_m("instrument", "checked-loader-drops-the-rewrite", HOOK,
   "        raise OSError(\"rewritten: not from the plain .pyc\")",
   "        return super().path_stats(path)", ["tests/test_stale.py", "tests/test_hook.py"])
_m("instrument", "finder-never-swaps-the-loader", HOOK,
   "            if name in found[1]:\n                spec.loader.__class__ = self._checked",
   "            if False:\n                spec.loader.__class__ = self._checked",
   ["tests/test_hook.py"])
_m("instrument", "checked-loader-forgets-the-calls", HOOK,
   "        self._checked: type[CheckedLoader] = CheckedLoader if not self.calls else type(",
   "        self._checked: type[CheckedLoader] = CheckedLoader if True else type(",
   ["tests/test_stale.py"])
_m("instrument", "header-table-not-packed", "dynfault/instrument/compile.py",
   "        insert_header(rewritten.tree, rewritten.header, pack=True)",
   "        insert_header(rewritten.tree, rewritten.header)", ["tests/test_rewrite.py"])
_m("instrument", "descriptor-keyed-by-index", "dynfault/instrument/rewrite.py",
   "        named = [(slot(sites[p].index, sites[p].fault_class), str(p))",
   "        named = [(slot(sites[p].index, sites[p].fault_class), str(sites[p].index))",
   ["tests/test_calls.py", "tests/test_hook.py"])
_m("instrument", "cache-format-ignored", "dynfault/instrument/cache.py",
   "_FLAGS = 0b11 | _FORMAT << 8", "_FLAGS = 0b11", ["tests/test_cache.py"])
_m("runtime", "pending-dynamic-site-shares-the-stand-in", REG,
   "                for position, index in dynamic:\n                    descriptors[position] = PendingSite(index)",
   "                for position, index in ():\n                    descriptors[position] = PendingSite(index)",
   ["tests/test_registry_speed.py", "tests/test_sites.py"])
_m("runtime", "bind-flags-not-from-sites", REG,
   "            namespace.update(zip(flags, [site._on for site in sites]))",
   "            namespace.update(dict.fromkeys(flags, False))",
   ["tests/test_registry_speed.py", "tests/test_sites.py"])

# -- the sweep ------------------------------------------------------------------------------------
SW = "tests/test_sweep.py"
SWH = "tests/test_mutation_holes_sweep.py"
_m("sweep", "reproducer-without-calls", "dynfault/sweep/plan.py",
   "        words.append(f\"DYNFAULT_CALLS={shlex.quote(calls)}\")", "        pass", [SW])
_m("sweep", "reproducer-without-check", "dynfault/sweep/plan.py",
   "        line += f\"sh -c {shlex.quote(check)}\"", "        pass", [SWH, SW])
_m("sweep", "enable-after-off-by-one", "dynfault/sweep/plan.py",
   "    after = f\" after {nth - 1}\" if nth > 1 else \"\"",
   "    after = f\" after {nth}\" if nth > 1 else \"\"", [SW])
_m("sweep", "plan-max-nth-exclusive", "dynfault/sweep/plan.py",
   "        for n in range(1, max(numbers, 1) + 1):", "        for n in range(1, max(numbers, 1)):",
   [SW])
_m("sweep", "targeted-despite-outside", "dynfault/sweep/plan.py",
   "        if targeted and known is not None and known.tests and not known.outside:",
   "        if targeted and known is not None and known.tests:", [SW])
_m("sweep", "sweep-index-off-by-one", "dynfault/sweep/plan.py",
   "        matched = matched[low:high + 1]", "        matched = matched[low:high]", [SW])
_m("sweep", "exclude-ignored", "dynfault/sweep/plan.py",
   "        keep -= _matching(query, sites)", "        pass", [SW])
_m("sweep", "shard-off-by-one", "dynfault/sweep/plan.py",
   "    return digest % shard[1] == shard[0] - 1", "    return digest % shard[1] == shard[0]",
   [SW])
_m("sweep", "timeout-floor-gone", "dynfault/sweep/plan.py",
   "    return max(30.0, 10.0 * expected)", "    return 10.0 * expected", [SW])
_m("sweep", "check-verdict-ignored", "dynfault/sweep/triage.py",
   "    if check_failed:\n        return FAILED, CHECK", "    if False:\n        return FAILED, CHECK",
   [SW])
_m("sweep", "asked-crash-is-failure", "dynfault/sweep/triage.py",
   "    asked = crash and report.crashing and code in _SIGKILL_STATUS", "    asked = False", [SW])
_m("sweep", "escaped-not-told", "dynfault/sweep/triage.py",
   "        if report.escaped:\n            return FAILED, ESCAPED",
   "        if False:\n            return FAILED, ESCAPED", [SW])
_m("sweep", "controlled-as-fired", "dynfault/sweep/reports.py",
   "        return not own and other > 0", "        return False", [SWH, SW])
_m("sweep", "test-fires-count-as-own", "dynfault/sweep/reports.py",
   "            self.fires.setdefault(key, [0, 0])[who != \"own\"] += 1",
   "            self.fires.setdefault(key, [0, 0])[0] += 1", [SWH, SW])
_m("sweep", "expected-ignores-check", "dynfault/sweep/findings.py",
   "    if result.outcome != FAILED or result.check not in (None, PASSED):",
   "    if result.outcome != FAILED:", [SWH, SW, "tests/test_sweep_wrapped.py"])
_m("sweep", "passed-is-a-finding", "dynfault/sweep/findings.py",
   "        if result.outcome != PASSED and not expected(result):",
   "        if not expected(result):", [SWH, SW])
_m("sweep", "crash-signal-unnamed", "dynfault/sweep/findings.py",
   "        return f\"crashed (signal {-code})\" if code is not None and code < 0 else \"crashed\"",
   "        return \"crashed\"", [SWH, SW])

# -- pool (stop 30) -------------------------------------------------------------------------------
VW = "tests/test_sweep_verdicts.py"
COUNTS = VW + "::test_every_worker_counts_its_hits_and_fires_however_it_ends"
CHILD = "dynfault/sweep/child.py"
_m("sweep", "hits-recorded-only-at-exit", CHILD,
   "    REGISTRY.count_hits(_on_hit)", "    pass", [COUNTS])
_m("sweep", "hits-recorded-only-to-64", CHILD,
   "    if hits <= 64 or not hits & (hits - 1):", "    if hits <= 64:", [COUNTS])
_m("sweep", "hits-record-first-not-largest", "dynfault/sweep/reports.py",
   "    if old is None or hits > old[0]:", "    if old is None:", [COUNTS])
_m("sweep", "hits-record-beside-its-report", "dynfault/sweep/reports.py",
   "        report._add_fires(text, cwd, reported=name[:-len(\".fires\")] in reported)",
   "        report._add_fires(text, cwd, reported=False)", [COUNTS])
_m("sweep", "hits-record-cut-line-read", "dynfault/sweep/reports.py",
   "        for line in lines[:-1]:", "        for line in lines:",
   [VW + "::test_a_record_without_its_report_gives_each_sites_largest_count"])
_m("sweep", "report-not-named-after-its-record", CHILD,
   "    name = f\"{directory}/{_token[0]}\"", "    name = f\"{directory}/{_token[0]}-r\"", [COUNTS])
_m("sweep", "fork-keeps-the-record-of-its-parent", CHILD,
   "    _report_pid = _getpid()\n    _new_token()", "    _report_pid = _getpid()", [COUNTS])
_m("runtime", "plan-bypasses-on-hit", REG,
   "                        and self.on_hit is None:", "                        and True:",
   [COUNTS, "tests/test_registry_on_hit.py"])
_m("runtime", "on-hit-never-installed", REG,
   "                vars(self)[\"decide\"] = self._decide_and_count", "                pass",
   [COUNTS, "tests/test_registry_on_hit.py"])
_m("runtime", "on-hit-for-an-uncounted-hit", REG,
   "            if site._hits != before and on_hit is not None:",
   "            if on_hit is not None:", ["tests/test_registry_on_hit.py"])
_m("sweep", "forked-worker-keeps-sigterm-handler", CHILD,
   "    _new_token()\n    _default_sigterm()", "    _new_token()",
   [VW + "::test_only_pytests_own_process_takes_sigterm_to_write_its_report"])
_m("sweep", "every-process-takes-sigterm", CHILD,
   "    _stacks_on_signal()  # every process of a run, the runtime or not: it may hang all the same",
   "    _stacks_on_signal()\n    _signal.signal(_signal.SIGTERM, _write_and_die)",
   [VW + "::test_only_pytests_own_process_takes_sigterm_to_write_its_report"])
_m("instrument", "lock-inherited-held-by-a-fork", "dynfault/util.py",
   "        os.register_at_fork(before=lock.acquire, after_in_parent=lock.release,\n"
   "                            after_in_child=lock.release)", "        pass",
   ["tests/test_fork_locks.py"])

# -- sweep3 (stop 30) ------------------------------------------------------------------------------
SWO = "tests/test_sweep_options.py"
_m("sweep", "close-fails-early", "dynfault/instrument/calls.py",
   "LATE_CALLS = frozenset({\"os.close\"})", "LATE_CALLS: frozenset[str] = frozenset()", [SWO])
_m("sweep", "tests-swept", "dynfault/sweep/orchestrate.py",
   "    if state.options.include_tests:\n        return sites\n    from",
   "    if True:\n        return sites\n    from", ["tests/test_sweep_testfiles.py"])
_m("sweep", "test-folders-ignored", "dynfault/sweep/testfiles.py",
   "    if base == \"conftest.py\" or any(part in TEST_FOLDERS for part in folders):",
   "    if base == \"conftest.py\":", ["tests/test_sweep_testfiles.py"])
_m("sweep", "strict-ignored", "dynfault/sweep/orchestrate.py",
   "    if options.strict and warnings_given():\n        raise",
   "    if False:\n        raise", [SWO])
_m("sweep", "idle-call-unsaid", "dynfault/sweep/unused.py",
   "            if not name.startswith(\"@\") and f\"call:{name}\" not in made]",
   "            if False]", [SWO])
_m("sweep", "runs-share-tmpdir", "dynfault/sweep/orchestrate.py",
   "            env[\"TMPDIR\"] = tmpdir\n", "", [SWO])
_m("sweep", "check-in-shared-tmpdir", "dynfault/sweep/orchestrate.py",
   "        env[\"TMPDIR\"] = tmpdir  # the run's own\n", "", [SWO])
_m("sweep", "tests-quoted-twice", "dynfault/sweep/child.py",
   "    return \" \".join(_test_word(test) for test in tests)",
   "    import shlex\n    return shlex.join(tests)", ["tests/test_sweep_repro.py"])
_m("sweep", "rule-path-single-quoted", "dynfault/sweep/plan.py",
   "    if word == value or '\"' in value:", "    if True:",
   ["tests/test_sweep_repro.py", SW])
_m("sweep", "receiver-not-checked", "dynfault/runtime/site.py",
   "        if narrowed is not None and not narrowed.accepts(fn):\n            return fn",
   "        if False:\n            return fn", ["tests/test_calls_receivers.py"])
_m("sweep", "receiver-subclass-missed", "dynfault/runtime/site.py",
   "                for klass in kind.__mro__)", "                for klass in kind.__mro__[:1])",
   ["tests/test_calls_receivers.py"])
_m("sweep", "named-method-still-narrowed", "dynfault/instrument/calls.py",
   "    return {name: types for name, types in narrowed.items() if name not in wide}",
   "    return narrowed", ["tests/test_calls_receivers.py"])
_m("sweep", "foreign-sites-listed-unreached", "dynfault/sweep/orchestrate.py",
   "    return [s for s in unreached if name_of[s.key] not in narrowed]", "    return unreached",
   ["tests/test_calls_receivers.py"])
_m("sweep", "receiver-cache-unbounded", "dynfault/runtime/site.py",
   "            if len(self.known) >= 64:\n                self.known.clear()\n",
   "", ["tests/test_calls_receivers.py"])
_m("sweep", "paths-without-calls", "dynfault/sweep/orchestrate.py",
   "    for _, site in scan_paths(paths, warn, split_names(calls)):",
   "    for _, site in scan_paths(paths, warn):", [SWO])

# -- trial21 (stop 30) -----------------------------------------------------------------------------
SWW = "tests/test_sweep_wrapped.py"
_m("sweep", "wrapped-is-a-finding", "dynfault/sweep/findings.py",
   "    return result.reason in (ESCAPED, FAILED) and bool(result.causes) \\\n"
   "        and all(propagated for _kind, _where, propagated in result.causes)",
   "    return False", [SWW])
_m("sweep", "one-wrapped-cause-is-enough", "dynfault/sweep/findings.py",
   "        and all(propagated for _kind, _where, propagated in result.causes)",
   "        and any(propagated for _kind, _where, propagated in result.causes)", [SWW])
_m("sweep", "no-cause-is-propagation", "dynfault/sweep/findings.py",
   "    return result.reason in (ESCAPED, FAILED) and bool(result.causes) \\\n",
   "    return result.reason in (ESCAPED, FAILED) and True \\\n", [SWW])

# -- lead (stop 30): fired frames let go ------------------------------------------------------
LT = "tests/test_sweep_lifetimes.py"
_m("sweep", "frames-kept-past-collections", "dynfault/sweep/child.py",
   "    if _release_frames not in callbacks:\n        callbacks.append(_release_frames)",
   "    pass", [LT])
_m("sweep", "frames-kept-past-the-test", "dynfault/sweep/child.py",
   "def _test_ended(nodeid: str) -> None:\n    _release_frames()\n",
   "def _test_ended(nodeid: str) -> None:\n", [LT], equivalent=True,
   why="in a targeted run every test reaches the site and fires, and each fire lets go first; "
       "the test's end is the backstop for a test that fires nothing")
_m("sweep", "frames-dropped-while-held", "dynfault/sweep/child.py",
   "if sys.getrefcount(frame) > 3]", "if sys.getrefcount(frame) > 99]",
   [LT])

# -- pc3 (stop 30) -----------------------------------------------------------------------------
PCS = "tests/test_powercut_side_files.py"
PCR = "dynfault/powercut/record.py"

_m("powercut", "side-file-kept-after-fork", PCR,
   "        if rec.side >= 0:  # the parent's side file is the parent's: the child opens its own\n            _real_close(rec.side)\n            rec.side = -1",
   "        pass", [PCS])
_m("powercut", "side-file-offset-from-zero", PCR,
   "            self.side_at = _fstat(self.side).st_size  # a pid used again appends",
   "            self.side_at = 0", [PCS])
_m("powercut", "exclusive-open-says-existed", PCR,
   "                super().__init__(file, mode, closefd, _exclusive)\n                existed = False",
   "                super().__init__(file, mode, closefd, _exclusive)", ["tests/test_powercut_record.py"])
_m("powercut", "recorded-buffer-not-io-opens", PCR,
   "        buffering = blksize if blksize > 1 else io.DEFAULT_BUFFER_SIZE",
   "        buffering = io.DEFAULT_BUFFER_SIZE", ["tests/test_powercut_record.py"])
_m("powercut", "side-files-never-folded", "dynfault/powercut/snapshot.py",
   "    fold_side_files(journal)\n    opaque = opaque_files(journal)",
   "    opaque = opaque_files(journal)", [PCS])

PCA = "tests/test_powercut_absent_dir.py"
_m("powercut", "absent-dir-refused", "dynfault/cli/powercut.py",
   "        if not os.path.lexists(full) and not os.path.isdir(os.path.dirname(full)):",
   "        if not os.path.lexists(full):", [PCA])
_m("powercut", "absent-dir-shown-unmade", "dynfault/powercut/model.py",
   "            if root is None or root in missing:", "            if root is None:", [PCA])
_m("powercut", "creation-lost-named-never-made", "dynfault/powercut/model.py",
   "made is not None and made in lost else", "made is not None and made not in lost else", [PCA])
_m("powercut", "absent-dir-parent-fsync-unseen", PCR,
   "        if full in self.parents:\n            return full\n", "", [PCA])
_m("powercut", "absent-dir-kept-between-states", "dynfault/powercut/explorer.py",
   "            if root in self.history.absent:  # made again only if the state holds it",
   "            if False:", [PCA])
_m("powercut", "absent-dir-always-made", "dynfault/powercut/explorer.py",
   "        if root not in history.absent:\n            os.makedirs(dest, exist_ok=True)",
   "        os.makedirs(dest, exist_ok=True)", [PCA])

PCJ = "tests/test_powercut_journal_example.py"
_m("powercut", "fixed-journal-cuts-the-newline", "examples/journal.py",
   "        cut = (data if zero < 0 else data[:zero]).rfind(b\"\\n\") + 1",
   "        cut = max(0, (data if zero < 0 else data[:zero]).rfind(b\"\\n\"))", [PCJ])
_m("powercut", "fixed-journal-keeps-zeros", "examples/journal.py",
   "        zero = data.find(b\"\\0\")", "        zero = -1", [PCJ])

_m("powercut", "settings-kill-check-ignores-acks", "examples/settings.py",
   "            acked = f.read().splitlines()\n    except FileNotFoundError:",
   "            acked = []\n    except FileNotFoundError:", ["tests/test_powercut_settings.py"])
_m("powercut", "settings-kill-check-leaves-state", "examples/settings.py",
   "            if os.path.exists(path):\n                os.unlink(path)", "            pass",
   ["tests/test_powercut_settings.py"])

# -- startup (stop 30) -----------------------------------------------------------------------------
FAST_T = "tests/test_fastpath.py"
IMPORTS_T = "tests/test_child_imports.py"
FAST = "dynfault/cli/fastpath.py"
_m("startup", "fast-double-dash-kept", FAST,
   "        if word == \"--\":  # click drops it; all that follows is the program's\n            at += 1\n            break",
   "        if word == \"--\":  # click drops it; all that follows is the program's\n            break",
   [FAST_T])
_m("startup", "fast-flag-takes-a-value", FAST,
   "        if name in _FLAGS and not equals:", "        if name in _FLAGS:", [FAST_T])
_m("startup", "fast-value-like-an-option", FAST,
   "            if at + 1 >= len(rest) or rest[at + 1].startswith(\"-\"):",
   "            if at + 1 >= len(rest):", [FAST_T])
_m("startup", "fast-report-json-first-wins", FAST,
   "            found[key] = value  # the last one given, as click keeps it",
   "            found[key] = found[key] or value", [FAST_T])
_m("startup", "fast-error-unworded", FAST,
   "        say(f\"dynfault run: {flat(str(error)) or type(error).__name__}\")",
   "        say(flat(str(error)))", [FAST_T])
_m("startup", "fast-error-exit-1", FAST,
   "        sys.exit(error.exit_code)", "        sys.exit(1)", [FAST_T])
_m("startup", "child-starts-at-once", "dynfault/child.py",
   "        startup.defer(_started)", "        startup.defer(_started)\n        startup.start()",
   [IMPORTS_T])
_m("startup", "toml-key-after-dot-missed", "dynfault/cli/rules.py",
   "        if follows in (b\"=\", b\".\"):", "        if follows == b\"=\":", [FAST_T])
_m("startup", "seeded-child-deferred", "dynfault/child.py",
   " or environ.get(_SEED, \"\").strip():", ":", ["tests/test_sweep_find.py"])
_m("startup", "deferred-error-silent", "dynfault/child.py",
   "        sys.stderr.write(\"dynfault: child process not instrumented: %s\\n\"",
   "        len(\"dynfault: child process not instrumented: %s\\n\"", ["tests/test_child.py"])
_m("startup", "deferred-report-never-connected", "dynfault/child.py",
   "            from dynfault.sweep.child import connect\n\n            connect()",
   "            pass", [IMPORTS_T])
_m("startup", "start-lock-kept-after-fork", "dynfault/startup.py",
   "        os.register_at_fork(after_in_child=_renew_lock)", "        pass", [IMPORTS_T])
_m("startup", "sweep-report-imports-runtime", "dynfault/sweep/child.py",
   "    if \"dynfault.runtime.sites\" not in sys.modules:\n        return []\n", "", [IMPORTS_T])
_m("startup", "to-json-unescaped", "dynfault/sweep/child.py",
   "        elif \" \" <= char <= \"~\":", "        elif True:", [IMPORTS_T])
_m("startup", "plain-code-any-source", "dynfault/cli/runner.py",
   "        if data[:12] == identity and", "        if data[:4] == identity[:4] and", [FAST_T])
_m("startup", "plain-code-any-path", "dynfault/cli/runner.py",
   "_imp.source_hash(key, source + b\"\\0\" +\n                                                        os.fsencode(path))",
   "_imp.source_hash(key, source)", [FAST_T])

# -- ctl/paths ------------------------------------------------------------------------------------
CT = "tests/test_mutation_holes_ctl.py"
PATHS = "dynfault/ctl/paths.py"
_m("ctl", "sticky-parent-of-anyone", PATHS,
   "        if mode & stat.S_ISVTX and info.st_uid == 0:", "        if mode & stat.S_ISVTX:",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "parent-of-another-user", PATHS,
   "    if info.st_uid not in (0, me):\n        return", "    if False:\n        return",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "socket-of-another-user", PATHS,
   "    if info.st_uid != os.geteuid():\n        raise UntrustedPath(path, info.st_uid, f\"not yours",
   "    if False:\n        raise UntrustedPath(path, info.st_uid, f\"not yours",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "socket-open-to-group", PATHS,
   "    if stat.S_IMODE(info.st_mode) & 0o077:\n        raise UntrustedPath(path",
   "    if stat.S_IMODE(info.st_mode) & 0o007:\n        raise UntrustedPath(path",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "peer-uid-is-pid", PATHS,
   "    return int(struct.unpack(\"3i\", raw)[1])", "    return int(struct.unpack(\"3i\", raw)[0])",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "private-dir-open-to-group", PATHS,
   "    if stat.S_IMODE(info.st_mode) & 0o077:\n        return",
   "    if stat.S_IMODE(info.st_mode) & 0o007:\n        return", [CT, "tests/test_ctl_trust.py"])
_m("ctl", "private-dir-of-another-user", PATHS,
   "    if info.st_uid != me:\n        return f\"not yours", "    if False:\n        return f\"not yours",
   [CT, "tests/test_ctl_trust.py"])
_m("ctl", "parents-unchecked", PATHS,
   "    check_parents(directory)\n    try:", "    try:", [CT, "tests/test_ctl_trust.py"])
_m("ctl", "missing-made-with-umask", PATHS,
   "            os.chmod(path, 0o700)  # a umask", "            pass  # a umask",
   [CT, "tests/test_ctl_trust.py"])

# -- the pytest plugin ----------------------------------------------------------------------------
PH = "tests/test_mutation_holes_plugin.py"
PLUG = "dynfault/pytest_plugin.py"
PT = "tests/test_pytest_plugin.py"
_m("plugin", "class-marker-wins", PLUG,
   "    for marker in reversed(list(item.iter_markers(\"dynfault\"))):",
   "    for marker in item.iter_markers(\"dynfault\"):", [PH, PT])
_m("plugin", "marker-to-the-session", PLUG,
   "                REGISTRY.apply(layer, parse(commands))\n            else:",
   "                REGISTRY.apply(REGISTRY.process, parse(commands))\n            else:", [PH, PT])
_m("plugin", "session-gone-after-reset", PLUG,
   "    if REGISTRY.resets != state.resets:  # a reset()", "    if False:  # a reset()", [PH, PT])
_m("plugin", "counts-negative-after-reset", PLUG,
   "    return now - then if now >= then else now", "    return now - then", [PH, PT])
_m("plugin", "test-layer-not-target", PLUG,
   "    test.layer = REGISTRY.open_layer(TEST)\n    REGISTRY.target = test.layer",
   "    test.layer = REGISTRY.open_layer(TEST)", [PH, PT])
_m("plugin", "test-layer-left-open", PLUG,
   "    REGISTRY.close_layer(layer)\n    test.layer = None", "    test.layer = None", [PH, PT])
_m("plugin", "session-progress-carries-over", PLUG,
   "    if state is not None and state.layer is not None:\n        REGISTRY.refresh(state.layer)",
   "    if False:\n        REGISTRY.refresh(state.layer)", [PH, PT])
_m("plugin", "fixture-reset-keeps-baseline", PLUG,
   "        reset()\n        self._test.baseline = {}", "        reset()", [PH, PT])
_m("plugin", "fired-counts-hits", PLUG,
   "        return sum(_since(s.fired, self._test.baseline.get(s, (0, 0))[1])",
   "        return sum(_since(s.hits, self._test.baseline.get(s, (0, 0))[0])", [PT])
_m("plugin", "bad-marker-accepted", PLUG,
   "            if problem:  # failed outside", "            if False:  # failed outside", [PT])
_m("plugin", "unmatched-marker-not-reported", PLUG,
   "                    state.unmatched.append(", "                    (", [PT])
_m("plugin", "paused-left-at-test-end", PLUG,
   "    resume()  # before the layer goes", "    pass  # before the layer goes", [PT])

# -- bench (stop 30) ------------------------------------------------------------------------------
BT = "tests/test_benchmarks.py"
RUN = "benchmarks/run.py"
_m("bench", "bench-file-glob-names-no-site", "benchmarks/bench_control.py",
   'FILE_GLOB = "file pkg0/mod1?.py"', 'FILE_GLOB = "file pkg3/mod30?.py"', [BT])
_m("bench", "bench-unmatched-query-timed", "benchmarks/bench_control.py",
   "        if not matched:", "        if False:", [BT])
_m("bench", "bench-share-over-all-of-click", RUN,
   '    own = f["dynfault_run"] - f["plain"]\n', '    own = f["dynfault_run"] - f["plain"] - floor\n',
   [BT])
_m("bench", "bench-click-floor-over-hello", RUN,
   '    floor = f["click"] - f["pass"]\n    own = f["dynfault_run"] - f["plain"]\n',
   '    floor = f["click"] - f["plain"]\n    own = f["dynfault_run"] - f["plain"]\n', [BT])
_m("bench", "bench-gate-ignored", RUN,
   "    return 1 if args.gate and missed else 0", "    return 0", [BT])
_m("bench", "bench-libfiu-stand-in-unmapped", RUN,
   "    value = stand_in * FAILPOINT_PER_FIU", "    value = stand_in", [BT])
_m("bench", "bench-sweep-child-goal-loose", RUN,
   "        return f\"{extra * 1e3:+.1f} ms\", extra <= 0.003",
   "        return f\"{extra * 1e3:+.1f} ms\", extra <= 0.0035", [BT])
_m("sweep", "run-env-keeps-outer-enable", "dynfault/env.py",
   "    _put(environ, DYNFAULT_ENABLE, enable if enable.strip() else \"\")",
   "    if enable.strip():\n        environ[DYNFAULT_ENABLE] = enable", [SWH, SW])
_m("sweep", "run-env-without-calls", "dynfault/env.py",
   "    _put(environ, DYNFAULT_CALLS, \",\".join(dict.fromkeys(calls)))", "    pass",
   [SWH, SW])
_m("sweep", "call-site-rule-without-class", "dynfault/sweep/plan.py",
   "    kind = f\" class {_word(kind)}\" if kind else \"\"", "    kind = \"\"", [SW])
_m("sweep", "key-without-kind", "dynfault/record.py",
   "    return (filename, site_kind(fault_class), index)", "    return (filename, \"\", index)",
   [SW, SWH])
_m("sweep", "check-env-keeps-the-rule", "dynfault/sweep/execute.py",
   "    env = {k: v for k, v in os.environ.items() if not k.startswith(\"DYNFAULT_\")}",
   "    env = dict(os.environ)", [SWH, SW])
_m("sweep", "test-rule-counted-as-own", "dynfault/sweep/child.py",
   "    return arm is not None and arm is registry.process.arms.get(site)",
   "    return arm is not None",
   ["tests/test_sweep_verdicts.py::test_a_site_that_only_the_tests_own_marker_fires_is_controlled"])
_m("sweep", "targeted-tests-unquoted", "dynfault/sweep/child.py",
   "        return shlex.split(text)", "        return text.split()", [SW])
_m("sweep", "controlled-counted-as-tested", "dynfault/sweep/summary.py",
   "            f\"{len(passed) - idle - controlled} passed with the fault",
   "            f\"{len(passed) - idle} passed with the fault", [SWH, SW])
_m("sweep", "controlled-cell-says-no", "dynfault/sweep/summary.py",
   "        return \"test\"", "        return \"no\"", [SWH, SW])
_m("sweep", "controlled-listed-as-idle", "dynfault/sweep/summary.py",
   "    idle = [r for r in ordered if r.outcome == PASSED and not r.fired and not r.controlled]",
   "    idle = [r for r in ordered if r.outcome == PASSED and not r.fired]", [SWH, SW])
_m("sweep", "injected-ignores-its-cause", "dynfault/sweep/child.py",
   "        current, seen = current.__cause__, seen + 1", "        current, seen = None, seen + 1",
   [SW])
_m("sweep", "reproducer-without-check-call", "dynfault/sweep/plan.py",
   "    if check_call is not None:  # the in-process check that failed: it fails the test here",
   "    if False:  # the in-process check that failed: it fails the test here",
   ["tests/test_sweep_options.py::test_check_call_sees_state_before_the_fixtures_tear_it_down"])
_m("runtime", "crash-through-mocked-kill", "dynfault/runtime/firing.py",
   "    _kill(_getpid(), _SIGKILL)", "    os.kill(os.getpid(), _SIGKILL)",
   ["tests/test_firing.py"])

# -- lead (stop 31): the probe of a faster import design ----------------------------------------
PROBE = "tools/probe_static_import.py"
PT = "tests/test_probe_static_import.py"
_m("bench", "probe-design-without-table", PROBE,
   "    design = source + f\"\\n__import__({REGISTRY!r}).append({table[0]!r})\\n\"",
   "    design = source", [PT])
_m("bench", "probe-now-unchecked", PROBE, "        if name != \"plain\":",
   "        if name == \"design\":", [PT])
_m("bench", "probe-rounds-zero-accepted", PROBE, "    if args.rounds < 1:",
   "    if args.rounds < 0:", [PT])

# -- lead (stop 32): a fire while Python shuts down imports nothing -----------------------------
SHUT = "tests/test_shutdown_fire.py"
_m("sweep", "fire-record-imports-at-shutdown", "dynfault/sweep/child.py",
   "    registry = _registry[0]",
   "    from dynfault.runtime.sites import REGISTRY as registry", [SHUT])
_m("runtime", "spent-flag-imports-at-shutdown", "dynfault/runtime/registry.py",
   "            name = FLAG + slot(site.index, site.fault_class)",
   "            from dynfault.instrument import names\n"
   "            name = names.FLAG + names.slot(site.index, site.fault_class)", [SHUT])
_m("runtime", "injected-error-imports-at-shutdown", "dynfault/runtime/firing.py",
   "    text = message(site)\n    if name is None:",
   "    import errno\n    text = message(site)\n    if name is None:", [SHUT])

# -- lead (stop 33): one escape no longer hides another test's failure; a failure that follows
# the fault's own error ending a thread or a process of the test is propagation -------------------
WRAP = "tests/test_sweep_wrapped.py"
_m("sweep", "escape-hides-other-failures", "dynfault/sweep/findings.py",
   "    if result.reason == ESCAPED and not result.causes:",
   "    if result.reason == ESCAPED:", [WRAP])
_m("sweep", "escaped-cause-not-propagated", "dynfault/sweep/child.py",
   "    return [name, where, escaped or is_injected(error), _test_now()]",
   "    return [name, where, is_injected(error), _test_now()]", ["tests/test_sweep_find.py"])
_m("sweep", "thread-end-not-heard", "dynfault/sweep/child.py",
   "            if test:\n                _explained.add(test)\n        previous(args)",
   "        previous(args)", [WRAP])
_m("sweep", "child-process-not-tied-to-its-test", "dynfault/sweep/child.py",
   "    current = os.environ.get(\"PYTEST_CURRENT_TEST\", \"\")",
   "    current = \"\"", [WRAP])
_m("sweep", "explained-tests-not-read", "dynfault/sweep/reports.py",
   "            self.explained.update(str(test) for test in explained)",
   "            pass", [WRAP])
_m("sweep", "consequence-titles-the-group", "dynfault/sweep/reports.py",
   "        return direct + [c for c in after if c[2]] + [c for c in after if not c[2]]",
   "        return [c for c in after if c[2]] + direct + [c for c in after if not c[2]]", [WRAP])
_m("sweep", "no-check-read-as-check-failed", "dynfault/sweep/findings.py",
   "(result.reason == ESCAPED and result.check not in (None, PASSED))",
   "(result.reason == ESCAPED and result.check != PASSED)", [WRAP])
_m("sweep", "group-named-by-first-cause", "dynfault/sweep/findings.py",
   "    kind = (at_site or result.causes or [(\"exception\", \"\", False)])[0][0]",
   "    kind = (result.causes or [(\"exception\", \"\", False)])[0][0]", [WRAP])
_m("sweep", "child-cause-not-tied-to-its-test", "dynfault/sweep/reports.py",
   "        ended = self.explained | {test for _k, _w, propagated, test in self._causes\n"
   "                                  if propagated and test}",
   "        ended = self.explained", [WRAP])
