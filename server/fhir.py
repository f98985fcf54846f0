"""A client's record as an HL7 FHIR R4 Bundle (type "collection"), built from the export's
``record.json`` (server/export.py) so the two always say the same thing.

Resources: the client as a Patient; alternate contacts and linked accounts as
RelatedPerson; sessions as Appointment; messages as Communication; documents as
DocumentReference, their bytes beside the bundle in the zip (``attachment.url`` is the path
inside it); completed measures (PHQ-9, GAD-7) as QuestionnaireResponse with an Observation
of the total score, coded in LOINC, only when the record holds their answers (the caller may
read clinical details). Invoices are in record.json and as their PDFs, not in the bundle:
the bundle is the clinical record. Clinical details have no resource here:
diagnosis keywords are free words, not coded conditions, and stay in record.json.

Resource ids are UUIDs derived from the practice's address and Cabinet's ids, so two exports
of the same client name the same resources alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from server.instruments import INSTRUMENTS, Instrument

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
# What a linked client is to the patient, in HL7's role codes (ward and "other" have none).
RELATIONSHIP_CODES = {
    "parent": ("PRN", "parent"),
    "child": ("CHILD", "child"),
    "spouse": ("SPS", "spouse"),
    "sibling": ("SIB", "sibling"),
    "guardian": ("GUARD", "guardian"),
}
# Cabinet's attendance as FHIR's appointment status (R4 ValueSet appointmentstatus).
APPOINTMENT_STATUS = {
    "scheduled": "booked",
    "attended": "fulfilled",
    "cancelled_by_client": "cancelled",
    "cancelled_by_practitioner": "cancelled",
    "moved": "cancelled",
    "no_show": "noshow",
}
LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# Each measure's LOINC panel (the questionnaire) and total score codes.
MEASURE_LOINC = {
    "PHQ-9": ("44249-1", "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score"),
    "GAD-7": ("69737-5", "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score"),
}
PHONE_USES = {"home": "home", "work": "work", "mobile": "mobile", "cell": "mobile"}


def clean(value: Any) -> Any:
    """Drop empty values: FHIR allows no empty strings, lists or objects."""
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [clean(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    return value


class Ids:
    def __init__(self, base_url: str, practice_id: int) -> None:
        self.base = f"{base_url.rstrip('/')}/practices/{practice_id}"

    def id(self, kind: str, key: object) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base}/{kind}/{key}"))

    def url(self, kind: str, key: object) -> str:
        return f"urn:uuid:{self.id(kind, key)}"

    def system(self, kind: str) -> str:
        return f"{self.base}/{kind}"


def _name(first: str, middle: str, last: str, use: str = "official") -> dict[str, Any]:
    return {"use": use, "family": last, "given": [first, middle]}


def _telecom(phones: list[dict[str, Any]], emails: list[str | dict[str, Any]]) -> list[Any]:
    points: list[dict[str, Any]] = []
    for p in phones:
        points.append(
            {
                "system": "phone",
                "value": p["number"],
                "use": PHONE_USES.get(p["label"].strip().lower()),
                "rank": 1 if p["is_primary"] else None,
            }
        )
        if p["for_sms"]:
            points.append({"system": "sms", "value": p["number"]})
    for e in emails:
        if isinstance(e, str):
            points.append({"system": "email", "value": e})
        else:
            points.append(
                {"system": "email", "value": e["address"], "rank": 1 if e["is_primary"] else None}
            )
    return points


def _address(a: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "line": [a["line1"], a["line2"]],
            "city": a["city"],
            "postalCode": a["postal_code"],
            "country": a["country"],
        }
    ]


def _patient(record: dict[str, Any], ids: Ids) -> dict[str, Any]:
    c = record["client"]
    account = record["account"]
    names = [_name(c["first_name"], c["middle_name"], c["last_name"])]
    if c["preferred_name"]:
        names.append({"use": "usual", "family": c["last_name"], "given": [c["preferred_name"]]})
    identifiers: list[dict[str, Any]] = [{"system": ids.system("clients"), "value": str(c["id"])}]
    if account["health_id"]:
        identifiers.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": V2_0203,
                            "code": "SB",
                            "display": "Social Beneficiary Identifier",
                        }
                    ]
                },
                "value": account["health_id"],
            }
        )
    return {
        "resourceType": "Patient",
        "id": ids.id("clients", c["id"]),
        "identifier": identifiers,
        "active": c["status"] != "archived",
        "name": names,
        "telecom": _telecom(c["phones"], c["emails"]),
        "birthDate": c["date_of_birth"],
        "address": _address(c["address"]),
        "communication": (
            [
                {
                    "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": c["locale"]}]},
                    "preferred": True,
                }
            ]
            if c["locale"]
            else None
        ),
        "managingOrganization": {"display": record["practice"]["name"]},
    }


def _alternate_contact(
    a: dict[str, Any], patient: dict[str, str], ids: Ids
) -> tuple[str, dict[str, Any]]:
    relationship: dict[str, Any] = {"text": a["relationship"]}
    if a["is_emergency_contact"]:
        relationship_list = [
            relationship,
            {"coding": [{"system": V2_0131, "code": "C", "display": "Emergency Contact"}]},
        ]
    else:
        relationship_list = [relationship]
    return ids.url("alternate-contacts", a["id"]), {
        "resourceType": "RelatedPerson",
        "id": ids.id("alternate-contacts", a["id"]),
        "active": True,
        "patient": patient,
        "relationship": relationship_list,
        "name": [_name(a["first_name"], a["middle_name"], a["last_name"])],
        "telecom": _telecom(a["phones"], [a["email"]] if a["email"] else []),
        "birthDate": a["date_of_birth"],
        "address": _address(a["address"]),
    }


def _linked_account(
    link: dict[str, Any], patient: dict[str, str], ids: Ids
) -> tuple[str, dict[str, Any]]:
    code = RELATIONSHIP_CODES.get(link["relationship"])
    relationship: dict[str, Any] = {"text": link["relationship"]}
    if code:
        relationship["coding"] = [{"system": ROLE_CODE, "code": code[0], "display": code[1]}]
    return ids.url("linked-accounts", link["client_id"]), {
        "resourceType": "RelatedPerson",
        "id": ids.id("linked-accounts", link["client_id"]),
        # The person is a client of the practice too: their own file holds the rest.
        "identifier": [{"system": ids.system("clients"), "value": str(link["client_id"])}],
        "active": True,
        "patient": patient,
        "relationship": [relationship],
        "name": [{"use": "official", "family": link["last_name"], "given": [link["first_name"]]}],
    }


def _minutes(start: str, end: str) -> int | None:
    minutes = int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    return minutes // 60 if minutes >= 60 else None


def _appointment(
    session: dict[str, Any], patient: dict[str, str], ids: Ids
) -> tuple[str, dict[str, Any]]:
    status = APPOINTMENT_STATUS[session["attendance"]]
    participants = [
        {"actor": patient, "status": "accepted"},
        {"actor": {"display": session["practitioner"]["name"]}, "status": "accepted"},
    ]
    if session["location"]:
        participants.append(
            {"actor": {"display": session["location"]["name"]}, "status": "accepted"}
        )
    return ids.url("appointments", session["id"]), {
        "resourceType": "Appointment",
        "id": ids.id("appointments", session["id"]),
        "identifier": [{"system": ids.system("appointments"), "value": str(session["id"])}],
        "status": status,
        # Who cancelled, or that it moved to another date.
        "cancelationReason": (
            {"text": session["attendance"].replace("_", " ")} if status == "cancelled" else None
        ),
        "serviceType": [{"text": session["service"]["name"]}],
        "description": session["service"]["name"],
        "start": session["starts_at"],
        "end": session["ends_at"],
        "minutesDuration": _minutes(session["starts_at"], session["ends_at"]),
        "created": session["booked_at"],
        "participant": participants,
    }


def _communications(
    record: dict[str, Any], patient: dict[str, str], ids: Ids
) -> list[tuple[str, dict[str, Any]]]:
    client_id = record["client"]["id"]
    linked = {link["client_id"] for link in record["circle_of_care"]["linked_accounts"]}
    out = []
    for conversation in record["conversations"]:
        people = {p["id"]: p for p in conversation["participants"]}

        def reference(p: dict[str, Any]) -> dict[str, str]:
            if p["role"] == "client" and p["client_id"] == client_id:
                return patient
            if p["role"] == "linked" and p["client_id"] in linked:
                return {
                    "reference": ids.url("linked-accounts", p["client_id"]),
                    "display": p["name"],
                }
            return {"display": p["name"]}

        for m in conversation["messages"]:
            sender = people[m["sender_participant_id"]]
            # Those in the conversation when the message was sent.
            recipients = [
                reference(p)
                for p in conversation["participants"]
                if p["id"] != sender["id"]
                and datetime.fromisoformat(p["joined_at"]) <= datetime.fromisoformat(m["sent_at"])
            ]
            out.append(
                (
                    ids.url("messages", m["id"]),
                    {
                        "resourceType": "Communication",
                        "id": ids.id("messages", m["id"]),
                        "identifier": [{"system": ids.system("messages"), "value": str(m["id"])}],
                        "status": "completed",
                        "subject": patient,
                        "topic": {"text": conversation["subject"]},
                        "sent": m["sent_at"],
                        "sender": reference(sender),
                        "recipient": recipients,
                        "payload": [{"contentString": m["body"]}],
                    },
                )
            )
    return out


def _document_reference(
    d: dict[str, Any], patient: dict[str, str], ids: Ids
) -> tuple[str, dict[str, Any]]:
    return ids.url("documents", d["id"]), {
        "resourceType": "DocumentReference",
        "id": ids.id("documents", d["id"]),
        "identifier": [{"system": ids.system("documents"), "value": str(d["id"])}],
        "status": "current",
        "subject": patient,
        "date": d["uploaded_at"],
        "author": [{"display": d["uploaded_by"]["name"]}] if d["uploaded_by"] else None,
        "description": d["name"],
        "content": [
            {
                "attachment": {
                    "contentType": d["content_type"],
                    # Where the bytes are inside the export's zip.
                    "url": d["path"],
                    "size": d["size"],
                    "hash": d.get("sha1_base64"),
                    "title": d["name"],
                    "creation": d["uploaded_at"],
                }
            }
        ],
    }


def _measure_resources(
    m: dict[str, Any], patient: dict[str, str], ids: Ids
) -> list[tuple[str, dict[str, Any]]]:
    """A completed measure as its QuestionnaireResponse and the Observation of its score."""
    inst: Instrument = next(i for i in INSTRUMENTS.values() if i.name == m["measure"])
    panel, total_code, total_name = MEASURE_LOINC[inst.name]
    answers: dict[str, int] = m["answers"]
    items = [
        {
            "linkId": str(n),
            "text": str(text),
            "answer": [
                {
                    "valueCoding": {
                        "code": str(answers[str(n)]),
                        "display": str(inst.choices[answers[str(n)]]),
                    }
                }
            ],
        }
        for n, text in enumerate(inst.items, start=1)
        if str(n) in answers
    ]
    if inst.extra is not None and "extra" in answers:
        items.append(
            {
                "linkId": "extra",
                "text": str(inst.extra),
                "answer": [
                    {
                        "valueCoding": {
                            "code": str(answers["extra"]),
                            "display": str(inst.extra_choices[answers["extra"]]),
                        }
                    }
                ],
            }
        )
    response_url = ids.url("measures", m["id"])
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": ids.id("measures", m["id"]),
        "identifier": {"system": ids.system("measures"), "value": str(m["id"])},
        "questionnaire": f"{LOINC}/q/{panel}",
        "status": "completed",
        "subject": patient,
        "authored": m["completed_at"],
        "item": items,
    }
    band = inst.band(m["band"]) if m.get("band") else None
    observation = {
        "resourceType": "Observation",
        "id": ids.id("measure-scores", m["id"]),
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": total_code, "display": total_name}],
            "text": f"{inst.name} total score",
        },
        "subject": patient,
        "effectiveDateTime": m["completed_at"],
        "valueInteger": m["score"],
        "interpretation": [{"text": str(band.label)}] if band else None,
        "derivedFrom": [{"reference": response_url}],
    }
    return [(response_url, response), (ids.url("measure-scores", m["id"]), observation)]


def client_bundle(record: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The FHIR R4 Bundle for an export's record (see server/export.py)."""
    ids = Ids(base_url, record["practice"]["id"])
    patient_url = ids.url("clients", record["client"]["id"])
    patient = {"reference": patient_url, "display": _display_name(record["client"])}
    entries: list[tuple[str, dict[str, Any]]] = [(patient_url, _patient(record, ids))]
    circle = record["circle_of_care"]
    entries += [_alternate_contact(a, patient, ids) for a in circle["alternate_contacts"]]
    entries += [_linked_account(link, patient, ids) for link in circle["linked_accounts"]]
    entries += [_appointment(session, patient, ids) for session in record["sessions"]]
    entries += _communications(record, patient, ids)
    entries += [_document_reference(d, patient, ids) for d in record["documents"]]
    for m in record.get("measures", []):
        # Answers are in the record only for those who may read clinical details.
        if m["status"] == "completed" and m.get("answers") is not None:
            entries += _measure_resources(m, patient, ids)
    return clean(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": datetime.now(UTC).isoformat()},
            "type": "collection",
            "timestamp": datetime.now(UTC).isoformat(),
            "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
        }
    )


def _display_name(c: dict[str, Any]) -> str:
    return f"{c['first_name']} {c['last_name']}"
