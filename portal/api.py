"""The portal JSON API, mounted at /portal/api."""

from __future__ import annotations

from models.accounts import Realm
from server.api import Api
from server.auth.api import add_auth_endpoints
from server.auth.sessions import COOKIE_NAMES
from server.billing_api import add_billing_endpoints
from server.messaging_api import add_messaging_endpoints

api = Api("Cabinet client portal API", "/portal/api", COOKIE_NAMES[Realm.PORTAL])
add_auth_endpoints(api, Realm.PORTAL)
add_messaging_endpoints(api)
add_billing_endpoints(api, "portal")
