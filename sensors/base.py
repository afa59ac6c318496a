"""What every datumflow sensor shares: a hook, deferral to a trigger, poke as the other mode, a real timeout.

``deferrable`` defaults to Airflow's ``[operators] default_deferrable``. The
sensor's ``timeout`` is enforced by the trigger itself (an absolute deadline
in its arguments), because ``airflow dags test`` runs a trigger in line and
applies no deferral timeout: a sensor for a commit that never comes ends
with :class:`AirflowSensorTimeout` there too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from datumflow.plugin._compat import AirflowException, BaseSensorOperator, default_deferrable
from datumflow.plugin.hooks import DatumflowHook

__all__ = ["DatumflowBaseSensor"]


def _sensor_timeout(message: str) -> AirflowException:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    return AirflowSensorTimeout(message)


class DatumflowBaseSensor(BaseSensorOperator):
    """Defers to ``self.trigger()`` (``deferrable=True``) or pokes it, one check per poke.

    Subclasses build their trigger from ``self.trigger_kwargs()``.
    """

    template_fields: Sequence[str] = ("datumflow_conn_id",)

    def __init__(self, *, datumflow_conn_id: str = DatumflowHook.default_conn_name,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datumflow_conn_id = datumflow_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._event: dict[str, Any] | None = None
        self._deadline: float | None = None

    @cached_property
    def hook(self) -> DatumflowHook:
        return DatumflowHook(datumflow_conn_id=self.datumflow_conn_id)

    def trigger(self) -> Any:
        raise NotImplementedError

    def trigger_kwargs(self) -> dict[str, Any]:
        """The connection id and the deadline every trigger of this sensor gets."""
        return {"datumflow_conn_id": self.datumflow_conn_id, "deadline": self._deadline}

    def execute(self, context: Any) -> Any:
        self.prepare(context)
        if self.timeout and self.timeout != float("inf"):
            self._deadline = time.time() + float(self.timeout)
        if not self.deferrable:
            super().execute(context)
            return self._result(self._event or {})
        if self.poke(context):
            return self._result(self._event or {})
        self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=self._timeout())
        return None

    def _timeout(self) -> Any:
        import datetime as dt

        return dt.timedelta(seconds=self.timeout) if self.timeout and self.timeout != float("inf") else None

    def prepare(self, context: Any) -> None:
        """Resolve anything the trigger needs before the first check (default: nothing)."""

    def poke(self, context: Any) -> bool:
        payload = asyncio.run(_check_once(self.trigger(), self.hook.async_client()))
        if payload is None:
            return False
        if payload.get("status") == "error":
            raise AirflowException(f"{self.task_id}: {payload.get('message')}")
        self._event = payload
        return True

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("status") == "timeout":
            raise _sensor_timeout(f"{self.task_id}: {event.get('message')}")
        if event.get("status") != "success":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        return self._result(event)

    def _result(self, event: dict[str, Any]) -> Any:
        return {k: v for k, v in event.items() if k != "status"}


async def _check_once(trigger: Any, client: Any) -> dict[str, Any] | None:
    from datumflow.storage_service.errors import DatumflowError

    try:
        payload = await trigger.check(client)
    except DatumflowError as exc:
        return {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()
    return None if payload is None else {"status": "success", **payload}
