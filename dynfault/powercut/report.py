"""What an exploration found, for programs (the JSON of SPEC §9, the same bytes for every
`--replay` of one journal apart from "timing"), and `--baseline`; the table people read is
`result.table`, named here too."""

from __future__ import annotations

import json

from dynfault.powercut.journal import JournalError
from dynfault.powercut.result import Result, Vulnerability, op_text, table
from dynfault.record import JSON_VERSION

__all__ = ["table", "to_dict", "to_json", "load_baseline", "new_since", "op_text"]


def _vulnerability(v: Vulnerability) -> dict[str, object]:
    return {"kind": v.kind,
            "ops": [{"seq": op.seq, "op": op.kind, "path": op.path if op.kind != "ack"
                     else op.text, "filename": op.filename, "line": op.line,
                     "function": op.function} for op in v.ops],
            "models": list(v.models), "failing": v.failing, "checked": v.checked,
            "state": v.state, "fix": v.fix, "reproducer": v.reproducer}


def to_dict(result: Result) -> dict[str, object]:
    journal = result.journal
    return {
        "version": JSON_VERSION, "command": journal.command, "cwd": journal.cwd,
        "journal": journal.path, "operations": len(journal.ops), "models": result.models,
        "states": {"checked": result.checked, "inconsistent": result.inconsistent,
                   "skipped": result.skipped},
        "vulnerabilities": [_vulnerability(v) for v in result.vulnerabilities],
        "flaky": result.flaky, "opaque": result.opaque,
        "timing": {"seconds": round(result.seconds, 3)},
    }


def to_json(result: Result) -> str:
    return json.dumps(to_dict(result), indent=2) + "\n"


def _key(entry: object) -> tuple[object, ...]:
    if not isinstance(entry, dict) or not isinstance(entry.get("ops"), list):
        raise ValueError("a vulnerability without 'ops'")
    return (entry.get("kind"),) + tuple((op.get("op"), op.get("filename"), op.get("line"))
                                        for op in entry["ops"] if isinstance(op, dict))


def load_baseline(path: str) -> set[tuple[object, ...]]:
    """The keys (kind and source lines) of an earlier run's vulnerabilities."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise JournalError(f"cannot read baseline {path}: {e.strerror or e}") from None
    except ValueError:
        raise JournalError(f"baseline {path} is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
        raise JournalError(f"baseline {path} is not the JSON of dynfault powercut")
    try:
        return {_key(entry) for entry in data["vulnerabilities"]}
    except ValueError as e:
        raise JournalError(f"baseline {path}: {e}") from None


def new_since(result: Result, baseline: set[tuple[object, ...]]) -> list[Vulnerability]:
    """The vulnerabilities that the baseline does not have (what the exit status counts)."""
    return [v for v in result.vulnerabilities if v.key not in baseline]
