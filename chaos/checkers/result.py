"""The common shape of a checker's answer, so the run report can print them all alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CheckResult", "Verdict", "verdict_of"]

Verdict = Literal["ok", "violation", "unknown"]


@dataclass(frozen=True)
class CheckResult:
    """A checker's verdict with the lines a person needs to believe it.

    "ok" means something was checked and nothing was wrong; "violation" means at least one
    line in ``violations`` names a broken guarantee; "unknown" means the checker could not
    decide (nothing to check, or it ran out of time) — never read "unknown" as "ok".
    """

    name: str
    verdict: Verdict
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def lines(self, *, limit: int = 20) -> list[str]:
        """A short report: the verdict with counts, then up to ``limit`` violation lines."""
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        head = f"{self.name}: {self.verdict.upper()} ({counts})"
        more = len(self.violations) - limit
        tail = [f"  … and {more} more"] if more > 0 else []
        return [head, *(f"  {line}" for line in self.violations[:limit]), *tail]


def verdict_of(violations: list[str], checked: int) -> Verdict:
    """ "violation" if any line, else "ok" if anything was checked, else "unknown"."""
    if violations:
        return "violation"
    return "ok" if checked > 0 else "unknown"
