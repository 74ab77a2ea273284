"""The kiosk's only way to the hub: an async HTTP client with timeouts and plain errors."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

log = logging.getLogger(__name__)

# A touch screen that waits longer than this feels broken; better to say "slow" and retry.
DEFAULT_TIMEOUT_S: Final = 5.0
# Connecting to a hub on the store LAN is near-instant; a long connect means it is down.
CONNECT_TIMEOUT_S: Final = 3.0
# The hub names its refusals with these statuses (hub/services/errors.py).
_UNAUTHORIZED, _INVALID, _RATE_LIMITED = 401, 422, 429
_SERVER_ERROR_FLOOR = 500
# The hub's error codes for the customer's own actions -> what the kiosk tells them.
_CODE_KEYS: Final = {
    "not_at_kiosk": "hold_again",
    "handset_incompatible": "trial_handset",
    "no_consent": "trial_consent",
    "already_subscribed": "trial_already",
    "already_trialled": "trial_already",
    "trial_active": "trial_already",
    "already_converted": "trial_kept_already",
    "service_inactive": "refused",
    "order_not_found": "order_not_found",
    "not_for_pickup": "order_not_pickup",
    "not_ready": "order_not_ready",
    "already_collected": "order_collected",
}
# The header that carries the customer's phone session to the kiosk endpoints.
CUSTOMER_SESSION_HEADER: Final = "X-Customer-Session"


class HubError(Exception):
    """Something went wrong talking to the hub; ``message_key`` is the i18n key to show."""

    message_key = "refused"


class HubUnavailable(HubError):
    """The hub did not answer: down, unreachable, or too slow."""

    message_key = "hub_down"

    def __init__(self, message: str, *, slow: bool = False) -> None:
        """Remember whether it was a timeout (slow) or no connection at all (down)."""
        super().__init__(message)
        self.slow = slow
        if slow:
            self.message_key = "hub_slow"


class HubRefused(HubError):
    """The hub answered with a refusal; the key says what to tell the customer."""

    def __init__(self, status: int, code: str | None) -> None:
        """Map the hub's status (and its error code) to a plain-language message key."""
        super().__init__(f"hub refused with {status} ({code or 'no code'})")
        self.status = status
        self.code = code
        if code in _CODE_KEYS:
            self.message_key = _CODE_KEYS[code]
        elif code == "invalid_phone":
            self.message_key = "bad_phone"
        elif status == _UNAUTHORIZED or (status == _INVALID and code != "invalid_phone"):
            self.message_key = "bad_code"
        elif status == _RATE_LIMITED:
            self.message_key = "too_many"


@dataclass(frozen=True)
class PhoneSession:
    """A customer's phone session the kiosk holds in memory only while they stand here."""

    # Kept out of repr so no log line or worker description can ever show it.
    token: str = field(repr=False)
    customer_id: str = field(repr=False)


class KioskClient:
    """Calls the hub with the kiosk's API key; every failure becomes a ``HubError``."""

    def __init__(self, hub_url: str, store_id: str, api_key: str,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Prepare (but do not open) a connection pool to ``hub_url``."""
        self.store_id = store_id
        self.kiosk_id = f"kiosk-{uuid.uuid4().hex[:8]}"
        self._http = httpx.AsyncClient(
            base_url=hub_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, token: str | None = None,
                    json: Any = None, customer: PhoneSession | None = None) -> Any:
        """One request; JSON body back, or HubUnavailable / HubRefused.

        ``token`` replaces the kiosk key (the customer's own endpoints); ``customer`` adds
        the customer's session to a kiosk call as proof that they are at the kiosk.
        """
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if customer is not None:
            headers[CUSTOMER_SESSION_HEADER] = customer.token
        try:
            resp = await self._http.request(method, path, json=json, headers=headers or None)
        except httpx.TimeoutException as exc:
            log.warning("hub timed out on %s %s", method, path.split("/")[2:3])
            raise HubUnavailable("the hub is too slow", slow=True) from exc
        except httpx.HTTPError as exc:
            log.warning("hub unreachable: %s", type(exc).__name__)
            raise HubUnavailable("the hub is unreachable") from exc
        if resp.status_code >= _SERVER_ERROR_FLOOR:
            log.warning("hub error %s", resp.status_code)
            raise HubUnavailable(f"the hub failed with {resp.status_code}")
        if resp.status_code >= httpx.codes.BAD_REQUEST:
            raise HubRefused(resp.status_code, _error_code(resp))
        return resp.json() if resp.content else None

    async def health(self) -> None:
        """Raise HubUnavailable unless the hub answers its health check."""
        await self._call("GET", "/healthz")

    async def store(self) -> dict[str, Any]:
        """This kiosk's store profile (name, hours)."""
        return dict(await self._call("GET", f"/v1/stores/{self.store_id}"))

    async def presence(self) -> list[dict[str, Any]]:
        """Customers whose phone token a node of this store heard in the last minutes."""
        return list(await self._call("GET", f"/v1/stores/{self.store_id}/presence"))

    async def request_code(self, phone: str) -> None:
        """Ask the hub to text a one-time code to ``phone``."""
        try:
            await self._call("POST", "/v1/phone/otp", json={"phone": phone})
        except HubRefused as exc:
            if exc.status == _INVALID:  # the only thing to get wrong here is the number
                exc.message_key = "bad_phone"
            raise

    async def open_session(self, phone: str, code: str) -> PhoneSession:
        """Exchange the texted code for the customer's phone session."""
        body = {"phone": phone, "code": code, "device_id": self.kiosk_id}
        got = await self._call("POST", "/v1/phone/session", json=body)
        return PhoneSession(token=got["token"], customer_id=got["customer_id"])

    async def close_session(self, session: PhoneSession) -> None:
        """Revoke the customer's session when they leave the kiosk."""
        await self._call("DELETE", "/v1/phone/session", token=session.token)

    def _at_kiosk(self, customer_id: str) -> str:
        """The path of the customer at this kiosk."""
        return f"/v1/stores/{self.store_id}/kiosk/customers/{customer_id}"

    async def wallet(self, customer_id: str, session: PhoneSession | None) -> dict[str, Any]:
        """Points balance and coupons (needs the session, or the phone heard here just now)."""
        path = f"{self._at_kiosk(customer_id)}/wallet"
        return dict(await self._call("GET", path, customer=session))

    async def service_standing(self, customer_id: str,
                               session: PhoneSession | None) -> list[dict[str, Any]]:
        """Per service: available, trial (with its id and end), trial_ended or subscribed."""
        path = f"{self._at_kiosk(customer_id)}/services"
        return list(await self._call("GET", path, customer=session))

    async def start_trial(self, customer_id: str, session: PhoneSession | None,
                          service_id: str, handset: list[str], consent_sms: bool
                          ) -> dict[str, Any]:
        """Start the customer's free trial of ``service_id``; the hub checks eligibility."""
        body = {"customer_id": customer_id, "service_id": service_id, "handset": handset,
                "consent_sms": consent_sms}
        path = f"/v1/stores/{self.store_id}/kiosk/trials"
        return dict(await self._call("POST", path, json=body, customer=session))

    async def convert_trial(self, customer_id: str, session: PhoneSession | None,
                            trial_id: str) -> dict[str, Any]:
        """Keep the trial service, paid from now."""
        path = f"/v1/stores/{self.store_id}/kiosk/trials/{trial_id}/convert"
        return dict(await self._call("POST", path, json={"customer_id": customer_id},
                                     customer=session))

    async def pick_up(self, customer_id: str, session: PhoneSession | None,
                      order_code: str) -> dict[str, Any]:
        """Check in for an online order ready at this store, by its order code."""
        body = {"customer_id": customer_id, "order_code": order_code}
        path = f"/v1/stores/{self.store_id}/kiosk/pickups"
        return dict(await self._call("POST", path, json=body, customer=session))

    def new_request_id(self) -> str:
        """A fresh id for one sign-in, reused on retries so the hub grants once."""
        return f"{self.kiosk_id}:{uuid.uuid4().hex}"

    async def kiosk_signin(self, customer_id: str, request_id: str) -> list[dict[str, Any]]:
        """Tell the hub the customer signed in here: kiosk sign-in campaigns grant now."""
        body = {"customer_id": customer_id, "request_id": request_id}
        return list(await self._call("POST", f"/v1/stores/{self.store_id}/kiosk-signins",
                                     json=body))

    async def offers(self, customer_id: str) -> list[dict[str, Any]]:
        """What campaigns gave this customer in this store, newest first."""
        path = f"/v1/stores/{self.store_id}/customers/{customer_id}/inbox"
        return list(await self._call("GET", path))

    async def cross_sell(self, customer_id: str) -> dict[str, Any]:
        """Ranked offers for this customer in this store (main push, then secondary)."""
        path = f"/v1/stores/{self.store_id}/customers/{customer_id}/cross-sell"
        return dict(await self._call("GET", path))

    async def services(self) -> list[dict[str, Any]]:
        """The services catalogue (public): name, monthly price, free-trial days."""
        return list(await self._call("GET", "/v1/services"))

    async def take_ticket(self, customer_id: str | None) -> dict[str, Any]:
        """A counter queue ticket: number, tickets ahead, estimated wait in minutes."""
        path = f"/v1/stores/{self.store_id}/queue-tickets"
        return dict(await self._call("POST", path, json={"customer_id": customer_id}))

    async def rate_visit(self, customer_id: str | None, stars: int, comment: str) -> None:
        """Record the customer's 1-5 rating of today's visit."""
        body = {"customer_id": customer_id, "stars": stars, "comment": comment}
        await self._call("POST", f"/v1/stores/{self.store_id}/visit-ratings", json=body)


def _error_code(resp: httpx.Response) -> str | None:
    """The hub's machine-readable error code, if the body carries one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        code = body.get("code")
        return str(code) if code else None
    return None
