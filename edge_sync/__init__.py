"""Every wire to the outside: outbox worker, MQTT/HTTPS transports, PSP connectors, platform."""
