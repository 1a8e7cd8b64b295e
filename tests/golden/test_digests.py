"""Golden digests (issue 22): the bytes of representative outputs of every medium are pinned.

A refactor keeps every digest; a change that must alter bytes says why in its commit and
rewrites ``digests.json`` (``python -m tests.golden.cases``) in the same commit. The digests
were made at 60e9386 and re-checked there (same bytes) before anything moved.

The float-heavy model cases (GPTQ's Hessian products and factor, AWQ's search, the sensitivity
pass) end in other last bits where MKL and PyTorch take other code paths: on an AMD EPYC the
pinned Intel Xeon digests of three cases differ, at the same commit. Such a case also lists its
digest there (``elsewhere``, made by ``python -m tests.golden.cases --elsewhere LABEL``); the
check accepts the bytes of any environment listed, so a change that alters bytes fails on each.
A case whose bytes change on purpose is re-pinned on the machine that made the change
(``python -m tests.golden.cases NAME``), its other environments' digests dropped until they are
recorded there again: the plain default and the mixed RTN folder (symmetric groups of 32 and the
IQ4_NL codebook among their grids) were re-pinned on an AMD EPYC (Zen 4, MKL 2024.2) on
2026-12-07; their Intel Xeon digests are to be recorded with ``--elsewhere`` on such a machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.cases import CASES, compute

PINNED = json.loads((Path(__file__).parent / "digests.json").read_text())


def test_every_case_is_pinned_and_labelled():
    assert set(PINNED) == set(CASES)
    assert all(PINNED[n]["covers"] == CASES[n][0] for n in CASES)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("golden")


@pytest.mark.parametrize("name", list(CASES))
def test_output_bytes_are_unchanged(name, scratch):
    known = {PINNED[name]["sha256"], *PINNED[name].get("elsewhere", {}).values()}
    assert compute(scratch, [name])[name] in known, (
        f"{name} ({CASES[name][0]}) changed its bytes: if that is intended, say why in the commit "
        "and run python -m tests.golden.cases")
