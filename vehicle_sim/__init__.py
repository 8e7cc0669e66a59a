"""A vehicle API simulator speaking Smartcar's v3 wire protocol.

`engine.Simulator` is the framework-free core (cars, physics, faults, Connect's consents);
`v3.platform(sim)` answers v3 from it; `app.make_app` wraps both in a WSGI callable;
`server.SimulatorServer` runs that on a loopback port.
"""
