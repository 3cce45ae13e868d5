"""Integration: a seeded, minutes-long slice of ``ketch fuzz`` — generated requests against a
real ``ketch up`` and malformed CBOR against a real store — must find nothing: no 5xx, no
hang, no crash, nothing stored by a refused request.  (The full run and its figures: README,
"The front door under fuzzing".)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch.fuzz.run import FINDINGS, run_api, run_store, summary

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


@pytest.mark.timeout(300)
def test_a_seeded_fuzz_slice_finds_nothing(tmp_path: Path) -> None:
    phases = [run_api(tmp_path, 2500, 7, 16, _quiet), run_store(tmp_path, 5000, 7, 16, _quiet)]
    report = summary(phases)
    assert phases[0].requests >= 2000 and phases[1].requests == 5000, report
    for p in phases:
        assert not any(p.counts[k] for k in FINDINGS), report
