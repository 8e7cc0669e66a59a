"""Create and drive simulated vehicles on a running simulator (through its loopback /_sim/ API).

manage.py sim_vehicle create --make TESLA --capacity-kwh 75 --soc 0.30 --plugged
manage.py sim_vehicle list
manage.py sim_vehicle set VEHICLE_ID --soc 0.5 --fault asleep=true
manage.py sim_vehicle unplug VEHICLE_ID
"""

from __future__ import annotations

import json

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from vehicle_sim.profiles import PROFILES


def _value(raw: str):
    """`true`, `0.5`, `null`, `"x"` → JSON values; anything else stays a string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Command(BaseCommand):
    help = "Create, list and change vehicles of a running vehicle simulator."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=settings.VEHICLE_API_V3_ORIGIN, help="the simulator's origin")
        sub = parser.add_subparsers(dest="action", required=True)

        create = sub.add_parser("create", help="create a vehicle connected to a new user; print its id and user id")
        create.add_argument("--profile", choices=sorted(PROFILES), default="generic")
        create.add_argument("--make")
        create.add_argument("--model")
        create.add_argument("--year", type=int)
        create.add_argument("--capacity-kwh", type=float)
        create.add_argument("--charger-kw", type=float)
        create.add_argument("--soc", type=float, default=0.5)
        create.add_argument("--limit", type=float, default=0.8)
        create.add_argument("--plugged", action="store_true")
        create.add_argument("--demo", action="store_true", help="always offered on the consent page")
        create.add_argument("--no-connect", action="store_true", help="leave it unclaimed for the consent page")
        create.add_argument("--strict-quotas", action="store_true", help="Tesla Fleet daily quotas")
        create.add_argument(
            "--option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any profile field, e.g. telemetry_refresh_s=60 or command_latency_s=[5,10]",
        )

        sub.add_parser("list", help="list vehicles with their true state")

        setp = sub.add_parser("set", help="change a vehicle's true state")
        setp.add_argument("vehicle_id")
        setp.add_argument("--soc", type=float)
        setp.add_argument("--limit", type=float)
        setp.add_argument("--charger-kw", type=float)
        setp.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE", help="e.g. asleep=true")

        for name in ("plug", "unplug", "drive", "show"):
            p = sub.add_parser(name)
            p.add_argument("vehicle_id")

    def handle(self, *args, **options):
        base = options["url"].rstrip("/") + "/_sim"
        action = options["action"]
        if action == "create":
            payload = {"profile": options["profile"], "soc": options["soc"], "limit": options["limit"]}
            payload["plugged"] = options["plugged"]
            payload["demo"] = options["demo"]
            payload["connect"] = not options["no_connect"]
            payload["strict_quotas"] = options["strict_quotas"]
            payload.update(self._pairs(options["option"], "--option"))
            for key in ("make", "model", "year", "capacity_kwh", "charger_kw"):
                if options[key] is not None:
                    payload[key] = options[key]
            result = self._call("POST", f"{base}/vehicles", payload)
        elif action == "list":
            result = self._call("GET", f"{base}/vehicles")
        elif action == "set":
            payload = {k: options[k] for k in ("soc", "limit", "charger_kw") if options[k] is not None}
            faults = self._pairs(options["fault"], "--fault")
            if faults:
                payload["faults"] = faults
            result = self._call("POST", f"{base}/vehicles/{options['vehicle_id']}", payload)
        elif action == "show":
            result = self._call("GET", f"{base}/vehicles/{options['vehicle_id']}")
        else:
            result = self._call("POST", f"{base}/vehicles/{options['vehicle_id']}/{action}", {})
        self.stdout.write(json.dumps(result, indent=2))

    @staticmethod
    def _pairs(items: list[str], flag: str) -> dict:
        out = {}
        for item in items:
            name, sep, raw = item.partition("=")
            if not sep:
                raise CommandError(f"{flag} needs NAME=VALUE, got {item!r}")
            out[name] = _value(raw)
        return out

    @staticmethod
    def _call(method: str, url: str, payload: dict | None = None) -> dict:
        try:
            response = httpx.request(method, url, json=payload, timeout=10)
        except httpx.HTTPError as exc:
            raise CommandError(f"simulator not reachable at {url}: {exc}") from exc
        if response.status_code != 200:
            raise CommandError(f"simulator answered {response.status_code}: {response.text}")
        return response.json()
