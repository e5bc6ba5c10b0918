"""Serving collections over HTTP: an API, the clip-retrieval protocol and a web page.

```
from clipforge.serve import ServeSettings, create_app
app = create_app(ServeSettings(collections=("pics",)))   # any ASGI server runs it
```

Set ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported, as ``clipforge serve`` does: with
OpenMP's default spin-waiting, the model thread's idle workers take the cores that request
threads need, and latency under load suffers badly on small machines.
"""

from __future__ import annotations

from .app import create_app
from .settings import BatchSettings, Limits, ServeSettings

__all__ = ["BatchSettings", "Limits", "ServeSettings", "create_app"]
