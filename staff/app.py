"""Assembles the staff app (/staff) and the staff API (/api), both in the staff realm."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from models.accounts import Realm
from server import feeds
from server.auth.views import AuthPages
from server.web import SERVER_ERRORS, SessionMiddleware, static_dir
from staff import (
    agenda,
    agenda_setup,
    billing,
    circle,
    client_file,
    clients,
    contacts,
    documents,
    export,
    forms,
    logs,  # noqa: F401 - importing it registers the file's Logs tab
    measures,
    messaging,
    notes,
    offers,
    pages,
    practice,
    reminders,
    sessions,
    tasks,
)
from staff.api import api

SETUP_ROUTES = [
    Route("/setup", agenda_setup.setup_home),
    Route("/setup/categories", agenda_setup.categories_page, methods=["GET", "POST"]),
    Route("/setup/categories/{category_id:int}", agenda_setup.category_form, methods=["POST"]),
    Route("/setup/services", agenda_setup.services_page, methods=["GET", "POST"]),
    Route("/setup/services/{service_id:int}", agenda_setup.service_form, methods=["POST"]),
    Route("/setup/locations", agenda_setup.locations_page, methods=["GET", "POST"]),
    Route("/setup/locations/{location_id:int}", agenda_setup.location_form, methods=["POST"]),
    Route("/setup/availability", agenda_setup.availability_page, methods=["GET", "POST"]),
    Route(
        "/setup/availability/{availability_id:int}/location",
        agenda_setup.availability_location_form,
        methods=["POST"],
    ),
    Route(
        "/setup/availability/{availability_id:int}/remove",
        agenda_setup.remove_availability_form,
        methods=["POST"],
    ),
    Route("/setup/time-off", agenda_setup.time_off_page, methods=["GET", "POST"]),
    Route(
        "/setup/time-off/{time_off_id:int}/remove",
        agenda_setup.remove_time_off_form,
        methods=["POST"],
    ),
]


def build_staff_app() -> ASGIApp:
    auth = AuthPages(Realm.STAFF, "/staff")
    routes = [
        Route("/", pages.home),
        *auth.routes(),
        Route("/team", pages.team, methods=["GET", "POST"]),
        Route("/team/{staff_id:int}", pages.edit_staff, methods=["POST"]),
        Route("/team/{staff_id:int}/{state:str}", pages.set_staff_active, methods=["POST"]),
        Route("/audit", pages.audit_trail),
        Route("/practice", practice.settings_page, methods=["GET", "POST"]),
        Route("/practice/fill-rate", offers.fill_rate_page),
        *reminders.routes,
        Route("/messages", messaging.messaging_page),
        Route("/agenda", agenda.agenda_page),
        Route("/clients", clients.client_list, methods=["GET", "POST"]),
        # Before the file's /clients/{id}/{tab} catch-all (its statement page, its forms).
        *billing.routes,
        *contacts.routes,
        Route("/clients/{client_id:int}", client_file.file_page),
        Route("/clients/{client_id:int}/contact", client_file.save_contact, methods=["POST"]),
        Route("/clients/{client_id:int}/therapist", client_file.save_therapist, methods=["POST"]),
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
        Route("/clients/{client_id:int}/discounts", client_file.set_discount, methods=["POST"]),
        Route(
            "/clients/{client_id:int}/discounts/{discount_id:int}/remove",
            client_file.remove_discount,
            methods=["POST"],
        ),
        Route("/clients/{client_id:int}/tasks", tasks.add_task_form, methods=["POST"]),
        Route("/clients/{client_id:int}/documents", documents.upload_form, methods=["POST"]),
        Route("/clients/{client_id:int}/documents/{document_id:int}", documents.download),
        Route(
            "/clients/{client_id:int}/documents/{document_id:int}/{change:str}",
            documents.change_form,
            methods=["POST"],
        ),
        Route("/clients/{client_id:int}/export", export.export_page),
        *measures.routes,
        *forms.routes,
        *circle.routes,
        Route("/clients/{client_id:int}/sessions", sessions.sessions_tab),
        Route(
            "/clients/{client_id:int}/sessions/{appointment_id:int}/attendance",
            sessions.set_attendance,
            methods=["POST"],
        ),
        Route("/clients/{client_id:int}/{tab:str}", client_file.file_page),
        Route("/tasks", tasks.tasks_page),
        Route("/tasks/{task_id:int}/{state:str}", tasks.set_done_form, methods=["POST"]),
        Route("/clients/{client_id:int}/portal/invite", clients.invite, methods=["POST"]),
        Route("/clients/{client_id:int}/portal/{state:str}", clients.set_portal, methods=["POST"]),
        *SETUP_ROUTES,
        Route("/appointments/{appointment_id:int}/note", notes.note_page),
        Route("/appointments/{appointment_id:int}/note", notes.save_form, methods=["POST"]),
        Route(
            "/appointments/{appointment_id:int}/note/addenda",
            notes.addendum_form,
            methods=["POST"],
        ),
        Route(
            "/appointments/{appointment_id:int}/note/cosign", notes.cosign_form, methods=["POST"]
        ),
        Route("/calendar-feed", feeds.feed_page),
        Route("/calendar-feed/renew", feeds.renew_feed, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static_dir("staff"))),
    ]
    return SessionMiddleware(
        Starlette(routes=routes, exception_handlers=SERVER_ERRORS), Realm.STAFF
    )


def build_staff_api() -> ASGIApp:
    # A bare router, not a Starlette app: the API answers its own errors (server/api.py),
    # and what escapes is the outer app's to answer (server_error, 404, 405), as it would
    # have been its own app's; one stack of middleware less on every message sent.
    return SessionMiddleware(Router(routes=api.routes()), Realm.STAFF)
