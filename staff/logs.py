"""The Logs tab of the client file."""

from __future__ import annotations

from typing import Any

from models.accounts import Practice
from models.clients import Client
from server.access import can_see_clinical
from server.auth.sessions import Caller
from server.i18n import lazy
from server.queries.logs import client_logs
from staff.client_file import Tab, register_tab


async def _load_logs(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    return await client_logs(client, clinical=can_see_clinical(caller, practice))


register_tab(Tab("logs", lazy("Logs"), "staff/file_logs.html", _load_logs, order=70))
