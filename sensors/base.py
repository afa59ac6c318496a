"""What every datumflow sensor shares: a hook, and deferral to a trigger (poke as the fallback)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from datumflow.plugin._compat import AirflowException, BaseSensorOperator
from datumflow.plugin.hooks import DatumflowHook

__all__ = ["DatumflowBaseSensor"]


class DatumflowBaseSensor(BaseSensorOperator):
    """Deferrable by default: ``execute`` checks once, then defers to ``self.trigger()``.

    With ``deferrable=False`` it pokes: one check of the same trigger per poke.
    """

    template_fields: Sequence[str] = ("datumflow_conn_id",)

    def __init__(self, *, datumflow_conn_id: str = DatumflowHook.default_conn_name, deferrable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datumflow_conn_id = datumflow_conn_id
        self.deferrable = deferrable
        self._event: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> DatumflowHook:
        return DatumflowHook(datumflow_conn_id=self.datumflow_conn_id)

    def trigger(self) -> Any:
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        self.prepare(context)
        if not self.deferrable:
            super().execute(context)
            return self._result(self._event or {})
        if self.poke(context):
            return self._result(self._event or {})
        self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=self._timeout())
        return None

    def _timeout(self) -> Any:
        import datetime as dt

        return dt.timedelta(seconds=self.timeout) if self.timeout else None

    def prepare(self, context: Any) -> None:
        """Resolve anything the trigger needs before the first check (default: nothing)."""

    def poke(self, context: Any) -> bool:
        trigger = self.trigger()
        client = _async_client(trigger)
        payload = asyncio.run(_check_once(trigger, client))
        if payload is None:
            return False
        if payload.get("status") == "error":
            raise AirflowException(f"{self.task_id}: {payload.get('message')}")
        self._event = payload
        return True

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("status") != "success":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        return self._result(event)

    def _result(self, event: dict[str, Any]) -> Any:
        return {k: v for k, v in event.items() if k != "status"}


def _async_client(trigger: Any) -> Any:
    from datumflow.plugin.triggers import async_client

    return async_client(trigger.address, trigger.token)


async def _check_once(trigger: Any, client: Any) -> dict[str, Any] | None:
    from datumflow.storage_service.errors import DatumflowError

    try:
        payload = await trigger.check(client)
    except DatumflowError as exc:
        return {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()
    return None if payload is None else {"status": "success", **payload}
