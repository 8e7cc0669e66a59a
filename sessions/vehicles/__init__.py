"""Vehicles and their connections: OAuth tokens (encrypted), make traits, the vehicle webhook."""
