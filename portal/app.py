"""Assembles the client portal (/portal) with its API (/portal/api), in the portal realm."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from models.accounts import Realm
from portal import billing, booking, documents, forms, measures, offers, pages
from portal import messaging as _messaging  # noqa: F401 - adds its endpoint to the API
from portal.api import api
from server import feeds
from server.auth.views import AuthPages
from server.web import SERVER_ERRORS, SessionMiddleware, static_dir


def build_portal_api() -> ASGIApp:
    """The portal's JSON API, for the outer app to mount at /portal/api ahead of the portal
    app. A bare router behind the realm's session, as the staff API (staff/app.py): it
    answers its own errors (server/api.py), and what escapes is the outer app's to answer,
    as it would have been the portal app's (the same handlers); one stack of Starlette
    middleware less on every message a client sends. Built here so that the modules that
    add endpoints to ``api`` (measures, documents, forms) are imported first."""
    return SessionMiddleware(Router(routes=api.routes()), Realm.PORTAL)


def build_portal_app() -> ASGIApp:
    """The portal's pages, mounted at /portal (its API is mounted apart: build_portal_api)."""
    auth = AuthPages(Realm.PORTAL, "/portal")
    routes = [
        Route("/", pages.home),
        Route("/messages", pages.messages),
        Route("/documents", documents.documents_page),
        Route("/documents/{document_id:int}", documents.download),
        Route("/measures", measures.measures_page),
        Route("/forms", forms.forms_page),
        Route("/forms/{assignment_id:int}", forms.form_page, methods=["GET", "POST"]),
        Route("/measures/{administration_id:int}", measures.measure_page, methods=["GET", "POST"]),
        Route("/invoices", billing.invoices_page),
        Route("/invoices/{invoice_id:int}.pdf", billing.invoice_pdf_view),
        Route("/receipts/{payment_id:int}.pdf", billing.receipt_view),
        *auth.routes(),
        Route("/invite/{token}", auth.invite, methods=["GET", "POST"]),
        Route("/appointments", booking.appointments_page),
        Route("/reminders", booking.set_reminders, methods=["POST"]),
        Route("/appointments/{appointment_id:int}/cancel", booking.cancel, methods=["POST"]),
        Route(
            "/appointments/{appointment_id:int}/earlier-alert", offers.set_alert, methods=["POST"]
        ),
        Route("/offers/{offer_id:int}", offers.offer_page),
        Route("/offers/{offer_id:int}/accept", offers.accept, methods=["POST"]),
        Route("/offers/{offer_id:int}/decline", offers.decline, methods=["POST"]),
        Route("/book/{practitioner_id:int}", booking.practitioner_page),
        Route("/book/{practitioner_id:int}", booking.book, methods=["POST"]),
        Route("/calendar-feed", feeds.feed_page),
        Route("/calendar-feed/renew", feeds.renew_feed, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static_dir("portal"))),
    ]
    return SessionMiddleware(
        Starlette(routes=routes, exception_handlers=SERVER_ERRORS), Realm.PORTAL
    )
