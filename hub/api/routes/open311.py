"""Open311 GeoReport v2 under /open311/v2/ (JSON): services.json, services/{code}.json,
requests.json (GET with the standard filters, POST form-encoded with api_key) and
requests/{id}.json. The work is in hub/services/open311.py; errors are the spec's
[{"code", "description"}] list (app.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request

from hub.api.deps import Conn, open311_key, public
from hub.services import open311
from hub.services.open311 import Created, Service, ServiceDefinition, ServiceRequest

router = APIRouter(prefix="/open311/v2", tags=["open311"])


@router.get("/services.json", response_model=list[Service])
def services(jurisdiction_id: str | None = Query(None, max_length=64), _: None = public()) -> list[Service]:
    """Every service (incident category) a request may be filed under."""
    return open311.services()


@router.get("/services/{service_code}.json", response_model=ServiceDefinition)
def service_definition(
    service_code: str, jurisdiction_id: str | None = Query(None, max_length=64), _: None = public()
) -> ServiceDefinition:
    return open311.definition(service_code)


@router.get("/requests.json", response_model=list[ServiceRequest])
def get_requests(
    conn: Conn,
    service_request_id: str | None = Query(None, max_length=2000),
    service_code: str | None = Query(None, max_length=400),
    start_date: str | None = Query(None, max_length=40),
    end_date: str | None = Query(None, max_length=40),
    status: str | None = Query(None, max_length=20),
    jurisdiction_id: str | None = Query(None, max_length=64),
    _: str = open311_key(),
) -> list[ServiceRequest]:
    return open311.get_requests(conn, service_request_id, service_code, start_date, end_date, status)


@router.post("/requests.json", response_model=list[Created])
async def post_request(request: Request, conn: Conn, _: str = open311_key()) -> list[Created]:
    """Form-encoded (application/x-www-form-urlencoded), as the spec says."""
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, max_num_fields=100))
    form.update({k: v for k, v in request.query_params.items() if k not in form})
    return [open311.post_request(conn, form)]


@router.get("/requests/{service_request_id}.json", response_model=list[ServiceRequest])
def get_request(
    service_request_id: str,
    conn: Conn,
    jurisdiction_id: str | None = Query(None, max_length=64),
    _: str = open311_key(),
) -> list[ServiceRequest]:
    """The spec answers a single request as a list of one."""
    return [open311.get_request(conn, service_request_id)]
