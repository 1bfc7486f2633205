"""Rewrite tests/golden/*.json from the builders: ``python -m tests.regen_golden``.

Review ``git diff tests/golden`` afterwards: every change there is a change of a request body.
"""

from __future__ import annotations

from tests.engine.test_es_dialect import ES_CASES, ES_GOLDEN_DIR
from tests.engine.test_es_dialect import render as render_es
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
    ES_GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for case in sorted(ES_CASES):  # the Elasticsearch dialect
        path = ES_GOLDEN_DIR / f"{case}.json"
        text = render_es(case)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed += 1
            print(f"wrote {path.relative_to(GOLDEN_DIR.parent.parent)}")
    for path in ES_GOLDEN_DIR.glob("*.json"):
        if path.stem not in ES_CASES:
            path.unlink()
            print(f"removed stale es/{path.name}")
    print(f"{len(CASES) + len(ES_CASES)} cases, {changed} changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
