"""Each profile against the other dialect fails on exactly the committed requirement ids
(docs/cross-dialect.json; ``python -m tests.support.cross_dialect --write`` renews it):
what a server speaking one dialect learns from the other profile is pinned, so a
change that makes a profile say more or less about it is seen."""

from __future__ import annotations

import json

import pytest

from tests.support.cross_dialect import COMMITTED, PAIRS, run


@pytest.mark.slow
@pytest.mark.parametrize(("profile", "dialect"), PAIRS, ids=[f"{p}-on-{d}" for p, d in PAIRS])
def test_a_profile_against_the_other_dialect_fails_the_committed_set(profile: str, dialect: str) -> None:
    committed = {(r["profile"], r["dialect"]): r for r in json.loads(COMMITTED.read_text(encoding="utf-8"))["runs"]}
    expected = committed[(profile, dialect)]
    now = run(profile, dialect)
    assert now["failed"] == expected["failed"], "regenerate with: python -m tests.support.cross_dialect --write"
    assert (now["verdict"], now["exit_code"]) == ("NOT CONFORMANT", 1) == (expected["verdict"], expected["exit_code"])
    assert now["failed"], "a profile against the other dialect fails something"


def test_each_doc_failure_on_studio_is_keyed_to_a_discrepancy_row() -> None:
    """The committed doc-on-studio failures each name the rows of coze-wire.md §5 that
    explain them, and those rows exist in the table."""
    import re

    from conformance.oracle.catalogue import CATALOGUE_PATH

    text = (CATALOGUE_PATH.parent.parent / "spec" / "coze-wire.md").read_text(encoding="utf-8")
    section = text[text.index("## 5. Discrepancies") : text.index("## 6.")]
    rows = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", section, re.MULTILINE)}
    assert rows == set(range(1, 27))
    committed = {(r["profile"], r["dialect"]): r for r in json.loads(COMMITTED.read_text(encoding="utf-8"))["runs"]}
    on_studio = committed[("doc", "studio")]
    assert set(on_studio["coze_wire_rows"]) == set(on_studio["failed"])
    for rid, keyed in on_studio["coze_wire_rows"].items():
        assert keyed and set(keyed) <= rows, f"{rid}: rows {keyed} (regenerate after keying it in STUDIO_ROWS)"
