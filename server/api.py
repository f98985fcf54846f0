"""A small JSON API router that validates bodies with pydantic and describes itself in
OpenAPI 3.1, so the API can be read, and fuzzed, from ``/api/openapi.json``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import CabinetError
from server.web import UNSAFE, error_response, parse_body, parse_id

Handler = Callable[..., Awaitable[Any]]


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] = {}


class ErrorBody(BaseModel):
    error: ErrorDetail


class Ok(BaseModel):
    ok: bool = True


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    summary: str
    statuses: tuple[int, ...]
    response_list: bool = False
    params: list[str] = field(default_factory=list)
    public: bool = False
    busiest: bool = False

    @property
    def documented(self) -> tuple[int, ...]:
        """Every status but 200 this endpoint may answer, as its OpenAPI lists them: its
        own, 403 (CSRF, a role) and 429 (throttles) on any, and on a write 409 (a business
        rule, or a form's key sent for something else: once_per_key) and 413 (a body too
        large, server.web.capped_receive). Listed for every write rather than route by
        route: whether a handler can raise Conflict is decided deep in its action, and a
        route that forgot it answered a status its document did not mention."""
        writes = (409, 413) if self.method in UNSAFE else ()
        return tuple(sorted({*self.statuses, 403, 429, *writes}))


class Api:
    def __init__(self, title: str, mount: str, cookie: str) -> None:
        self.title = title
        self.mount = mount
        # The session cookie, named in the OpenAPI security scheme.
        self.cookie = cookie
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        response_list: bool = False,
        summary: str = "",
        statuses: tuple[int, ...] = (401, 404, 422),
        public: bool = False,
        busiest: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register an endpoint; ``public`` ones (sign-in, reset) need no session;
        ``busiest`` ones are matched before the others (the router tries routes in order)."""

        def decorator(handler: Handler) -> Handler:
            params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
            self.endpoints.append(
                Endpoint(
                    method.upper(),
                    path,
                    handler,
                    body,
                    response,
                    summary or (inspect.getdoc(handler) or "").split("\n")[0],
                    statuses,
                    response_list,
                    params,
                    public,
                    busiest,
                )
            )
            return handler

        return decorator

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for ep in sorted(self.endpoints, key=lambda ep: not ep.busiest):
            by_path.setdefault(ep.path, {})[ep.method] = ep
        routes = [
            Route(path, self._dispatcher(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]
        routes.append(Route("/openapi.json", self._openapi_endpoint, methods=["GET"]))
        return routes

    def _dispatcher(self, methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
        async def dispatch(request: Request) -> Response:
            # Starlette answers HEAD on every GET route: the same endpoint (the server sends
            # no body back for a HEAD).
            ep = methods["GET" if request.method == "HEAD" else request.method]
            try:
                # Ids arrive as text; a malformed or out-of-range one is a 404, never a 500.
                for name in ep.params:
                    request.path_params[name] = parse_id(request.path_params[name])
                args: list[Any] = [request]
                if ep.body is not None:
                    args.append(await parse_body(request, ep.body))
                result = await ep.handler(*args)
            except CabinetError as exc:
                return error_response(request, exc)
            if isinstance(result, Response):
                return result
            if isinstance(result, BaseModel):
                return JSONResponse(result.model_dump(mode="json"))
            if isinstance(result, list):
                return JSONResponse(
                    [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
                )
            return JSONResponse(result)

        return dispatch

    async def _openapi_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.openapi())

    def openapi(self) -> dict[str, Any]:
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        error_ref = ref(ErrorBody)
        paths: dict[str, Any] = {}
        for ep in self.endpoints:
            op: dict[str, Any] = {
                "summary": ep.summary,
                "operationId": f"{ep.method.lower()}_{ep.handler.__name__}",
                "responses": {},
                "security": [] if ep.public else [{"session": []}],
            }
            if ep.params:
                op["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
                    for p in ep.params
                ]
            if ep.body is not None:
                op["requestBody"] = {
                    # A body whose every field has a default may be left out.
                    "required": any(f.is_required() for f in ep.body.model_fields.values()),
                    "content": {"application/json": {"schema": ref(ep.body)}},
                }
            if ep.response is not None:
                schema = ref(ep.response)
                if ep.response_list:
                    schema = {"type": "array", "items": schema}
                op["responses"]["200"] = {
                    "description": "OK",
                    "content": {"application/json": {"schema": schema}},
                }
            else:
                op["responses"]["200"] = {"description": "OK"}
            for status in ep.documented:
                op["responses"][str(status)] = {
                    "description": "Error",
                    "content": {"application/json": {"schema": error_ref}},
                }
            paths.setdefault(self.mount + ep.path, {})[ep.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": "1"},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": self.cookie}
                },
            },
        }
