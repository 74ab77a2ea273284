"""One module of routes per area; each route declares its roles through ``hub.api.deps``."""
