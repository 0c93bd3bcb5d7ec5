"""What operators and other systems answer a run with: gates, steps that need attention,
dead letters, cancelling and resuming, and steps completed from outside."""

from __future__ import annotations

from typing import Any

from ..core import interventions, reopen
from .base import EngineBase


class Answers(EngineBase):
    # -- people: gates, escalations, dead letters ---------------------------------------------
    def approve(self, run_id: str, gate: str, by: str | None = None) -> None:
        """Let a run past a `wp.gate` that waits; who and when is recorded."""
        self._transact(lambda tx: interventions.decide_gate(
            self._advancer, tx, run_id, gate, True, by, None))

    def reject(self, run_id: str, gate: str, reason: str, by: str | None = None) -> None:
        """Fail a waiting gate: what follows it never runs, and the run fails (then
        compensates)."""
        self._transact(lambda tx: interventions.decide_gate(
            self._advancer, tx, run_id, gate, False, by, reason))

    def retry_step(self, run_id: str, step: str, by: str | None = None) -> None:
        """Answer a step that needs attention (or a failed compensation): try it again."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "retry", by))

    def skip_step(self, run_id: str, step: str, output: Any = None,
                  by: str | None = None) -> None:
        """Answer it by treating it as succeeded with `output`: what follows goes on."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "skip", by, output))

    def fail_step(self, run_id: str, step: str, by: str | None = None) -> None:
        """Answer it by failing it for good (a dead letter; the run fails, then
        compensates)."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "fail", by))

    def replay(self, letter_id: int, input: Any = None, by: str | None = None) -> str:
        """Run a dead letter's step again (with a patched `input`, recorded as such, and
        who replayed it); its run continues from there, as after `resume`. Returns the run
        id."""
        run_id, _ = self._transact(lambda tx: reopen.replay(
            self._advancer, tx, letter_id, input, by))
        return str(run_id)

    # -- whole runs ---------------------------------------------------------------------------
    def resume(self, run_id: str) -> int:
        """Continue a failed run from its failed steps; returns how many were reset."""
        return int(self._transact(lambda tx: reopen.resume(self._advancer, tx, run_id)))

    def cancel(self, run_id: str, reason: str = "cancelled by an operator") -> int:
        """Cancel an unfinished run: running attempts are cancelled (their code sees
        `wp.Cancelled` at its next heartbeat), nothing else starts. Returns how many steps
        were ended."""
        return int(self._transact(
            lambda tx: self._advancer.abort(tx, run_id, "cancelled", "Cancelled", reason)))

    # -- other systems: steps that complete externally ----------------------------------------
    def complete(self, token: str, output: Any = None) -> str:
        """Finish a step that waits for another system (`completes_externally`) with its
        output; a token works once. Returns the run id."""
        return self._external(token, output, None)

    def fail(self, token: str, error: str) -> str:
        """Fail such a step: it is retried per its task's policy (a new attempt, a new
        token) or, out of retries, fails the run."""
        return self._external(token, None, {"type": "ExternalFailure", "message": error,
                                            "traceback": None})

    def _external(self, token: str, output: Any, error: dict[str, Any] | None) -> str:
        return str(self._transact(lambda tx: self._advancer.external(tx, token, output, error)))
