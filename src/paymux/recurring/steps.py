"""Group commit of recurring runs' steps.

Every step of a run (``due`` -> ``debiting`` with the debit's mark, ``paying`` with the debit's
reference, given back to the queue with the payment's id, a final state with its notice...) is one
fenced write: an ``UPDATE`` of the run that matches only while the step's claim (``lease_owner``,
the fencing token) still holds it. The executors of all the runs in flight in this process
:meth:`StepWriter.record` their steps here and wait; one committer task writes everything queued so
far in ONE transaction and answers each run only after the commit, so a step is durable before its
run goes on (a debit's mark before the debit leaves) and one commit serves every run in flight.

In the transaction, per step in run id order (the order of the row locks on PostgreSQL), the fenced
``UPDATE ... RETURNING``: the token is checked by the statement that records the step. A step whose
claim was taken over writes nothing and is answered False. For the steps that held: a paid run's
count on its subscription (row locked, in subscription id order), then the notices of the steps
(``run.paid``, ``run.failed``, ``debt.confirm``...), so a state change and the notice it causes
commit together. A batch that fails as a whole is written step by step (one bad step cannot fail
the others; see :class:`paymux.db.group_commit.GroupCommitter`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.db.group_commit import GroupCommitter
from paymux.recurring import notices
from paymux.recurring.models import Run, Subscription
from paymux.runtime import Hub


@dataclass(slots=True)
class Step:
    """One fenced write of a run, with what it causes."""

    run_id: int
    owner: str  # the claim's lease (fencing token)
    values: dict[str, Any]  # the run's new column values
    paid: tuple[int, dt.datetime] | None = None  # (subscription id, when): count a paid run
    notice: notices.Notice | None = None  # queued with the step


class StepWriter(GroupCommitter[Step, bool]):
    """Batches the steps of the runs in flight into as few transactions as the database allows."""

    name = "group commit of recurring steps"

    def __init__(self, hub: Hub, max_batch: int = 256) -> None:
        super().__init__(max_batch)
        self.hub = hub

    async def record(self, step: Step) -> bool:
        """Write ``step`` (committed when this returns); False when its claim no longer holds the run
        (nothing written)."""
        return await self.submit(step)

    async def write(self, batch: list[Step]) -> list[bool]:
        held: set[int] = set()  # id() of the steps whose fence held
        async with self.hub.sessions() as session:
            now = utcnow()
            for step in sorted(batch, key=lambda s: s.run_id):
                row = (
                    await session.execute(
                        update(Run)
                        .where(Run.id == step.run_id, Run.lease_owner == step.owner, Run.status == "running")
                        .values(updated_at=now, **step.values)
                        .returning(Run.id)
                    )
                ).first()
                if row is not None:
                    held.add(id(step))
            done = [s for s in batch if id(s) in held]
            for step in sorted((s for s in done if s.paid is not None), key=lambda s: s.paid or (0, now)):
                assert step.paid is not None
                sub_id, at = step.paid
                sub = await locked(session, Subscription, sub_id)
                assert sub is not None
                sub.runs_paid += 1
                sub.last_topup_at = at
                if sub.max_runs is not None and sub.runs_paid >= sub.max_runs and sub.status == "active":
                    sub.status = "finished"
                    sub.status_reason = "max_runs reached"
                    sub.next_due_at = None
            for step in done:
                if step.notice is not None:
                    await notices.emit(session, step.notice)
            await session.commit()
        return [id(s) in held for s in batch]
