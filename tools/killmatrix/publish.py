"""docs/kill-matrix.json and docs/kill-matrix.md: deterministic, sorted, no times."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tools.killmatrix.judge import FaultRow, Matrix
from tools.killmatrix.plan import COLLATERAL_LIMIT, FORMAT_VERSION, GENERATED, PROFILES, SAMPLE_SHARE, shard_count


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def fault_entry(f: FaultRow) -> dict[str, Any]:
    """A fault's row of docs/kill-matrix.json (everything its one run decides)."""
    return {
        "name": f.name,
        "profile": f.profile,
        "requirement": f.requirement,
        "level": f.level,
        "strict": f.strict,
        "killed": f.killed,
        "outcome": f.outcome,
        "killing_tests": list(f.killing_tests),
        "collateral": list(f.collateral),
        "collateral_reason": f.collateral_reason,
        "run_ok": f.run_ok,
    }


def profile_section(matrix: Matrix, factors: Sequence[Any] = (), fingerprint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One profile's section of docs/kill-matrix.json: sorted, no times, no ports, no
    free text from a run. ``factors``: what the profile's generated variants were
    derived from (tools/killmatrix/derived.py; the doc profile's alone). ``fingerprint``:
    of the inputs the runs were made with (tools/killmatrix/fingerprint.py)."""
    by_req: dict[str, list[FaultRow]] = {}
    for f in matrix.faults:
        by_req.setdefault(f.requirement, []).append(f)
    return {
        "profile": matrix.profile,
        **({"fingerprint": dict(fingerprint)} if fingerprint is not None else {}),
        "summary": {
            "faults": len(matrix.faults),
            "killed": matrix.killed,
            "recall": _percent(matrix.killed, len(matrix.faults)),
            "precision_servers": len(matrix.precision),
            "precision_passed": matrix.passing,
            "precision": _percent(matrix.passing, len(matrix.precision)),
            "requirements": len(matrix.requirements),
            "tests": len(matrix.tests),
            "unkilled_tests": len(matrix.unkilled_tests),
            "unfaulted_requirements": len(matrix.unfaulted),
            "holds": matrix.holds,
        },
        "requirements": [
            {"id": rid, "level": level, "faults": [{"name": f.name, "killed": f.killed} for f in by_req.get(rid, [])]}
            for rid, level in matrix.requirements
        ],
        "faults": [fault_entry(f) for f in matrix.faults],
        "precision": [
            {
                "name": p.name,
                "profile": p.profile,
                "kind": p.kind,
                "server": p.server,
                "reading": p.reading,
                "description": p.description,
                "declares": list(p.declares),
                "default_fail": list(p.default_fail),
                "default_warn": list(p.default_warn),
                "strict_fail": list(p.strict_fail),
                "run_ok": p.run_ok,
                "passed": p.passed,
            }
            for p in matrix.precision
        ],
        "unkilled_tests": list(matrix.unkilled_tests),
        "unfaulted_requirements": list(matrix.unfaulted),
        "generated": {
            "variants": sum(1 for p in matrix.precision if p.reading == GENERATED),
            "factors": [
                {
                    "name": f.name,
                    "source": f.source,
                    "levels": [level.label for level in f.levels],
                    "declares": sorted({rid for level in f.levels for rid in level.declares}),
                }
                for f in factors
            ],
        },
    }


def matrix_document(
    matrices: Mapping[str, Matrix],
    factors: Mapping[str, Sequence[Any]] | None = None,
    fingerprints: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """docs/kill-matrix.json: one section per judged profile, in PROFILES order -- the
    same from every fresh run of the same code. ``factors``: per profile, what its
    generated variants were derived from; ``fingerprints``: per profile, of its inputs."""
    return document_of(
        {p: profile_section(m, (factors or {}).get(p, ()), (fingerprints or {}).get(p)) for p, m in matrices.items()}
    )


def document_of(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document holding these profile sections (in PROFILES order)."""
    return {
        "format_version": FORMAT_VERSION,
        "command": "python -m tools.killmatrix --write",
        "profiles": [dict(sections[p]) for p in PROFILES if p in sections],
    }


def merge_sections(fresh: Mapping[str, Any], committed: Mapping[str, Any] | None) -> dict[str, Any]:
    """``fresh``'s sections, and the committed document's sections of every other
    profile (a ``--profile`` run publishes its profiles and keeps the others as they
    are). A committed document of another format version contributes nothing."""
    sections: dict[str, Mapping[str, Any]] = {}
    if committed is not None and committed.get("format_version") == FORMAT_VERSION:
        sections.update({s["profile"]: s for s in committed.get("profiles", ())})
    sections.update({s["profile"]: s for s in fresh["profiles"]})
    return document_of(sections)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids) or "—"


_PROFILE_SERVERS = {
    "doc": "once per fault of the reference server (`conformance/reference/faults/`) and once per legal wire"
    " variant (`conformance/reference/variants.py`, and the generated ones of `tools/killmatrix/derived.py`),"
    " each against a fresh server, plus the clean reference server and the independent server"
    " (`tests/independent/server.py`)",
    "coze": "with `--profile coze`, once per coze fault of the reference server (`conformance/reference/faults/coze.py`)"
    " and once per named variant whose knobs the coze dialect honours, each against a fresh reference server"
    " speaking the coze dialect (`ServerConfig(dialect=\"coze\")`), plus the clean one and the independent"
    " server's coze dialect (`tests/independent/coze_dialect.py`)",
}


def render_markdown(doc: Mapping[str, Any]) -> str:
    """docs/kill-matrix.md, from the JSON document alone (so the two never disagree)."""
    sections = doc["profiles"]
    out = [
        "# Kill matrix",
        "",
        "<!-- Generated by `python -m tools.killmatrix --write` (one profile: `--write --profile P`). Do not edit. -->",
        "",
        "The conformance suite, run against broken and against legal servers, profile by profile"
        f" ({', '.join('`' + s['profile'] + '`' for s in sections)}); each profile is judged against its own"
        " catalogue (`conformance/oracle/catalogue.toml`, the requirements of that profile). A fault is **killed**"
        " only when the requirement it declares FAILs through a check attributed to that id (MUST faults in a"
        " default run, SHOULD faults under `--strict`); failures of other requirements are its *collateral*"
        f" (more than {COLLATERAL_LIMIT} need a written reason). How it runs: `tools/killmatrix/`.",
        "",
        *_check_paragraph(),
        "",
        "## Summary",
        "",
        "| Profile | Recall | Precision | Requirements without a fault | Tests failed by no fault | Holds |",
        "|---|---|---|---|---|---|",
    ]
    for section in sections:
        s = section["summary"]
        out.append(
            f"| `{section['profile']}` | {s['killed']} of {s['faults']} ({s['recall']})"
            f" | {s['precision_passed']} of {s['precision_servers']} ({s['precision']})"
            f" | {s['unfaulted_requirements']} of {s['requirements']} | {s['unkilled_tests']} of {s['tests']}"
            f" | {'✅' if s['holds'] else '❌'} |"
        )
    for section in sections:
        out += ["", *_render_profile(section)]
    return "\n".join(out) + "\n"


def _check_paragraph() -> list[str]:
    shards = shard_count(SAMPLE_SHARE)
    return [
        "**What CI checks.** `.ci/run` runs `python -m tools.killmatrix --check`, which does not repeat every run"
        " below (the whole matrix takes about 20 minutes on a 2-core machine). First the *fingerprint*: each"
        " profile's section of the JSON records a sha256 of every input that can change one of its runs' outcomes"
        " -- `conformance/` (checks, catalogue, profiles, reference server, faults, variants), `schemas/`,"
        " `tests/independent/`, `tools/killmatrix/`, `pyproject.toml` and `conftest.py`, the profile's plan and"
        " options, the Python version (not docs, not the installed libraries' versions). When the code's"
        " fingerprint differs, the page is stale and the check fails, naming the profile and"
        " `python -m tools.killmatrix --write --profile P`. Then a *sample*, every run of which must reproduce"
        " its row here exactly: the default run of every server that must pass, in every profile (a false FAIL"
        f" on a legal server is the worse bug), and one shard of {shards} of the other runs (every fault's and"
        " every `--strict` precision run), the shard chosen by the number of commits up to HEAD, so that any"
        f" {shards} successive commits re-run the whole matrix. What the sample does not repeat, the fingerprint"
        " vouches for: the same inputs. `--check --full` re-runs everything; `--sample-seed` and"
        " `--sample-share` choose another sample.",
    ]


def _render_profile(doc: Mapping[str, Any]) -> list[str]:
    """One profile's section of docs/kill-matrix.md."""
    s = doc["summary"]
    profile = doc["profile"]
    generated = doc.get("generated", {"variants": 0, "factors": []})
    out = [
        f"## Profile `{profile}`",
        "",
        f"The conformance suite (profile `{profile}`), run {_PROFILE_SERVERS.get(profile, 'against the servers below')}.",
        "",
        "### Summary",
        "",
        f"- **Recall**: {s['killed']} of {s['faults']} faults killed ({s['recall']}).",
        f"- **Precision**: {s['precision_passed']} of {s['precision_servers']} servers that must pass do"
        f" ({s['precision']}): the clean reference server, the {'named and the generated' if generated['variants'] else 'named'}"
        " variants and the independent server.",
        f"- Requirements (MUST and SHOULD of the profile): {s['requirements']}; without a fault:"
        f" {s['unfaulted_requirements']}.",
        f"- Conformance tests: {s['tests']}; failed by no fault: {s['unkilled_tests']}.",
        f"- The matrix of the profile {'holds' if s['holds'] else '**does not hold**'}.",
        *([f"- Inputs fingerprint (sha256): `{doc['fingerprint']['sha256']}`."] if "fingerprint" in doc else []),
        "",
        "### Requirements × faults",
        "",
        "✅ killed, ❌ not killed.",
        "",
        "| Requirement | Level | Faults |",
        "|---|---|---|",
    ]
    for r in doc["requirements"]:
        faults = " · ".join(f"{'✅' if f['killed'] else '❌'} `{f['name']}`" for f in r["faults"]) or "**none**"
        out.append(f"| {r['id']} | {r['level']} | {faults} |")
    out += [
        "",
        "### Faults",
        "",
        "*Run*: the suite's mode. *Killing tests*: tests in which the declared requirement FAILed.",
        "",
        "| Fault | Requirement | Run | Killed | Killing tests | Collateral |",
        "|---|---|---|---|---|---|",
    ]
    reasons = []
    for f in doc["faults"]:
        collateral = _ids(f["collateral"])
        if f["collateral_reason"] and len(f["collateral"]) > COLLATERAL_LIMIT:
            reasons.append(f)
            collateral += " (reason below)"
        killed = "✅" if f["killed"] else f"❌ ({f['outcome']})"
        if not f["run_ok"]:
            killed += " — the run went wrong"
        mode = "`--strict`" if f["strict"] else "default"
        out.append(
            f"| `{f['name']}` | {f['requirement']} ({f['level']}) | {mode} | {killed} | {len(f['killing_tests'])}"
            f" | {_cell(collateral)} |"
        )
    if reasons:
        out += ["", "#### Collateral reasons", ""]
        out += [f"- `{f['name']}`: {_cell(f['collateral_reason'])}" for f in reasons]
    out += [
        "",
        "### Precision: servers that must pass",
        "",
        "Clean and `preferred`: zero FAIL and zero WARN, by default and under `--strict`. `alternate`: zero FAIL by"
        " default, and under `--strict` exactly the declared SHOULD requirements fail.",
        "",
        "| Server | Kind | READING row | Declares | FAIL / WARN by default | FAIL under `--strict` | Passes | What it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in doc["precision"]:
        verdict = "✅" if p["passed"] else "❌" + ("" if p["run_ok"] else " — the run went wrong")
        out.append(
            f"| `{p['name']}` | {p['kind']} | {_cell(p['reading'] or '—')} | {_ids(p['declares'])}"
            f" | {_ids(p['default_fail'])} / {_ids(p['default_warn'])} | {_ids(p['strict_fail'])} | {verdict}"
            f" | {_cell(p['description'])} |"
        )
    factors = generated["factors"]
    if generated["variants"] or factors:
        out += [
            "",
            "### Generated variants",
            "",
            f"{generated['variants']} of the servers above (`pairwise_NN`) are generated, not listed"
            " (`tools/killmatrix/derived.py`): each combines one form of every one of"
            f" {len(factors)} factors, so that every pair of forms of every two factors meets in at least one server"
            " (pairwise). The factors come from the data the checks read, not from a list of variants:"
            f" {sum(1 for f in factors if f['source'].startswith('READING') and ' schema ' not in f['source'] and 'profile' not in f['source'])}"
            " from the READING rows' readings (each server knob a named variant sets alone, with every value the named"
            f" variants give it), {sum(1 for f in factors if 'profile [[conversation.form]]' in f['source'])} from the"
            " profile's conversation forms (each honoured or ignored, never all ignored), and"
            f" {sum(1 for f in factors if ' schema ' in f['source'])} from the response and event schemas (a field"
            " the schema does not require sent absent and `null`; a field with no constraint also as a string, an array"
            " and an object; an id of two JSON types in the other). A generated server passes by default and under"
            " `--strict` fails exactly the SHOULD requirements its forms declare.",
            "",
            "| Factor | Forms (the first is the reference's own) | Declares | Source |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {_cell(f['name'])} | {_cell(' · '.join(f['levels']))} | {_ids(f['declares'])} | {_cell(f['source'])} |"
            for f in factors
        ]
    out += ["", "### Conformance tests no fault fails", ""]
    out += [f"- `{n}`" for n in doc["unkilled_tests"]] or ["None."]
    out += ["", "### Requirements without a fault", ""]
    out += [f"- {rid}" for rid in doc["unfaulted_requirements"]] or ["None."]
    return out


def document_text(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
