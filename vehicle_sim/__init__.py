"""A vehicle API simulator speaking Smartcar's v2.0 wire protocol.

`engine.Simulator` is the framework-free core (cars, physics, faults, tokens); `app.make_app`
wraps it in a WSGI callable; `server.SimulatorServer` runs that on a loopback port.
"""
