"""Judge a trial's sweeps: every run of each project's JSON against a verdicts file.

    python trials/judge.py OUT_DIR [VERDICTS]
        OUT_DIR holds filelock.json and .txt, diskcache.*, sqlitedict.* (the scripts' output);
        VERDICTS defaults to trials/verdicts.txt (whole suites; verdicts-x.txt: the runs
        stopped at their first failure, X=-x; verdicts-main.txt: the runs on main)

verdicts.txt has one line per run a person judged by rerunning its reproducer:
    PROJECT FILE:LINE CLASS VERDICT reason...
VERDICT is `real` (a gap in the project: state left behind, a hang, an error misread),
`expected` (the project handled the fault or let it propagate as it should), or `defect` (the
run says something untrue because of dynfault). A run is put first when the sweep's printed
table (PROJECT.txt beside the JSON) lists it under "findings (need a person)", as the dynfault
that made it decided; the number of causes is that section's heading.
The figure: the share of real gaps among the runs put first, the real gaps not put first, and
the defects. A run with no verdict is printed as unjudged: the figure is then not complete.
"""

from __future__ import annotations

import json
import os
import re
import sys

PROJECTS = ("filelock", "diskcache", "sqlitedict")
VERDICTS = ("real", "expected", "defect")


def load_verdicts(path: str) -> dict[tuple[str, str], tuple[str, str]]:
    verdicts: dict[tuple[str, str], tuple[str, str]] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            project, where, kind, verdict, *reason = line.split()
            if verdict not in VERDICTS:
                raise SystemExit(f"{path}:{number}: verdict {verdict!r} is none of {VERDICTS}")
            verdicts[(project, f"{where} {kind}")] = (verdict, " ".join(reason))
    return verdicts


_SITE = re.compile(r"^    (\S+:\d+) class:(\S+) func:")
_CAUSES = re.compile(r"^findings \(need a person\): (\d+) cause")


def put_first(table: str) -> tuple[set[str], int]:
    """The runs (`FILE:LINE CLASS`) the printed table lists as findings, and their causes."""
    keys: set[str] = set()
    causes = 0
    inside = False
    for line in table.splitlines():
        heading = _CAUSES.match(line)
        if heading:
            inside, causes = True, int(heading.group(1))
            continue
        if inside and line and not line.startswith(" "):
            break
        site = _SITE.match(line) if inside else None
        if site:
            keys.add(f"{site.group(1)} {site.group(2)}")
    return keys, causes


def run_key(run: dict) -> str:
    return f"{run['filename']}:{run['line']} {run['fault_class']}"


def sweeps(out: str) -> list[tuple[str, dict, set[str], int]]:
    """Each project's sweep found in OUT: (project, its JSON, the keys of the runs its table
    puts first, how many groups those make)."""
    found = []
    for project in PROJECTS:
        path = os.path.join(out, f"{project}.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        with open(os.path.join(out, f"{project}.txt"), encoding="utf-8") as file:
            listed, groups = put_first(file.read())
        found.append((project, data, listed, groups))
    return found


def judge(out: str, verdicts: dict[tuple[str, str], tuple[str, str]]) -> int:
    totals = dict.fromkeys(("runs", "first", "groups", "real", "expected", "defect",
                            "missing", "unjudged"), 0)
    print("| project | runs | put first (groups) | real gaps among them | not gaps among them "
          "| dynfault defects | real gaps not put first | unjudged |")
    print("|---|---|---|---|---|---|---|---|")
    details = []
    for project, data, listed, groups in sweeps(out):
        runs = data["runs"]
        first = [run_key(run) in listed for run in runs]
        row = dict.fromkeys(totals, 0)
        row["runs"], row["first"], row["groups"] = len(runs), sum(first), groups
        for run, is_first in zip(runs, first):
            verdict, reason = verdicts.get((project, run_key(run)), ("unjudged", ""))
            if verdict == "unjudged":
                row["unjudged"] += 1
            elif verdict == "defect":
                row["defect"] += 1
            elif is_first:
                row["real" if verdict == "real" else "expected"] += 1
            elif verdict == "real":
                row["missing"] += 1
            shown = run["outcome"] + (f" ({run['reason']})" if run.get("reason") else "")
            if run.get("check") not in (None, "passed") and run.get("reason") != "check":
                shown += f", check {run['check']}"
            details.append(f"| {project} | `{run_key(run)}` | {shown} | "
                           f"{'first' if is_first else ''} | {verdict} | {reason} |")
        for key in totals:
            totals[key] += row[key]
        print(f"| {project} | {row['runs']} | {row['first']} ({row['groups']}) | "
              f"{row['real']} | {row['expected']} | {row['defect']} | {row['missing']} | "
              f"{row['unjudged']} |")
    share = f"{100 * totals['real'] // totals['first']}%" if totals["first"] else "-"
    print(f"| all | {totals['runs']} | {totals['first']} ({totals['groups']}) | "
          f"{totals['real']} ({share}) | {totals['expected']} | {totals['defect']} | "
          f"{totals['missing']} | {totals['unjudged']} |")
    print()
    print("| project | run | outcome | put first | verdict | why |")
    print("|---|---|---|---|---|---|")
    print("\n".join(details))
    return 0 if totals["unjudged"] == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python trials/judge.py OUT_DIR [VERDICTS]")
    here = os.path.dirname(os.path.abspath(__file__))
    verdicts = sys.argv[2] if len(sys.argv) == 3 else os.path.join(here, "verdicts.txt")
    sys.exit(judge(sys.argv[1], load_verdicts(verdicts)))
