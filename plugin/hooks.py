"""``DatumflowHook``: the one place Airflow code gets a datumflow client from a connection.

A ``datumflow`` connection names the service (schema ``http``/``https``, host,
port, password = token) or an embedded store (schema ``file``, host = the
store's folder, e.g. a shared volume). Every client call an operator or
sensor makes goes through ``hook.get_conn()`` (a :class:`Client` or a
:class:`Store`, same methods) or ``hook.pipelines()`` (``client.pipelines`` over
HTTP, an in-process ``Pipelines`` over an embedded store: same methods).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Union

from ._compat import AirflowException, BaseHook

if TYPE_CHECKING:
    from datumflow.storage_service.client.http import AsyncClient, Client
    from datumflow.storage_service.client.pipelines import RemotePipelines
    from datumflow.storage_service.pipelines.engine import Pipelines
    from datumflow.storage_service.store.store import Store

__all__ = ["DatumflowHook", "StoreClient"]

# What ``get_conn()`` returns: the service's client or the embedded store (the same methods).
StoreClient = Union["Client", "Store"]


class DatumflowHook(BaseHook):
    """Client of a datumflow service (or embedded store) named by an Airflow connection."""

    conn_name_attr = "datumflow_conn_id"
    default_conn_name = "datumflow_default"
    conn_type = "datumflow"
    hook_name = "datumflow"

    def __init__(self, datumflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datumflow_conn_id = datumflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The FAB connection form (Airflow 2.x); Airflow 3 reads ``ui-field-behaviour`` in the provider info."""
        from .provider_info import UI_FIELD_BEHAVIOUR

        return {k.replace("-", "_"): v for k, v in UI_FIELD_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import StringField
        except ImportError:  # Airflow 3 without the FAB provider: the standard fields suffice
            return {}
        return {"console_url": StringField(lazy_gettext("Console URL"), widget=BS3TextFieldWidget())}

    # -- connection --------------------------------------------------------------

    def use_connection(self, connection: Any) -> None:
        """Use ``connection`` (an Airflow connection, or the fields of one) instead of looking it up."""
        self.__dict__["connection"] = connection
        for name in ("address", "_client", "_pipelines"):
            self.__dict__.pop(name, None)

    async def aresolve(self) -> None:
        """Look the connection up from async code (a trigger), without blocking the event loop."""
        if "connection" in self.__dict__:
            return
        try:
            conn = await self.aget_connection(self.datumflow_conn_id)
        except Exception as exc:
            raise self._undefined() from exc
        self.use_connection(conn)

    def _undefined(self) -> AirflowException:
        return AirflowException(
            f"datumflow connection {self.datumflow_conn_id!r} is not defined: add a connection of type "
            f"'datumflow' with that id (or set AIRFLOW_CONN_{self.datumflow_conn_id.upper()})"
        )

    @cached_property
    def connection(self) -> Any:
        try:
            return self.get_connection(self.datumflow_conn_id)
        except Exception as exc:  # AirflowNotFoundException, or the Task SDK's own error
            raise self._undefined() from exc

    @cached_property
    def address(self) -> str:
        """``http(s)://host:port`` of the service, or ``file:///path`` of an embedded store."""
        conn = self.connection
        extra = self._extra()
        if extra.get("address"):
            return str(extra["address"]).rstrip("/")
        scheme = (conn.schema or "http").lower()
        if scheme == "file":
            path = extra.get("root") or conn.host
            if not path:
                raise AirflowException(f"datumflow connection {self.datumflow_conn_id!r}: scheme file needs a path")
            return "file://" + str(path)
        if scheme not in ("http", "https"):
            raise AirflowException(
                f"datumflow connection {self.datumflow_conn_id!r}: scheme must be http, https or file, not {scheme!r}"
            )
        if not conn.host:
            raise AirflowException(f"datumflow connection {self.datumflow_conn_id!r} has no host")
        port = f":{conn.port}" if conn.port else ""
        return f"{scheme}://{conn.host}{port}"

    def _extra(self) -> dict[str, Any]:
        """The connection's extra; fields the UI stored with Airflow's ``extra__datumflow__`` prefix count too."""
        conn = self.connection
        raw = dict(conn.extra_dejson) if conn.extra else {}
        prefix = f"extra__{self.conn_type}__"
        return {**{k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix) and v}, **{
            k: v for k, v in raw.items() if not k.startswith(prefix) and v not in (None, "")}}

    @property
    def token(self) -> str | None:
        return self.connection.password or None

    @property
    def embedded(self) -> bool:
        return self.address.startswith("file://")

    @property
    def console_url(self) -> str | None:
        """Where the service's web console lives (links point there); None for an embedded store."""
        extra = self._extra()
        if extra.get("console_url"):
            return str(extra["console_url"]).rstrip("/")
        return None if self.embedded else self.address + "/console"

    # -- clients -----------------------------------------------------------------

    def get_conn(self) -> StoreClient:
        return self._client

    @cached_property
    def _client(self) -> StoreClient:
        if self.embedded:
            from datumflow.storage_service.store.store import Store

            return Store(self.address[len("file://"):])
        from datumflow.storage_service.client.http import Client

        return Client(self.address, token=self.token)

    def pipelines(self) -> Pipelines | RemotePipelines:
        """The pipelines engine: in-process over an embedded store, the service's (``client.pipelines``) over HTTP."""
        return self._pipelines

    @cached_property
    def _pipelines(self) -> Pipelines | RemotePipelines:
        from datumflow.storage_service.client.http import Client
        from datumflow.storage_service.pipelines.engine import Pipelines

        conn = self.get_conn()
        return conn.pipelines if isinstance(conn, Client) else Pipelines(conn)

    def async_client(self) -> AsyncClient | EmbeddedAsync:
        """The read and wait calls, awaitable (for triggers and deferrable sensors)."""
        if self.embedded:
            return EmbeddedAsync(self.address)
        from datumflow.storage_service.client.http import AsyncClient

        return AsyncClient(self.address, token=self.token)

    def close(self) -> None:
        if "_client" in self.__dict__:
            self._client.close()
            del self.__dict__["_client"]
            self.__dict__.pop("_pipelines", None)

    def test_connection(self) -> tuple[bool, str]:
        try:
            repos = self.get_conn().list_repos()
        except Exception as exc:
            return False, f"cannot reach datumflow at {self.address}: {exc}"
        return True, f"connected to datumflow at {self.address} ({len(repos)} repos)"


class EmbeddedAsync:
    """The :class:`AsyncClient` calls over an embedded store, each run in a thread."""

    def __init__(self, address: str) -> None:
        from datumflow.storage_service.store.store import Store

        self._store = Store(address[len("file://"):] if address.startswith("file://") else address)

    def __getattr__(self, name: str) -> Any:
        import asyncio

        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        self._store.close()
