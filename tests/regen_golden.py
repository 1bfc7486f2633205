"""Rewrite tests/golden/*.json from the builders: ``python -m tests.regen_golden``.

Review ``git diff tests/golden`` afterwards: every change there is a change of a request body.
"""

from __future__ import annotations

from tests.engine.test_queries import CASES, GOLDEN_DIR, golden_path, render


def main() -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    changed = 0
    for case in sorted(CASES):
        path = golden_path(case)
        text = render(case)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed += 1
            print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
    for path in GOLDEN_DIR.glob("*.json"):
        if path.stem not in CASES:
            path.unlink()
            print(f"removed stale {path.name}")
    print(f"{len(CASES)} cases, {changed} changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
