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
from typing import Any

from ._compat import AirflowException, BaseHook

__all__ = ["DatumflowHook"]


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
        return {
            "hidden_fields": ["login", "extra"],
            "relabeling": {"schema": "Scheme (http, https or file)", "password": "Token"},
            "placeholders": {
                "schema": "http",
                "host": "datumflow.example.com (or /srv/datumflow with scheme file)",
                "port": "8765",
                "password": "the datumflow API token (empty on an open loopback service)",
            },
        }

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

    @cached_property
    def connection(self) -> Any:
        try:
            return self.get_connection(self.datumflow_conn_id)
        except Exception as exc:  # AirflowNotFoundException, or the Task SDK's own error
            raise AirflowException(
                f"datumflow connection {self.datumflow_conn_id!r} is not defined: add a connection of type "
                f"'datumflow' with that id (or set AIRFLOW_CONN_{self.datumflow_conn_id.upper()})"
            ) from exc

    @cached_property
    def address(self) -> str:
        """``http(s)://host:port`` of the service, or ``file:///path`` of an embedded store."""
        conn = self.connection
        extra = conn.extra_dejson if conn.extra else {}
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

    @property
    def token(self) -> str | None:
        return self.connection.password or None

    @property
    def embedded(self) -> bool:
        return self.address.startswith("file://")

    @property
    def console_url(self) -> str | None:
        """Where the service's web console lives (links point there); None for an embedded store."""
        extra = self.connection.extra_dejson if self.connection.extra else {}
        if extra.get("console_url"):
            return str(extra["console_url"]).rstrip("/")
        return None if self.embedded else self.address + "/console"

    # -- clients -----------------------------------------------------------------

    def get_conn(self) -> Any:
        return self._client

    @cached_property
    def _client(self) -> Any:
        import datumflow

        return datumflow.connect(self.address, token=self.token)

    def pipelines(self) -> Any:
        """The pipelines engine: in-process over an embedded store, the service's (``client.pipelines``) over HTTP."""
        return self._pipelines

    @cached_property
    def _pipelines(self) -> Any:
        if not self.embedded:
            return self.get_conn().pipelines
        from datumflow.storage_service.pipelines.engine import Pipelines

        return Pipelines(self.get_conn())

    def trigger_kwargs(self) -> dict[str, Any]:
        """What a trigger needs to reach the same store from the triggerer."""
        return {"address": self.address, "token": self.token}

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
