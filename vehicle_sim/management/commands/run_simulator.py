"""Run the vehicle API simulator (Smartcar v3 wire protocol) on a loopback port.

State (vehicles, connections, webhooks) is saved to --state-file after every change and reloaded at start, so
connected cars keep working across restarts; a car that was charging has kept charging.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from vehicle_sim.clock import UTC, RealClock, VirtualClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer, load_state
from vehicle_sim.world import WORLDS


def shared_real_clock(origin: str, *, speed: float) -> RealClock:
    """The clock `make run` shares with the product's processes (sessions.clock.shared_clock):
    `origin` is "wall seconds,simulated seconds" of one instant, from which time runs `speed`x."""
    wall, _, simulated = origin.partition(",")
    now = float(simulated) + (time.time() - float(wall)) * speed
    return RealClock(speed=speed, start=datetime.fromtimestamp(now, UTC))


class Command(BaseCommand):
    help = "Run the vehicle API simulator on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.SIMULATOR_PORT)
        parser.add_argument("--speed", type=float, default=1.0, help="simulated time runs this many times faster")
        parser.add_argument(
            "--clock-origin",
            default=getattr(settings, "SIM_CLOCK_ORIGIN", ""),
            help="WALL,SIMULATED seconds of one instant: run the clock `make run` shares with the controller",
        )
        parser.add_argument("--state-file", default=settings.SIMULATOR_STATE_FILE)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--virtual",
            action="store_true",
            help="a virtual clock that only moves through POST /_sim/clock/advance (benchmarks)",
        )
        parser.add_argument(
            "--world",
            default="ideal",
            choices=sorted(WORLDS),
            help="how hard the cars are (sessions/simulator/world.py): ideal (default) or realistic",
        )
        parser.add_argument(
            "--latency",
            default=None,
            help="command latency MIN,MAX seconds for every car (default: each profile's own)",
        )
        parser.add_argument(
            "--answer-latency",
            default=None,
            help="a read answers after MIN,MAX simulated seconds (default: the world's; realistic 2,20)",
        )

    def handle(self, *args, **options):
        state_file = Path(options["state_file"])
        start = None
        saved_now = json.loads(state_file.read_text()).get("now") if state_file.exists() else None
        # A sped-up or virtual previous run may have pushed simulated time past the wall clock;
        # a virtual clock always continues where it stopped.
        if saved_now and (options["virtual"] or saved_now > datetime.now(UTC).timestamp()):
            start = datetime.fromtimestamp(saved_now, UTC)
        latency = tuple(float(x) for x in options["latency"].split(",")) if options["latency"] else None
        if options["virtual"]:
            clock = VirtualClock(start or datetime.now(UTC))
        elif options["clock_origin"]:
            clock = shared_real_clock(options["clock_origin"], speed=options["speed"])
        else:
            clock = RealClock(speed=options["speed"], start=start)
        sim = Simulator(
            clock,
            seed=options["seed"],
            client_id=settings.VEHICLE_CLIENT_ID,
            client_secret=settings.VEHICLE_CLIENT_SECRET,
            amt=settings.VEHICLE_WEBHOOK_AMT,
            command_latency_s=latency,
            world=options["world"],
        )
        loaded = load_state(sim, state_file)
        if options["answer_latency"]:
            # After the saved state, which brings its own world: the command line has the last word.
            answer = tuple(float(x) for x in options["answer_latency"].split(","))
            sim.world = replace(sim.world, answer_latency_s=answer)
        server = SimulatorServer(sim, port=options["port"], state_file=state_file, webhook_interval_s=1.0)
        self.stdout.write(
            f"Vehicle simulator on {server.url} (speed {options['speed']}×, "
            f"{len(sim.vehicles)} vehicles {'loaded from' if loaded else 'new state in'} {state_file})"
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
