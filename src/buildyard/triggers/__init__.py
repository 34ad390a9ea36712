"""Triggers: what starts a pipeline by itself — events matched against ``on:``, manual inputs,
schedules (exactly once per due time), webhook deliveries.

A service: it imports the core (spec, model, errors) and the store's schema; the server and the CLI
plug its functions into their routes, queue and commands.
"""
