"""HTTP API of the config manager: one router per resource under ``/api/v1``."""
