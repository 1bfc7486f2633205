"""Relational looks tables (outfit_id,item_id) read as looks."""

from __future__ import annotations

from pathlib import Path

from engine.looks.format import Look, LookError, iter_looks, load_looks


def test_relational_table(tmp_path: Path) -> None:
    path = tmp_path / "outfits.csv"
    path.write_text(
        '"cod_outfit","cod_modelo_color"\n1,"A"\n1,"B"\n2,"C"\n1,"A"\n,"D"\n2,"E"\n3\n',
        encoding="utf-8",
    )
    rows = list(iter_looks(path))
    looks = [r for r in rows if isinstance(r, Look)]
    errors = [r for r in rows if isinstance(r, LookError)]
    assert [(lk.look_id, lk.item_ids) for lk in looks] == [("1", ["A", "B"]), ("2", ["C", "E"])]
    assert [e.line for e in errors] == [6, 8]
    assert load_looks(path)[0].items[0].slot is None  # slots come from the catalog


def test_columns_found_by_name(tmp_path: Path) -> None:
    path = tmp_path / "looks.tsv"
    path.write_text("item_id\tnote\tlook_id\nX\tn\tL1\nY\tn\tL1\n", encoding="utf-8")
    looks = load_looks(path)
    assert [(lk.look_id, lk.item_ids) for lk in looks] == [("L1", ["X", "Y"])]
