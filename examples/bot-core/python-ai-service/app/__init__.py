"""python-ai-service: a stdlib-only example service for bot-core."""

SERVICE = "python-ai-service"
