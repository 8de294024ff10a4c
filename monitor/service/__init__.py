"""Running as a service: readiness, control socket, stats, `ringwatch maps`, the drop alert."""
