"""Assembles the staff app (/staff) and the staff API (/api), both in the staff realm."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from models.accounts import Realm
from realtime.endpoint import websocket_endpoint
from server.auth.views import AuthPages
from server.web import SessionMiddleware, static_dir
from staff import client_file, clients, messaging, pages, tasks
from staff.api import api


def build_staff_app() -> ASGIApp:
    auth = AuthPages(Realm.STAFF, "/staff")
    routes = [
        Route("/", pages.home),
        *auth.routes(),
        Route("/team", pages.team, methods=["GET", "POST"]),
        Route("/team/{staff_id:int}/{state:str}", pages.set_staff_active, methods=["POST"]),
        Route("/audit", pages.audit_trail),
        Route("/messages", messaging.messaging_page),
        Route("/clients", clients.client_list, methods=["GET", "POST"]),
        Route("/clients/{client_id:int}", client_file.file_page),
        Route("/clients/{client_id:int}/contact", client_file.save_contact, methods=["POST"]),
        Route("/clients/{client_id:int}/clinical", client_file.save_clinical, methods=["POST"]),
        Route("/clients/{client_id:int}/account", client_file.save_account, methods=["POST"]),
        Route("/clients/{client_id:int}/tags", client_file.add_tag, methods=["POST"]),
        Route(
            "/clients/{client_id:int}/payment-methods",
            client_file.add_payment_method,
            methods=["POST"],
        ),
        Route(
            "/clients/{client_id:int}/payment-methods/{method_id:int}/remove",
            client_file.remove_payment_method,
            methods=["POST"],
        ),
        Route("/clients/{client_id:int}/tasks", tasks.add_task_form, methods=["POST"]),
        Route("/clients/{client_id:int}/{tab:str}", client_file.file_page),
        Route("/tasks", tasks.tasks_page),
        Route("/tasks/{task_id:int}/{state:str}", tasks.set_done_form, methods=["POST"]),
        Route("/clients/{client_id:int}/portal/invite", clients.invite, methods=["POST"]),
        Route("/clients/{client_id:int}/portal/{state:str}", clients.set_portal, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
        Mount("/static", StaticFiles(directory=static_dir("staff"))),
    ]
    return SessionMiddleware(Starlette(routes=routes), Realm.STAFF)


def build_staff_api() -> ASGIApp:
    return SessionMiddleware(Starlette(routes=api.routes()), Realm.STAFF)
