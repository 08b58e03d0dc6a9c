"""The operator console at ``/console``: server-rendered pages, one ES module, no CDN.

:data:`router` serves the pages and the live signal stream; :data:`STATIC_DIR` holds the
script and the style sheet the app mounts at ``/console/static``.
"""

from adapters.http.console.router import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
