"""Where events and alerts go. Every destination implements `Sink`."""
