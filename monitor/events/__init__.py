"""Events: the catalogue of event types, decoding records into fields, enrichment."""
